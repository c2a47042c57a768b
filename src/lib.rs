//! relman: a Kubernetes operator that enforces a release and deployment guide.
//!
//! - [`api`]: the custom resource types (no I/O).
//! - [`calendar`]: deployment-window math (pure).
//! - [`plan`]: the release state machine (pure).
//! - [`controller`]: observe → plan → status → act, driven by watch events.
//! - [`k8s`]: the API calls relman makes on Deployments and Jobs.
#![forbid(unsafe_code)]

pub mod api;
pub mod calendar;
pub mod controller;
pub mod error;
pub mod http;
pub mod k8s;
pub mod plan;
pub mod plugin;
pub mod telemetry;
