//! The Release controller: observe → plan → status → act, driven by watch events.
//!
//! Each reconcile reads the world ([`observe`]), asks the pure planner for one step
//! ([`crate::plan::plan`]), writes the planned status with server-side apply (skipped when
//! unchanged, and guarded by the Release's resourceVersion so a stale read never overwrites a
//! newer status), then takes the step and records the planned Events. The controller watches
//! Releases, the Jobs and Deployments it drives (by label), ReleaseApprovals and
//! ReleaseCalendars, so a finished Job or a new approval moves a release on at once. Only the
//! replica holding the leader Lease reconciles and writes ([`crate::leader`]); reconciles,
//! writes and the DORA transitions they record are counted in [`crate::metrics`]. After the
//! Events, the `spec.notify` notifications of the reconcile's transitions go out in the
//! background ([`crate::notify`]).

mod act;
pub mod calendar;
mod context;
mod gate_watch;
mod gates;
mod memo;
mod notes;
mod observe;
mod reconcile;
mod run;
mod stores;

pub use context::{Context, DEFAULT_APPROVAL_POLICY, DEFAULT_CONCURRENCY};
pub use gate_watch::GateWatches;
pub use gates::KnownReleases;
pub use observe::observe;
pub use run::run;
