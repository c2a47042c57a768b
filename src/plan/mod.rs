//! The release state machine: spec + observed world + now -> the next step and the status to
//! write. Pure: no I/O, no clock, no randomness.
//!
//! - [`observed`]: the input, [`Observed`], gathered by the observe step.
//! - [`lifecycle`]: [`plan`], the lifecycle of a release, one file per concern.
//! - [`action`]: the output, [`Plan`] and its one [`Action`].
//! - [`requirements`], [`rollout`], [`jobs`], [`standing`]: the rules the lifecycle applies
//!   (the pre-release requirements and the release type check, `kubectl rollout status`
//!   semantics, Job names and templates, whether a Deployment still runs the release that
//!   changed it). Condition bookkeeping is the API's ([`crate::api::conditions`]).
//!
//! # The contract with the controller
//!
//! For each reconcile the controller builds an [`Observed`] (the Release with its status as
//! last written, the stages' Deployments, the release's Jobs, its ReleaseApprovals, the gate
//! inputs, whether the stage namespaces other than the Release's accept it, and `now`), calls
//! [`plan`], and then, in this order:
//!
//! 1. writes [`Plan::status`] with server-side apply when it differs from the observed status;
//! 2. performs [`Plan::action`] (`AlreadyExists` on `CreateJob` counts as done);
//! 3. records [`Plan::events`];
//! 4. requeues after [`Plan::requeue_after`] if set, else waits for a watch event.
//!
//! No action is ever planned in a namespace other than the Release's own unless that namespace
//! accepts the Release ([`NamespaceConsent`]); the release stalls instead.
//!
//! Writing the status first persists every decision (a failure to revert for, a Job to wait
//! for) before its effect; the known-good capture is stricter still: no rollout is planned
//! until the capture is read back from the stored status.

pub mod action;
pub mod jobs;
pub mod lifecycle;
pub mod observed;
pub mod pod_security;
pub mod policy;
pub mod requirements;
pub mod rollout;
pub mod standing;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use action::{Action, EventType, JobKind, Plan, PlannedEvent};
pub use lifecycle::{plan, plan_standing};
pub use observed::{
    ApprovalEnforcement, GateState, Gates, JobState, NamespaceConsent, Observed, ObservedApproval,
    ObservedDeployment, ObservedJob, PlanConfig, PodProblem, PodProblemReason, pod_problems,
};
