//! relman: a Kubernetes operator that enforces a release and deployment guide.
//!
//! - [`api`]: the custom resource types (no I/O).
//! - [`calendar`]: deployment-window math (pure).
//! - [`plan`]: the release state machine (pure).
//! - [`controller`]: observe → plan → status → act, driven by watch events.
//! - [`k8s`]: the API calls relman makes on Deployments and Jobs.
//! - [`leader`]: leader election on a Lease; only the leader writes.
//! - [`metrics`]: Prometheus metrics, DORA included; [`http`] serves them.
//! - [`notes`]: the release notes relman publishes before production (pure).
#![forbid(unsafe_code)]

pub mod api;
pub mod calendar;
pub mod controller;
pub mod error;
pub mod http;
pub mod k8s;
pub mod leader;
pub mod metrics;
pub mod notes;
pub mod notify;
pub mod plan;
pub mod plugin;
pub mod readiness;
pub mod settings;
pub mod telemetry;
