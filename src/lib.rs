//! relman: a Kubernetes operator that enforces a release and deployment guide.
//!
//! - [`api`]: the custom resource types (no I/O).
//! - [`calendar`]: deployment-window math (pure).
//! - [`plan`]: the release state machine (pure).
#![forbid(unsafe_code)]

pub mod api;
pub mod calendar;
pub mod http;
pub mod plan;
pub mod telemetry;
