//! The release lifecycle: [`plan`] turns what was observed into the one next step and the
//! status to write. One `impl Planner` block per concern, each in the file named for it:
//! `planner` (the state, the entry points, `run`), `decide` (where the release is and what
//! comes next), `gates` (requirements, sign-off, window, the start of a stage), `checks`
//! (Jobs, capture, rollout, bake, known-good mark), `revert` (failure and the way back),
//! `consent` (other namespaces and refused requests) and `status` (conditions and summary).
//!
//! # The steps of a stage
//!
//! 1. **Gates** (before the stage starts): the requirements (first stage only), the stage's
//!    sign-off (`approval.approvers` distinct people approving this version with the stage's
//!    name as gate) and its deployment window. The previous stage is verified, because stages
//!    run strictly in order.
//! 2. **Backup** (optional): create the backup Job, wait for it. A failure stops the stage
//!    before anything changed.
//! 3. **Capture the known-good state** of every Deployment of the stage (pod template and
//!    revision) into the status. This step is status-only: no rollout is sent until the
//!    capture is read back from the persisted status, so a restart can never capture the new
//!    template as "known-good".
//! 4. **Roll out** each Deployment in the order listed, one at a time: set the images, wait
//!    until the rollout is complete as `kubectl rollout status` judges it. A progress deadline,
//!    the stage's `rolloutTimeout` or pods that cannot start fail the stage.
//! 5. **Smoke test**: create the smoke-test Job, wait for it; failure, timeout or pods that
//!    cannot start fail the stage.
//! 6. **Mark known-good**: annotate each Deployment with the release, one at a time; then the
//!    stage is verified and the next one may start.
//!
//! # Failure
//!
//! A failed check, a Rejected sign-off of this version, or `spec.abort` records a failure on
//! the stage. A failed check reverts the Deployments of the stages that were not verified (a
//! verified staging keeps the release it verified); an abort or a rejection withdraws the
//! release and reverts every Deployment it captured. Reverts go to the known-good template
//! (most recent stage first, last Deployment first), the reverts are awaited, and the
//! release ends `RolledBack`. A Deployment that already runs its known-good images needs no
//! revert. A revert that cannot complete stalls the release (`RevertFailed`) until it can.
//!
//! # Other namespaces
//!
//! A stage in a namespace other than the release's acts there only with that namespace's
//! consent ([`NamespaceConsent`](crate::plan::NamespaceConsent)). Every stage's namespace is checked before the first stage
//! starts, and the namespace of each step is checked again before it is taken, reverts
//! included; without consent the release is Stalled (`NamespaceNotPermitted`), plans no action
//! there, and looks again after [`NAMESPACE_CONSENT_RECHECK`].
//!
//! # Restart safety
//!
//! Everything the planner must remember lives in the status (stage phases, captured
//! templates, Job results, the failure) or in child objects it finds by deterministic name
//! (Jobs) or by comparing images (Deployments). The controller writes the status before it
//! acts, so a decision is persisted before its effect; each action is idempotent, so a step
//! that is repeated after a restart changes nothing more.

mod checks;
mod consent;
mod decide;
mod gates;
mod planner;
mod policy;
mod revert;
mod status;

pub use gates::{ApprovalCount, Uncounted, counted_approvals, not_enforced_message};
pub use planner::{
    FORBIDDEN_RECHECK, NAMESPACE_CONSENT_RECHECK, REASON_FORBIDDEN, REASON_NAMESPACE_NOT_PERMITTED,
    plan, plan_standing,
};
