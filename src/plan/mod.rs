//! The release state machine: spec + observed world + now -> the next step and the status to
//! write. Pure: no I/O, no clock, no randomness.
//!
//! - [`observed`]: the input, [`Observed`], gathered by the observe step.
//! - [`lifecycle`]: [`plan`], the whole lifecycle of a release in one file.
//! - [`action`]: the output, [`Plan`] and its one [`Action`].
//! - [`conditions`], [`rollout`], [`jobs`]: the rules the lifecycle applies (condition
//!   bookkeeping, `kubectl rollout status` semantics, Job names and templates).

pub mod action;
pub mod conditions;
mod duration;
pub mod jobs;
pub mod lifecycle;
pub mod observed;
pub mod rollout;
mod time;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use action::{Action, EventType, JobKind, Plan, PlannedEvent};
pub use lifecycle::plan;
pub use observed::{
    GateState, Gates, JobState, Observed, ObservedApproval, ObservedDeployment, ObservedJob,
    PlanConfig, PodProblem, PodProblemReason,
};
