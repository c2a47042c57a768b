//! The release lifecycle, in one place: [`plan`] turns what was observed into the one next
//! step and the status to write.
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
//! consent ([`NamespaceConsent`]). Every stage's namespace is checked before the first stage
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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::action::{Action, EventType, JobKind, Plan, PlannedEvent};
use super::jobs::{build_job, job_name, set_deadline};
use super::observed::{JobState, NamespaceConsent, Observed, ObservedApproval, ObservedDeployment};
use super::rollout::{
    PodProblems, RolloutProgress, images_to_roll_out, judge_pod_problems, rollout_progress,
    runs_known_good, runs_release_images,
};
use super::standing::{Standing, record_standings, standing, standings_of};
use crate::api::conditions::{
    self, APPROVED, READY, RECONCILING, REQUIREMENTS_MET, ROLLED_BACK, STALLED, Status,
    WINDOW_OPEN, set_condition,
};
use crate::api::duration::{DurationError, parse_duration};
use crate::api::labels::{
    ANNOTATION_ACCEPT_RELEASES_FROM, ANNOTATION_KNOWN_GOOD_RELEASE, ANNOTATION_KNOWN_GOOD_REVISION,
};
use crate::api::release::{
    ApprovalRecord, DeploymentStatus, Failure, HistoryEntry, IncidentStatus, JobCheck, JobStatus,
    ReleasePhase, Stage, StagePhase, StageStatus,
};
use crate::api::time::from_k8s_time;
use crate::api::time::{add, to_k8s_time, until};
use crate::api::{Compact, Decision, ReleaseSpec, ReleaseStatus};

/// `JobStatus.result` of a Job that has not finished.
const JOB_RUNNING: &str = "Running";
/// `JobStatus.result` of a Job that succeeded.
const JOB_SUCCEEDED: &str = "Succeeded";
/// `JobStatus.result` of a Job that failed or timed out.
const JOB_FAILED: &str = "Failed";
/// The failure reason of a release withdrawn by `spec.abort`.
const REASON_ABORTED: &str = "Aborted";
/// The failure reason of a release whose sign-off was rejected.
const REASON_REJECTED: &str = "ApprovalRejected";
/// The Stalled reason of a release whose step the API server refuses to relman (403).
pub const REASON_FORBIDDEN: &str = "Forbidden";
/// How often a release stalled for [`REASON_FORBIDDEN`] tries again: a permission granted
/// later lets it go on without anyone touching the Release.
pub const FORBIDDEN_RECHECK: Duration = Duration::from_secs(60);
/// The history entry and Event of an abort that reverted nothing: the release no longer
/// drives any Deployment it changed.
const REASON_ABORT_IGNORED: &str = "AbortIgnored";
/// The most history entries kept; the oldest go first.
const MAX_HISTORY: usize = 100;
/// The Stalled reason of a release whose stage would act in a namespace that has not
/// accepted it (see [`NamespaceConsent`]).
pub const REASON_NAMESPACE_NOT_PERMITTED: &str = "NamespaceNotPermitted";
/// How often a release stalled for [`REASON_NAMESPACE_NOT_PERMITTED`] looks at the namespace
/// again: consent given later moves it on without anyone touching the Release.
pub const NAMESPACE_CONSENT_RECHECK: Duration = Duration::from_secs(30);

/// Decides the next step of a release. Pure: the same `observed` always gives the same plan.
pub fn plan(observed: &Observed) -> Plan {
    Planner::new(observed).run()
}

/// The plan for a succeeded release whose spec has not changed since it was planned, after one
/// of its Deployments changed: only its `Superseded` and `Drifted` conditions can change (with
/// a history entry and an Event for each transition). No action, and the same status when
/// nothing changed, so a finished release costs no writes.
pub fn plan_standing(
    release: &crate::api::Release,
    deployments: Vec<ObservedDeployment>,
    now: DateTime<Utc>,
) -> Plan {
    let observed = Observed {
        release: release.clone(),
        deployments,
        jobs: Vec::new(),
        approvals: Vec::new(),
        gates: super::observed::Gates::default(),
        namespace_consent: BTreeMap::new(),
        abort_requested_by: None,
        denied: None,
        config: super::observed::PlanConfig::default(),
        now,
    };
    let mut planner = Planner::new(&observed);
    let standings = planner.standings();
    planner.record_standings(&standings);
    Plan {
        action: Action::None,
        status: planner.status,
        requeue_after: None,
        events: planner.events,
    }
}

/// A field of the spec the planner cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {source}")]
struct InvalidField {
    /// The field's path, e.g. `spec.stages[1].smokeTest.timeout`.
    field: String,
    source: DurationError,
}

/// The durations of one stage, read from the spec or defaulted.
#[derive(Clone, Copy, Debug)]
struct StageTimeouts {
    rollout: Duration,
    backup: Duration,
    smoke_test: Duration,
    /// How long the stage stays under watch after its checks passed; `None`: no bake time.
    bake: Option<Duration>,
}

/// Where the release is after this plan: sets the phase and the kstatus conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    kind: OutcomeKind,
    stage: Option<String>,
    reason: String,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutcomeKind {
    AwaitingRequirements,
    AwaitingApproval,
    AwaitingWindow,
    /// Another active Release drives one of the stage's Deployments.
    AwaitingDeployment,
    Progressing,
    Succeeded,
    /// Cannot go on without a person; nothing is reverted because of it.
    Stalled,
    RollingBack,
    RolledBack,
}

impl Outcome {
    fn new(kind: OutcomeKind, stage: Option<&str>, reason: &str, message: String) -> Self {
        Self {
            kind,
            stage: stage.map(str::to_owned),
            reason: reason.to_owned(),
            message,
        }
    }

    fn progressing(stage: &str, reason: &str, message: String) -> Self {
        Self::new(OutcomeKind::Progressing, Some(stage), reason, message)
    }

    fn stalled(stage: &str, reason: &str, message: String) -> Self {
        Self::new(OutcomeKind::Stalled, Some(stage), reason, message)
    }

    fn phase(&self) -> ReleasePhase {
        match self.kind {
            OutcomeKind::AwaitingRequirements | OutcomeKind::AwaitingDeployment => {
                ReleasePhase::Pending
            }
            OutcomeKind::AwaitingApproval => ReleasePhase::AwaitingApproval,
            OutcomeKind::AwaitingWindow => ReleasePhase::AwaitingWindow,
            OutcomeKind::Progressing => ReleasePhase::Progressing,
            OutcomeKind::Succeeded => ReleasePhase::Succeeded,
            OutcomeKind::Stalled => ReleasePhase::Failed,
            OutcomeKind::RollingBack => ReleasePhase::RollingBack,
            OutcomeKind::RolledBack => ReleasePhase::RolledBack,
        }
    }
}

/// The result of one check of a stage.
enum Check {
    /// The check passed: go on with the next one.
    Passed,
    /// Not done yet (or blocked): this is where the release is.
    Waiting(Outcome),
    /// The check failed: revert.
    Failed(Failure),
}

fn failure(reason: &str, message: String) -> Failure {
    Failure {
        reason: reason.to_owned(),
        message,
    }
}

struct Planner<'a> {
    observed: &'a Observed,
    spec: &'a ReleaseSpec,
    release_name: String,
    release_namespace: String,
    /// `namespace/name` of the Release: the value of the driven-by marker it sets.
    me: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
    /// The status as last written.
    old: ReleaseStatus,
    /// The status being built.
    status: ReleaseStatus,
    action: Action,
    requeue_at: Option<DateTime<Utc>>,
    requeue_now: bool,
    events: Vec<PlannedEvent>,
}

impl<'a> Planner<'a> {
    fn new(observed: &'a Observed) -> Self {
        let release = &observed.release;
        let old = release.status.clone().unwrap_or_default();
        let release_name = release.metadata.name.clone().unwrap_or_default();
        let release_namespace = release
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        Self {
            observed,
            spec: &release.spec,
            me: format!("{release_namespace}/{release_name}"),
            release_name,
            release_namespace,
            generation: release.metadata.generation,
            now: observed.now,
            status: old.clone(),
            old,
            action: Action::None,
            requeue_at: None,
            requeue_now: false,
            events: Vec::new(),
        }
    }

    fn run(mut self) -> Plan {
        self.sync_stage_statuses();
        self.record_counted_approvals();
        let outcome = self.decide();
        let outcome = self.refuse_actions_without_consent(outcome);
        let outcome = self.stall_while_denied(outcome);
        self.close_incident_once_root_cause_is_recorded();
        self.write_summary(&outcome);
        Plan {
            action: self.action,
            status: self.status,
            requeue_after: if self.requeue_now {
                Some(Duration::ZERO)
            } else {
                self.requeue_at.map(|at| until(self.now, at))
            },
            events: self.events,
        }
    }

    // ---------------------------------------------------------------------------------------
    // The decision
    // ---------------------------------------------------------------------------------------

    fn decide(&mut self) -> Outcome {
        if self.old.phase == Some(ReleasePhase::RolledBack) {
            // Terminal: never touch the Deployments again (another release may own them now).
            return self.rolled_back_outcome();
        }
        if self.failed_stage().is_some() {
            return self.revert_to_known_good();
        }
        if self.spec.abort {
            if self.old.phase == Some(ReleasePhase::Succeeded) {
                let standings = self.standings();
                if !standings.iter().any(|(_, s)| *s == Standing::Current) {
                    return self.abort_ignored(&standings);
                }
            }
            let stage = self.current_stage();
            let by = self
                .observed
                .abort_requested_by
                .as_deref()
                .map(|who| format!(" (set by {who})"))
                .unwrap_or_default();
            self.fail(
                stage,
                failure(
                    REASON_ABORTED,
                    format!(
                        "spec.abort is true{by}: reverting every Deployment the release changed and still drives"
                    ),
                ),
            );
            return self.revert_to_known_good();
        }
        if !self.all_stages_verified()
            && let Some(rejection) = self.rejection().cloned()
        {
            let stage = self.current_stage();
            let comment = rejection
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            self.fail(
                stage,
                failure(
                    REASON_REJECTED,
                    format!(
                        "{} rejected version {} at gate {} (ReleaseApproval {}){comment}",
                        rejection.approver, rejection.version, rejection.gate, rejection.name
                    ),
                ),
            );
            return self.revert_to_known_good();
        }
        if self.spec.stages.is_empty() {
            return Outcome::new(
                OutcomeKind::Stalled,
                None,
                "InvalidSpec",
                "spec.stages: a release needs at least one stage".into(),
            );
        }
        if self.stage_phase(0) == StagePhase::Pending {
            // Before anything changes, every stage's namespace must accept the release: a
            // namespace that does not is found now, not after staging was changed.
            let spec = self.spec;
            for (index, stage) in spec.stages.iter().enumerate() {
                if let Some(refused) = self.namespace_refusal(index, stage) {
                    return refused;
                }
            }
        }
        if self.stage_phase(0) == StagePhase::Pending
            && let Some(shared) = self.shared_deployment()
        {
            return Outcome::new(
                OutcomeKind::Stalled,
                self.spec.stages.first().map(|s| s.name.as_str()),
                "InvalidSpec",
                shared,
            );
        }
        if let Some(forbidden) = &self.observed.gates.forbidden
            && self.stage_phase(0) == StagePhase::Pending
        {
            self.requeue_at(add(self.now, FORBIDDEN_RECHECK));
            return Outcome::new(
                OutcomeKind::Stalled,
                self.spec.stages.first().map(|s| s.name.as_str()),
                REASON_FORBIDDEN,
                forbidden.clone(),
            );
        }
        if let Some(invalid) = &self.observed.gates.invalid
            && self.stage_phase(0) == StagePhase::Pending
        {
            return Outcome::new(
                OutcomeKind::Stalled,
                self.spec.stages.first().map(|s| s.name.as_str()),
                "InvalidSpec",
                invalid.clone(),
            );
        }
        let timeouts = match self.stage_timeouts() {
            Ok(timeouts) => timeouts,
            Err(invalid) => {
                let stage = self.spec.stages.get(self.current_stage());
                return Outcome::new(
                    OutcomeKind::Stalled,
                    stage.map(|s| s.name.as_str()),
                    "InvalidSpec",
                    invalid.to_string(),
                );
            }
        };
        self.advance(&timeouts)
    }

    /// Takes the stages forward in order, as far as the observed world allows.
    fn advance(&mut self, timeouts: &[StageTimeouts]) -> Outcome {
        let spec = self.spec;
        for (index, stage) in spec.stages.iter().enumerate() {
            let phase = self.stage_phase(index);
            if phase == StagePhase::Verified {
                continue;
            }
            // Checked before every step, not only at the start: a namespace that withdraws
            // its consent mid-release gets nothing more written to it.
            if let Some(refused) = self.namespace_refusal(index, stage) {
                return refused;
            }
            if phase == StagePhase::Pending {
                if let Some(waiting) = self.stage_gates(index, stage) {
                    return waiting;
                }
                self.start_stage(index, stage);
            }
            let timeouts = timeouts.get(index).copied().unwrap_or(StageTimeouts {
                rollout: self.observed.config.default_rollout_timeout,
                backup: self.observed.config.default_job_timeout,
                smoke_test: self.observed.config.default_job_timeout,
                bake: None,
            });
            match self.run_stage(index, stage, timeouts) {
                Check::Passed => continue,
                Check::Waiting(outcome) => return outcome,
                Check::Failed(failure) => {
                    self.fail(index, failure);
                    return self.revert_to_known_good();
                }
            }
        }
        if self.old.phase != Some(ReleasePhase::Succeeded) {
            self.record(
                EventType::Normal,
                "Released",
                None,
                format!(
                    "{} {} passed every stage",
                    self.spec.application, self.spec.version
                ),
            );
        }
        let standings = self.standings();
        self.record_standings(&standings);
        self.succeeded_outcome()
    }

    fn succeeded_outcome(&self) -> Outcome {
        let last = self.spec.stages.last().map(|s| s.name.as_str());
        Outcome::new(
            OutcomeKind::Succeeded,
            last,
            "Succeeded",
            format!(
                "{} {} is released: every stage is verified",
                self.spec.application, self.spec.version
            ),
        )
    }

    /// `spec.abort` on a succeeded release that no longer drives any Deployment it changed:
    /// nothing is reverted (that would destroy a newer release or a person's change); the
    /// release stays Succeeded, says why in its Superseded or Drifted condition, and warns once.
    fn abort_ignored(&mut self, standings: &[(String, Standing)]) -> Outcome {
        self.record_standings(standings);
        let why: Vec<String> = standings
            .iter()
            .filter_map(|(target, s)| s.why_left_alone(target))
            .collect();
        if !self
            .old
            .history
            .iter()
            .any(|h| h.event == REASON_ABORT_IGNORED)
        {
            self.record(
                EventType::Warning,
                REASON_ABORT_IGNORED,
                None,
                format!(
                    "spec.abort is set, but {} {} no longer drives any Deployment it changed, so nothing was reverted{}",
                    self.spec.application,
                    self.spec.version,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", why.join("; "))
                    }
                ),
            );
        }
        self.succeeded_outcome()
    }

    /// How each Deployment the release changed stands now (see [`standing`]), once per
    /// Deployment, in status order. Deployments that are gone, or that already ran the
    /// release's images before it started, are not listed.
    fn standings(&self) -> Vec<(String, Standing)> {
        standings_of(
            &self.me,
            self.spec,
            &self.status,
            &self.observed.deployments,
        )
    }

    fn record_standings(&mut self, standings: &[(String, Standing)]) {
        for transition in record_standings(&mut self.status, standings, self.generation, self.now) {
            self.record(
                transition.type_,
                transition.reason,
                None,
                transition.message,
            );
        }
    }

    /// The first (namespace, Deployment) that two stages name, counting a stage without a
    /// namespace as the Release's: a message naming both stages and the fix. The schema
    /// refuses the cases it can see; this one needs the Release's namespace.
    fn shared_deployment(&self) -> Option<String> {
        let mut seen: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for (index, stage) in self.spec.stages.iter().enumerate() {
            let namespace = self.stage_namespace(stage);
            for deployment in &stage.deployments {
                let key = (namespace.clone(), deployment.0.as_str());
                if let Some(&first) = seen.get(&key) {
                    return Some(format!(
                        "spec.stages[{index}].deployments: Deployment {namespace}/{} is also in stage {} (spec.stages[{first}]); a Deployment belongs to one stage, since a revert of one stage would undo the other. Give each stage its own Deployment, e.g. in a staging namespace",
                        deployment.0, self.spec.stages[first].name
                    ));
                }
                seen.insert(key, index);
            }
        }
        None
    }

    /// Runs the checks of a started stage from where it is, until one waits or fails.
    fn run_stage(&mut self, index: usize, stage: &Stage, timeouts: StageTimeouts) -> Check {
        loop {
            match self.stage_phase(index) {
                StagePhase::Pending | StagePhase::BackingUp => {
                    if let Some(backup) = &stage.backup {
                        match self.job_check(index, stage, JobKind::Backup, backup, timeouts.backup)
                        {
                            Check::Passed => {}
                            other => return other,
                        }
                    }
                    self.set_stage_phase(index, StagePhase::RollingOut);
                }
                StagePhase::RollingOut => {
                    match self.roll_out_stage(index, stage, timeouts.rollout) {
                        Check::Passed => {}
                        other => return other,
                    }
                    self.set_stage_phase(index, StagePhase::Verifying);
                    self.record(
                        EventType::Normal,
                        &conditions::stage_deployed(&stage.name),
                        Some(&stage.name),
                        format!(
                            "stage {}: every Deployment runs version {}",
                            stage.name, self.spec.version
                        ),
                    );
                }
                StagePhase::Verifying => {
                    for check in [
                        Self::pods_start_after_rollout,
                        Self::smoke_test_result,
                        Self::bake,
                        Self::mark_known_good,
                    ] {
                        match check(self, index, stage, timeouts) {
                            Check::Passed => {}
                            other => return other,
                        }
                    }
                    self.set_stage_phase(index, StagePhase::Verified);
                    self.status.stages[index].finished_at = Some(to_k8s_time(self.now));
                    self.record(
                        EventType::Normal,
                        &conditions::stage_verified(&stage.name),
                        Some(&stage.name),
                        format!(
                            "stage {}: checks passed; revisions marked known-good",
                            stage.name
                        ),
                    );
                    return Check::Passed;
                }
                StagePhase::Verified => return Check::Passed,
                StagePhase::Failed | StagePhase::RollingBack | StagePhase::RolledBack => {
                    // Only reachable with a status edited by hand: a failed stage always
                    // carries its failure, which sends the release to the revert path.
                    return Check::Failed(failure(
                        "StageFailed",
                        format!(
                            "stage {} is marked failed without a recorded reason",
                            stage.name
                        ),
                    ));
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gates
    // ---------------------------------------------------------------------------------------

    /// Whether a stage may start; `Some` says what it waits for.
    fn stage_gates(&mut self, index: usize, stage: &Stage) -> Option<Outcome> {
        let name = stage.name.as_str();
        let requirements = &self.observed.gates.requirements;
        if index == 0 && !requirements.open {
            return Some(Outcome::new(
                OutcomeKind::AwaitingRequirements,
                Some(name),
                "RequirementsNotMet",
                requirements.message.clone(),
            ));
        }
        if let Some(needed) = required_approvers(stage) {
            let approvers = self.approvers_of(name);
            if approvers.len() < needed {
                return Some(Outcome::new(
                    OutcomeKind::AwaitingApproval,
                    Some(name),
                    "AwaitingApproval",
                    self.awaiting_approval_message(stage, &approvers),
                ));
            }
        }
        if stage.window
            && let Some(window) = &self.observed.gates.window
            && !window.open
        {
            if let Some(next) = window.next_change {
                self.requeue_at(next);
            }
            return Some(Outcome::new(
                OutcomeKind::AwaitingWindow,
                Some(name),
                &window.reason,
                window.message.clone(),
            ));
        }
        let namespace = self.stage_namespace(stage);
        // One driver per Deployment: wait while another active Release drives one of them.
        for deployment in &stage.deployments {
            if let Some(other) = self
                .observed
                .deployment(&namespace, &deployment.0)
                .and_then(|d| d.driven_by_other.as_ref())
            {
                return Some(Outcome::new(
                    OutcomeKind::AwaitingDeployment,
                    Some(name),
                    "WaitingForOtherRelease",
                    format!(
                        "Deployment {namespace}/{} is being driven by Release {other}; stage {name} starts when that release finishes",
                        deployment.0
                    ),
                ));
            }
        }
        for deployment in &stage.deployments {
            if let Err(blocked) = self.deployment_to_change(stage, &namespace, &deployment.0) {
                return Some(blocked);
            }
        }
        None
    }

    fn start_stage(&mut self, index: usize, stage: &Stage) {
        let status = &mut self.status.stages[index];
        status.attempt = Some(status.attempt.unwrap_or(1));
        status.started_at = Some(to_k8s_time(self.now));
        self.set_stage_phase(index, StagePhase::BackingUp);
        self.record(
            EventType::Normal,
            "StageStarted",
            Some(&stage.name),
            format!("stage {} started", stage.name),
        );
        if required_approvers(stage).is_some() {
            let approvers: Vec<_> = self.approvers_of(&stage.name).into_iter().collect();
            self.record(
                EventType::Normal,
                "Approved",
                Some(&stage.name),
                format!("stage {} approved by {}", stage.name, approvers.join(", ")),
            );
        }
    }

    /// The distinct people who approved this version at `gate`.
    fn approvers_of(&self, gate: &str) -> BTreeSet<String> {
        self.counted_approvals()
            .into_iter()
            .filter(|a| a.gate == gate && a.decision == Decision::Approved)
            .map(|a| a.approver.clone())
            .collect()
    }

    fn awaiting_approval_message(&self, stage: &Stage, approvers: &BTreeSet<String>) -> String {
        let needed = required_approvers(stage).unwrap_or(1);
        format!(
            "stage {} needs {needed} approval(s) of version {} (a ReleaseApproval with gate {}); {} so far",
            stage.name,
            self.spec.version,
            stage.name,
            approvers.len()
        )
    }

    /// The first Rejected decision on this version at a gate the release has.
    fn rejection(&self) -> Option<&'a ObservedApproval> {
        self.counted_approvals()
            .into_iter()
            .find(|a| a.decision == Decision::Rejected)
    }

    /// The approvals that count: for this Release, this version, and one of its gates (a
    /// stage or a requirement), oldest first.
    fn counted_approvals(&self) -> Vec<&'a ObservedApproval> {
        let observed: &'a Observed = self.observed;
        let spec: &'a ReleaseSpec = self.spec;
        let meta = &observed.release.metadata;
        let created = meta.creation_timestamp.as_ref().map(from_k8s_time);
        // A sign-off belongs to one Release object: the one whose uid it names, or, when it
        // names none, one created no later than the sign-off. A Release deleted and created
        // again under the same name starts without sign-offs.
        let of_this_object = |a: &ObservedApproval| match &a.release_uid {
            Some(uid) => meta.uid.as_ref() == Some(uid),
            None => created.is_none_or(|created| a.created.is_some_and(|at| at >= created)),
        };
        let mut counted: Vec<&'a ObservedApproval> = observed
            .approvals
            .iter()
            .filter(|a| {
                a.release == self.release_name
                    && a.version == spec.version
                    && of_this_object(a)
                    && (spec.stages.iter().any(|s| s.name == a.gate)
                        || spec.requirements.iter().any(|r| r.name == a.gate))
            })
            .collect();
        counted.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        counted
    }

    // ---------------------------------------------------------------------------------------
    // Checks
    // ---------------------------------------------------------------------------------------

    /// The backup or smoke-test Job of the current attempt: create it, wait for it, judge it.
    fn job_check(
        &mut self,
        index: usize,
        stage: &Stage,
        kind: JobKind,
        check: &JobCheck,
        timeout: Duration,
    ) -> Check {
        let namespace = self.stage_namespace(stage);
        let attempt = self.status.stages[index].attempt.unwrap_or(1);
        let name = job_name(&self.release_name, &stage.name, kind, attempt);
        let what = match kind {
            JobKind::Backup => "backup",
            JobKind::SmokeTest => "smoke test",
        };
        let (succeeded, failed, timed_out) = match kind {
            JobKind::Backup => ("BackupSucceeded", "BackupFailed", "BackupTimedOut"),
            JobKind::SmokeTest => ("SmokeTestSucceeded", "SmokeTestFailed", "SmokeTestTimedOut"),
        };
        let recorded = self.job_status(index, kind).clone();
        if recorded
            .as_ref()
            .is_some_and(|r| r.name == name && r.result.as_deref() == Some(JOB_SUCCEEDED))
        {
            // The result outlives the Job (which a TTL may have deleted).
            return Check::Passed;
        }
        let set_result = |planner: &mut Self, result: &str, message: Option<String>| {
            *planner.job_status(index, kind) = Some(JobStatus {
                name: name.clone(),
                result: Some(result.to_owned()),
                message,
            });
        };
        let Some(job) = self.observed.job(&namespace, &name) else {
            set_result(self, JOB_RUNNING, None);
            let mut job = build_job(
                &self.observed.release,
                &stage.name,
                &namespace,
                kind,
                attempt,
                &check.template.get(),
            );
            set_deadline(&mut job, timeout);
            self.action = Action::CreateJob {
                kind,
                stage: stage.name.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                job: Box::new(job),
            };
            return Check::Waiting(Outcome::progressing(
                &stage.name,
                progressing_reason(kind),
                format!(
                    "stage {}: starting the {what} Job {namespace}/{name}",
                    stage.name
                ),
            ));
        };
        if job.release_uid.as_deref() != self.observed.release.metadata.uid.as_deref() {
            // A Job of another Release object of the same name (one deleted and created
            // again): never counted, never reused. The stage goes on under the next attempt's
            // Job names.
            let next = attempt.saturating_add(1);
            self.status.stages[index].attempt = Some(next);
            *self.job_status(index, kind) = None;
            self.requeue_now = true;
            self.record(
                EventType::Warning,
                "JobOfAnotherRelease",
                Some(&stage.name),
                format!(
                    "stage {}: Job {namespace}/{name} belongs to another Release object of this name (uid {}); it is not counted, and the stage goes on with attempt {next}",
                    stage.name,
                    job.release_uid.as_deref().unwrap_or("none")
                ),
            );
            return Check::Waiting(Outcome::progressing(
                &stage.name,
                progressing_reason(kind),
                format!(
                    "stage {}: Job {namespace}/{name} belongs to another Release object; starting attempt {next}",
                    stage.name
                ),
            ));
        }
        match &job.state {
            JobState::Succeeded => {
                set_result(self, JOB_SUCCEEDED, None);
                self.record(
                    EventType::Normal,
                    succeeded,
                    Some(&stage.name),
                    format!("stage {}: the {what} Job {name} succeeded", stage.name),
                );
                Check::Passed
            }
            JobState::Failed { reason, message } => {
                let text = format!(
                    "the {what} Job {namespace}/{name} failed ({reason}){}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                );
                set_result(self, JOB_FAILED, Some(text.clone()));
                Check::Failed(failure(failed, text))
            }
            JobState::Running { since } => {
                let deadline = add(*since, timeout);
                if deadline <= self.now {
                    let text = format!(
                        "the {what} Job {namespace}/{name} did not finish within {}",
                        human(timeout)
                    );
                    set_result(self, JOB_FAILED, Some(text.clone()));
                    return Check::Failed(failure(timed_out, text));
                }
                let grace = self.observed.config.pod_problem_grace;
                match judge_pod_problems(&job.pod_problems, grace, self.now) {
                    PodProblems::Lasting(problem) => {
                        let text = format!(
                            "the {what} Job {namespace}/{name}: pod {} has been {} for {}: {}",
                            problem.pod,
                            problem.reason,
                            human(grace),
                            problem.message
                        );
                        set_result(self, JOB_FAILED, Some(text.clone()));
                        return Check::Failed(failure(problem.reason.as_str(), text));
                    }
                    PodProblems::GraceUntil(at) => self.requeue_at(at),
                    PodProblems::None => {}
                }
                set_result(self, JOB_RUNNING, None);
                self.requeue_at(deadline);
                Check::Waiting(Outcome::progressing(
                    &stage.name,
                    progressing_reason(kind),
                    format!(
                        "stage {}: waiting for the {what} Job {namespace}/{name}",
                        stage.name
                    ),
                ))
            }
        }
    }

    fn job_status(&mut self, index: usize, kind: JobKind) -> &mut Option<JobStatus> {
        let stage = &mut self.status.stages[index];
        match kind {
            JobKind::Backup => &mut stage.backup,
            JobKind::SmokeTest => &mut stage.smoke_test,
        }
    }

    /// Captures the known-good state, then rolls the Deployments out one at a time.
    fn roll_out_stage(&mut self, index: usize, stage: &Stage, timeout: Duration) -> Check {
        let namespace = self.stage_namespace(stage);
        if let Some(outcome) = self.capture_known_good(index, stage, &namespace) {
            return Check::Waiting(outcome);
        }
        for deployment in &stage.deployments {
            let name = deployment.0.as_str();
            let observed = match self.deployment_to_change(stage, &namespace, name) {
                Ok(observed) => observed,
                Err(blocked) => return Check::Waiting(blocked),
            };
            if !runs_release_images(&observed.template, &self.spec.images) {
                if !self.capture_is_persisted(&stage.name, &namespace, name) {
                    // Defensive: never send a rollout before its capture is persisted.
                    self.requeue_now = true;
                    return Check::Waiting(Outcome::progressing(
                        &stage.name,
                        "CapturingKnownGood",
                        format!("stage {}: recording the known-good state", stage.name),
                    ));
                }
                self.action = Action::RollOut {
                    stage: stage.name.clone(),
                    namespace: namespace.clone(),
                    deployment: name.to_owned(),
                    images: images_to_roll_out(&observed.template, &self.spec.images),
                };
                return Check::Waiting(Outcome::progressing(
                    &stage.name,
                    "RollingOut",
                    format!("stage {}: rolling out {namespace}/{name}", stage.name),
                ));
            }
            match rollout_progress(observed) {
                RolloutProgress::Complete => {
                    if let Some(status) = self.deployment_status(index, &namespace, name) {
                        status.rolled_out_revision = observed.revision.clone();
                    }
                }
                RolloutProgress::DeadlineExceeded(message) => {
                    return Check::Failed(failure("ProgressDeadlineExceeded", message));
                }
                RolloutProgress::InProgress(progress) => {
                    let grace = self.observed.config.pod_problem_grace;
                    match judge_pod_problems(&observed.pod_problems, grace, self.now) {
                        PodProblems::Lasting(problem) => {
                            return Check::Failed(failure(
                                problem.reason.as_str(),
                                format!(
                                    "rollout of {namespace}/{name}: pod {} has been {} for {}: {}",
                                    problem.pod,
                                    problem.reason,
                                    human(grace),
                                    problem.message
                                ),
                            ));
                        }
                        PodProblems::GraceUntil(at) => self.requeue_at(at),
                        PodProblems::None => {}
                    }
                    let started = self.status.stages[index]
                        .rollout_started_at
                        .as_ref()
                        .or(self.status.stages[index].started_at.as_ref())
                        .map(crate::api::time::from_k8s_time)
                        .unwrap_or(self.now);
                    let deadline = add(started, timeout);
                    if deadline <= self.now {
                        return Check::Failed(failure(
                            "RolloutTimedOut",
                            format!(
                                "the rollout of stage {} did not complete within {}: {progress}",
                                stage.name,
                                human(timeout)
                            ),
                        ));
                    }
                    self.requeue_at(deadline);
                    return Check::Waiting(Outcome::progressing(
                        &stage.name,
                        "RollingOut",
                        format!(
                            "stage {}: waiting for the rollout of {namespace}/{name}",
                            stage.name
                        ),
                    ));
                }
            }
        }
        Check::Passed
    }

    /// Records each Deployment's pod template and revision before the stage changes anything.
    /// A Deployment whose state is already captured is never captured again: after a restart
    /// it may already run the new template. Returns where the release is when it captured.
    fn capture_known_good(
        &mut self,
        index: usize,
        stage: &Stage,
        namespace: &str,
    ) -> Option<Outcome> {
        let missing: Vec<&str> = stage
            .deployments
            .iter()
            .map(|d| d.0.as_str())
            .filter(|name| {
                !self.status.stages[index].deployments.iter().any(|d| {
                    d.namespace == namespace && d.name == *name && d.known_good_template.is_some()
                })
            })
            .collect();
        if missing.is_empty() {
            return None;
        }
        let mut captured = Vec::new();
        for name in missing {
            let observed = match self.deployment_to_change(stage, namespace, name) {
                Ok(observed) => observed,
                Err(blocked) => return Some(blocked),
            };
            // Known-good is per Deployment and per release: a Deployment another stage of
            // this release captured keeps the state it had before the release touched it.
            let earlier = self
                .status
                .stages
                .iter()
                .flat_map(|s| &s.deployments)
                .find(|d| {
                    d.namespace == namespace && d.name == name && d.known_good_template.is_some()
                });
            captured.push(match earlier {
                Some(earlier) => DeploymentStatus {
                    rolled_out_revision: None,
                    restored_revision: None,
                    left_alone: None,
                    ..earlier.clone()
                },
                None => DeploymentStatus {
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                    known_good_revision: observed.revision.clone(),
                    known_good_template: Some(Compact::new(&observed.template)),
                    rolled_out_revision: None,
                    restored_revision: None,
                    known_good_driver: observed.driven_by.clone().filter(|d| *d != self.me),
                    left_alone: None,
                },
            });
        }
        let status = &mut self.status.stages[index];
        for capture in captured {
            match status
                .deployments
                .iter_mut()
                .find(|d| d.namespace == capture.namespace && d.name == capture.name)
            {
                Some(existing) => *existing = capture,
                None => status.deployments.push(capture),
            }
        }
        if status.rollout_started_at.is_none() {
            status.rollout_started_at = Some(to_k8s_time(self.now));
        }
        // The rollout waits for this status to be persisted; look again right after.
        self.requeue_now = true;
        Some(Outcome::progressing(
            &stage.name,
            "CapturingKnownGood",
            format!(
                "stage {}: recorded the known-good state of its Deployments before rolling out",
                stage.name
            ),
        ))
    }

    /// Pods of the stage's Deployments that cannot start fail it during verification too
    /// (e.g. a crash loop that began after the rollout completed).
    fn pods_start_after_rollout(
        &mut self,
        _index: usize,
        stage: &Stage,
        _timeouts: StageTimeouts,
    ) -> Check {
        let namespace = self.stage_namespace(stage);
        let grace = self.observed.config.pod_problem_grace;
        for deployment in &stage.deployments {
            let Some(observed) = self.observed.deployment(&namespace, &deployment.0) else {
                continue;
            };
            match judge_pod_problems(&observed.pod_problems, grace, self.now) {
                PodProblems::Lasting(problem) => {
                    return Check::Failed(failure(
                        problem.reason.as_str(),
                        format!(
                            "{namespace}/{}: pod {} has been {} for {}: {}",
                            deployment.0,
                            problem.pod,
                            problem.reason,
                            human(grace),
                            problem.message
                        ),
                    ));
                }
                PodProblems::GraceUntil(at) => self.requeue_at(at),
                PodProblems::None => {}
            }
        }
        Check::Passed
    }

    /// The stage's smoke-test Job, if it has one.
    fn smoke_test_result(&mut self, index: usize, stage: &Stage, timeouts: StageTimeouts) -> Check {
        match &stage.smoke_test {
            Some(smoke_test) => self.job_check(
                index,
                stage,
                JobKind::SmokeTest,
                smoke_test,
                timeouts.smoke_test,
            ),
            None => Check::Passed,
        }
    }

    /// The stage's bake time (`bake`), after its smoke test passed: the stage stays Verifying
    /// that long, and fails (and is reverted) if one of its Deployments loses an available
    /// replica (a pod that crash-loops or fails its readiness probe) or a condition gate of
    /// the release's requirements no longer holds.
    fn bake(&mut self, index: usize, stage: &Stage, timeouts: StageTimeouts) -> Check {
        let Some(bake) = timeouts.bake else {
            return Check::Passed;
        };
        let started = match self.status.stages[index].bake_started_at.as_ref() {
            Some(at) => from_k8s_time(at),
            None => {
                self.status.stages[index].bake_started_at = Some(to_k8s_time(self.now));
                self.record(
                    EventType::Normal,
                    "BakeStarted",
                    Some(&stage.name),
                    format!(
                        "stage {}: its checks passed; watching it for {} before it is verified",
                        stage.name,
                        human(bake)
                    ),
                );
                self.now
            }
        };
        let namespace = self.stage_namespace(stage);
        for deployment in &stage.deployments {
            let Some(observed) = self.observed.deployment(&namespace, &deployment.0) else {
                continue;
            };
            if observed.available_replicas < observed.desired_replicas {
                return Check::Failed(failure(
                    "BakeFailed",
                    format!(
                        "during its bake time, {namespace}/{} has {} of {} replicas available",
                        deployment.0, observed.available_replicas, observed.desired_replicas
                    ),
                ));
            }
        }
        let spec = self.spec;
        for requirement in spec.requirements.iter().filter(|r| r.condition.is_some()) {
            if let Some(lost) = self
                .observed
                .gates
                .requirement_details
                .iter()
                .find(|d| d.name == requirement.name && !d.met)
            {
                return Check::Failed(failure(
                    "BakeFailed",
                    format!(
                        "during its bake time, requirement {} no longer holds: {}",
                        requirement.name,
                        lost.message
                            .as_deref()
                            .unwrap_or("its condition is not met")
                    ),
                ));
            }
        }
        let end = add(started, bake);
        if end <= self.now {
            return Check::Passed;
        }
        self.requeue_at(end);
        Check::Waiting(Outcome::progressing(
            &stage.name,
            "Baking",
            format!(
                "stage {}: its checks passed; watching its Deployments until {} (bake {})",
                stage.name,
                end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human(bake)
            ),
        ))
    }

    /// Annotates each Deployment of a stage that passed its checks, one at a time.
    fn mark_known_good(&mut self, index: usize, stage: &Stage, _timeouts: StageTimeouts) -> Check {
        let namespace = self.stage_namespace(stage);
        let marker = format!(
            "{}/{}@{}",
            self.release_namespace, self.release_name, self.spec.version
        );
        for deployment in &stage.deployments {
            let name = deployment.0.as_str();
            let observed = match self.deployment_to_change(stage, &namespace, name) {
                Ok(observed) => observed,
                Err(blocked) => return Check::Waiting(blocked),
            };
            if observed.known_good_release.as_deref() == Some(marker.as_str()) {
                continue;
            }
            let revision = self
                .deployment_status(index, &namespace, name)
                .and_then(|d| d.rolled_out_revision.clone())
                .or_else(|| observed.revision.clone());
            let mut annotations = std::collections::BTreeMap::from([(
                ANNOTATION_KNOWN_GOOD_RELEASE.to_owned(),
                marker.clone(),
            )]);
            if let Some(revision) = &revision {
                annotations.insert(ANNOTATION_KNOWN_GOOD_REVISION.to_owned(), revision.clone());
            }
            self.action = Action::MarkKnownGood {
                stage: stage.name.clone(),
                namespace: namespace.clone(),
                deployment: name.to_owned(),
                revision,
                annotations,
            };
            return Check::Waiting(Outcome::progressing(
                &stage.name,
                "MarkingKnownGood",
                format!(
                    "stage {}: marking {namespace}/{name} known-good",
                    stage.name
                ),
            ));
        }
        Check::Passed
    }

    /// The observed Deployment a stage is to change, or why the release is blocked on it.
    fn deployment_to_change(
        &self,
        stage: &Stage,
        namespace: &str,
        name: &str,
    ) -> Result<&'a ObservedDeployment, Outcome> {
        let world: &'a Observed = self.observed;
        let Some(observed) = world.deployment(namespace, name) else {
            return Err(Outcome::stalled(
                &stage.name,
                "DeploymentNotFound",
                format!(
                    "stage {}: Deployment {namespace}/{name} does not exist; create it or fix spec.stages",
                    stage.name
                ),
            ));
        };
        if images_to_roll_out(&observed.template, &self.spec.images).is_empty() {
            let containers: Vec<&str> = self
                .spec
                .images
                .iter()
                .map(|i| i.container.as_str())
                .collect();
            return Err(Outcome::stalled(
                &stage.name,
                "NoMatchingContainer",
                format!(
                    "stage {}: Deployment {namespace}/{name} has none of the release's containers ({})",
                    stage.name,
                    containers.join(", ")
                ),
            ));
        }
        Ok(observed)
    }

    // ---------------------------------------------------------------------------------------
    // Failure and revert
    // ---------------------------------------------------------------------------------------

    /// Records why the release fails, on the stage it failed in, and opens an incident when a
    /// stage after the first (production) was changed.
    fn fail(&mut self, index: usize, cause: Failure) {
        let touched_production = self.status.changed_production();
        let Some(stage) = self.status.stages.get_mut(index) else {
            return;
        };
        let stage_name = stage.name.clone();
        stage.failure = Some(cause.clone());
        stage.phase = Some(StagePhase::Failed);
        self.record(
            EventType::Warning,
            &cause.reason,
            Some(&stage_name),
            format!("stage {stage_name}: {}", cause.message),
        );
        if touched_production && self.status.incident.is_none() {
            self.status.incident = Some(IncidentStatus {
                opened_at: to_k8s_time(self.now),
                restored_at: None,
                closed_at: None,
                stage: stage_name.clone(),
                reason: cause.reason.clone(),
                message: cause.message.clone(),
                revision_restored: None,
            });
            self.record(
                EventType::Warning,
                "IncidentOpened",
                Some(&stage_name),
                format!(
                    "production was changed and is being reverted: {}",
                    cause.message
                ),
            );
        }
    }

    /// Restores every captured Deployment the release still drives to its known-good
    /// template, most recent stage first, then waits for the reverts to complete. A
    /// Deployment another Release drives now, or one changed since this release rolled it
    /// out, is left alone (see [`standing`]) and named in the outcome.
    fn revert_to_known_good(&mut self) -> Outcome {
        let Some((failed_index, cause)) = self
            .failed_stage()
            .map(|i| (i, self.status.stages[i].failure.clone().unwrap_or_default()))
        else {
            return self.rolled_back_outcome();
        };
        let failed_stage = self.status.stages[failed_index].name.clone();
        // A failed check reverts the stages that did not pass: a verified staging keeps the
        // release it verified. An abort or a rejected sign-off withdraws the whole release.
        let withdraw_all = matches!(cause.reason.as_str(), REASON_ABORTED | REASON_REJECTED);
        let reverts_stage = |stage: &StageStatus| {
            (withdraw_all || stage.phase != Some(StagePhase::Verified))
                && stage
                    .deployments
                    .iter()
                    .any(|d| d.known_good_template.is_some())
        };
        // Most recent stage first; within a stage, the last Deployment rolled out first. A
        // Deployment is reverted once, even when several stages captured it.
        let mut seen = BTreeSet::new();
        let targets: Vec<(usize, usize)> = (0..self.status.stages.len())
            .rev()
            .filter(|&s| reverts_stage(&self.status.stages[s]))
            .flat_map(|s| {
                let deployments = &self.status.stages[s].deployments;
                (0..deployments.len())
                    .rev()
                    .filter(move |&d| deployments[d].known_good_template.is_some())
                    .map(move |d| (s, d))
            })
            .filter(|&(s, d)| {
                let status = &self.status.stages[s].deployments[d];
                seen.insert((status.namespace.clone(), status.name.clone()))
            })
            .collect();
        for stage in &mut self.status.stages {
            if reverts_stage(stage) && stage.phase != Some(StagePhase::RolledBack) {
                stage.phase = Some(StagePhase::RollingBack);
            }
        }

        // First send every revert that is needed, one per plan. A namespace that withdrew
        // its consent gets no revert; the others are reverted, then the release stalls.
        let mut refused: Vec<(usize, usize)> = Vec::new();
        for &(s, d) in &targets {
            let status = self.status.stages[s].deployments[d].clone();
            let Some(known_good) = status.known_good_template.as_ref().map(Compact::get) else {
                continue;
            };
            let Some(observed) = self.observed.deployment(&status.namespace, &status.name) else {
                continue; // Deleted: nothing left to revert.
            };
            if runs_known_good(&observed.template, &known_good) {
                continue;
            }
            let target = format!("{}/{}", status.namespace, status.name);
            let left_alone =
                standing(&self.me, &self.spec.images, observed).why_left_alone(&target);
            self.status.stages[s].deployments[d]
                .left_alone
                .clone_from(&left_alone);
            if left_alone.is_some() {
                continue;
            }
            if !self.observed.may_act_in(&status.namespace) {
                refused.push((s, d));
                continue;
            }
            let message = format!(
                "{}; reverting {target} to revision {}",
                cause.message,
                status.known_good_revision.as_deref().unwrap_or("(unknown)")
            );
            self.action = Action::Revert {
                stage: self.status.stages[s].name.clone(),
                namespace: status.namespace.clone(),
                deployment: status.name.clone(),
                revision: status.known_good_revision.clone(),
                template: Box::new(known_good),
                generation: observed.generation,
                driver: status.known_good_driver.clone(),
            };
            return Outcome::new(
                OutcomeKind::RollingBack,
                Some(&failed_stage),
                &cause.reason,
                message,
            );
        }

        // Then wait until each revert has rolled out.
        let grace = self.observed.config.pod_problem_grace;
        for &(s, d) in &targets {
            if refused.contains(&(s, d)) {
                continue;
            }
            let status = self.status.stages[s].deployments[d].clone();
            let Some(observed) = self.observed.deployment(&status.namespace, &status.name) else {
                continue;
            };
            if status.left_alone.is_some() {
                continue;
            }
            let target = format!("{}/{}", status.namespace, status.name);
            match rollout_progress(observed) {
                RolloutProgress::Complete => {
                    // A Deployment the release never changed keeps its revision.
                    if observed.revision != status.known_good_revision {
                        self.status.stages[s].deployments[d].restored_revision =
                            observed.revision.clone();
                    }
                }
                RolloutProgress::DeadlineExceeded(message) => {
                    return Outcome::stalled(
                        &failed_stage,
                        "RevertFailed",
                        format!(
                            "{}; the revert of {target} failed: {message}",
                            cause.message
                        ),
                    );
                }
                RolloutProgress::InProgress(_) => {
                    match judge_pod_problems(&observed.pod_problems, grace, self.now) {
                        PodProblems::Lasting(problem) => {
                            return Outcome::stalled(
                                &failed_stage,
                                "RevertFailed",
                                format!(
                                    "{}; the revert of {target} cannot complete: pod {} has been {} for {}",
                                    cause.message,
                                    problem.pod,
                                    problem.reason,
                                    human(grace)
                                ),
                            );
                        }
                        PodProblems::GraceUntil(at) => self.requeue_at(at),
                        PodProblems::None => {}
                    }
                    return Outcome::new(
                        OutcomeKind::RollingBack,
                        Some(&failed_stage),
                        &cause.reason,
                        format!("{}; waiting for the revert of {target}", cause.message),
                    );
                }
            }
        }

        // Every revert relman may send is complete; the rest wait for their namespace.
        if let Some(&(s, d)) = refused.first() {
            let status = self.status.stages[s].deployments[d].clone();
            let stage = self.status.stages[s].name.clone();
            let field = self.stage_field(&stage);
            let refusal = self.consent_message(&field, &stage, &status.namespace);
            self.requeue_consent();
            return Outcome::stalled(
                &failed_stage,
                REASON_NAMESPACE_NOT_PERMITTED,
                format!(
                    "{}; the revert of {}/{} was not sent: {refusal}",
                    cause.message, status.namespace, status.name
                ),
            );
        }

        // Every revert is complete.
        let now = to_k8s_time(self.now);
        for stage in &mut self.status.stages {
            if stage.phase == Some(StagePhase::RollingBack) {
                stage.phase = Some(StagePhase::RolledBack);
                stage.finished_at = Some(now.clone());
            }
        }
        let outcome = self.rolled_back_outcome();
        let restored_production = self.restored_revisions(1);
        if let Some(incident) = &mut self.status.incident
            && incident.restored_at.is_none()
        {
            incident.restored_at = Some(now);
            incident.revision_restored = Some(restored_production).filter(|r| !r.is_empty());
        }
        self.record(
            EventType::Warning,
            "RolledBack",
            Some(&failed_stage),
            outcome.message.clone(),
        );
        outcome
    }

    /// The final outcome of a reverted release, from the status alone.
    fn rolled_back_outcome(&self) -> Outcome {
        let (stage, cause) = match self.failed_stage() {
            Some(index) => (
                Some(self.status.stages[index].name.as_str()),
                self.status.stages[index]
                    .failure
                    .clone()
                    .unwrap_or_default(),
            ),
            None => (
                None,
                failure("RolledBack", "the release was rolled back".into()),
            ),
        };
        let restored = self.restored_revisions(0);
        let mut message = if restored.is_empty() {
            format!("{}; no Deployment needed a revert", cause.message)
        } else {
            format!("{}; restored {restored}", cause.message)
        };
        let mut seen = BTreeSet::new();
        for left_alone in self
            .status
            .stages
            .iter()
            .flat_map(|s| &s.deployments)
            .filter_map(|d| d.left_alone.as_ref())
        {
            if seen.insert(left_alone) {
                message.push_str("; ");
                message.push_str(left_alone);
            }
        }
        // A verified stage keeps the release, except for a Deployment a reverted stage shares.
        let reverted: BTreeSet<(&str, &str)> = self
            .status
            .stages
            .iter()
            .filter(|s| s.phase != Some(StagePhase::Verified))
            .flat_map(|s| &s.deployments)
            .map(|d| (d.namespace.as_str(), d.name.as_str()))
            .collect();
        for stage in self
            .status
            .stages
            .iter()
            .filter(|s| s.phase == Some(StagePhase::Verified))
        {
            let kept: Vec<String> = stage
                .deployments
                .iter()
                .filter(|d| !reverted.contains(&(d.namespace.as_str(), d.name.as_str())))
                .map(|d| format!("{}/{}", d.namespace, d.name))
                .collect();
            if !kept.is_empty() {
                message.push_str(&format!(
                    "; {} keep{} version {} (stage {} verified it)",
                    kept.join(", "),
                    if kept.len() == 1 { "s" } else { "" },
                    self.spec.version,
                    stage.name
                ));
            }
        }
        Outcome::new(OutcomeKind::RolledBack, stage, &cause.reason, message)
    }

    /// `ns/name to revision N, …` for the reverted Deployments of the stages from `first_stage`.
    fn restored_revisions(&self, first_stage: usize) -> String {
        self.status
            .stages
            .iter()
            .skip(first_stage)
            .rev()
            .flat_map(|s| s.deployments.iter().rev())
            .filter_map(|d| {
                d.restored_revision.as_ref().map(|rev| {
                    format!(
                        "{}/{} to revision {rev} (the template of known-good revision {})",
                        d.namespace,
                        d.name,
                        d.known_good_revision.as_deref().unwrap_or("unknown")
                    )
                })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    // ---------------------------------------------------------------------------------------
    // Status bookkeeping
    // ---------------------------------------------------------------------------------------

    /// One status entry per spec stage, in spec order, followed by entries of stages no longer
    /// in the spec that still hold captured state (so a revert can still restore them).
    fn sync_stage_statuses(&mut self) {
        let mut old = std::mem::take(&mut self.status.stages);
        let mut stages = Vec::with_capacity(self.spec.stages.len());
        for stage in &self.spec.stages {
            let mut status = match old.iter().position(|s| s.name == stage.name) {
                Some(position) => old.remove(position),
                None => StageStatus {
                    name: stage.name.clone(),
                    ..StageStatus::default()
                },
            };
            status.phase.get_or_insert(StagePhase::Pending);
            stages.push(status);
        }
        stages.extend(old.into_iter().filter(|s| {
            s.deployments
                .iter()
                .any(|d| d.known_good_template.is_some())
        }));
        self.status.stages = stages;
    }

    /// Adds the approvals that count to `status.approvals`. Records are never dropped, so the
    /// audit trail survives a deleted ReleaseApproval.
    fn record_counted_approvals(&mut self) {
        for approval in self.counted_approvals() {
            if self
                .status
                .approvals
                .iter()
                .any(|r| r.name == approval.name)
            {
                continue;
            }
            self.status.approvals.push(ApprovalRecord {
                name: approval.name.clone(),
                gate: approval.gate.clone(),
                decision: match approval.decision {
                    Decision::Approved => "Approved".to_owned(),
                    Decision::Rejected => "Rejected".to_owned(),
                },
                approver: approval.approver.clone(),
                at: approval.created.map(to_k8s_time),
            });
        }
        self.status
            .approvals
            .sort_by(|a, b| (&a.at, &a.name).cmp(&(&b.at, &b.name)));
    }

    fn close_incident_once_root_cause_is_recorded(&mut self) {
        let root_cause = self
            .spec
            .incident
            .as_ref()
            .and_then(|i| i.root_cause.as_deref())
            .filter(|c| !c.trim().is_empty());
        if let (Some(root_cause), Some(incident)) = (root_cause, &mut self.status.incident)
            && incident.closed_at.is_none()
        {
            incident.closed_at = Some(to_k8s_time(self.now));
            let stage = incident.stage.clone();
            self.record(
                EventType::Normal,
                "IncidentClosed",
                Some(&stage),
                format!("root cause recorded: {root_cause}"),
            );
        }
    }

    /// Phase, current stage, observedGeneration, conditions, and a history entry when the
    /// release starts waiting or stalls.
    fn write_summary(&mut self, outcome: &Outcome) {
        let phase = outcome.phase();
        if self.old.phase != Some(phase)
            && matches!(
                phase,
                ReleasePhase::AwaitingApproval
                    | ReleasePhase::AwaitingWindow
                    | ReleasePhase::Failed
            )
        {
            let type_ = if phase == ReleasePhase::Failed {
                EventType::Warning
            } else {
                EventType::Normal
            };
            let stage = outcome.stage.clone();
            self.record(
                type_,
                &outcome.reason,
                stage.as_deref(),
                outcome.message.clone(),
            );
        }
        self.status.phase = Some(phase);
        self.status.stage = outcome.stage.clone();
        self.status.observed_generation = self.generation;
        self.write_conditions(outcome);
    }

    fn write_conditions(&mut self, outcome: &Outcome) {
        let (generation, now) = (self.generation, self.now);
        let mut list = std::mem::take(&mut self.status.conditions);
        let mut set = |type_: &str, status: Status, reason: &str, message: &str| {
            set_condition(&mut list, type_, status, reason, message, generation, now);
        };

        // kstatus.
        let (reason, message) = (outcome.reason.as_str(), outcome.message.as_str());
        let succeeded = outcome.kind == OutcomeKind::Succeeded;
        let reconciling = matches!(
            outcome.kind,
            OutcomeKind::AwaitingRequirements
                | OutcomeKind::AwaitingApproval
                | OutcomeKind::AwaitingWindow
                | OutcomeKind::AwaitingDeployment
                | OutcomeKind::Progressing
                | OutcomeKind::RollingBack
        );
        let stalled = matches!(outcome.kind, OutcomeKind::Stalled | OutcomeKind::RolledBack);
        set(READY, Status::from_bool(succeeded), reason, message);
        set(RECONCILING, Status::from_bool(reconciling), reason, message);
        set(STALLED, Status::from_bool(stalled), reason, message);

        // Gates.
        for (type_, gate) in [
            (REQUIREMENTS_MET, self.requirements_condition()),
            (APPROVED, self.approval_condition()),
            (WINDOW_OPEN, self.window_condition()),
        ] {
            let (status, reason, message) = gate;
            set(type_, status, &reason, &message);
        }
        for (index, stage) in self.spec.stages.iter().enumerate() {
            let status = &self.status.stages[index];
            let (deployed, verified) = stage_conditions(stage, status);
            set(
                &conditions::stage_deployed(&stage.name),
                deployed.0,
                &deployed.1,
                &deployed.2,
            );
            set(
                &conditions::stage_verified(&stage.name),
                verified.0,
                &verified.1,
                &verified.2,
            );
        }

        let rolled_back = match outcome.kind {
            OutcomeKind::RolledBack => (Status::True, reason, message),
            OutcomeKind::RollingBack => (Status::False, "RollingBack", message),
            OutcomeKind::Stalled
                if reason == "RevertFailed"
                    || (reason == REASON_NAMESPACE_NOT_PERMITTED
                        && self.failed_stage().is_some()) =>
            {
                (Status::False, reason, message)
            }
            _ => (Status::False, "NotRolledBack", "no revert happened"),
        };
        set(ROLLED_BACK, rolled_back.0, rolled_back.1, rolled_back.2);
        self.status.conditions = list;

        if !self.started_before_this_plan(0) {
            self.status.requirements = self.observed.gates.requirement_details.clone();
        }
    }

    /// RequirementsMet follows the gate until the first stage starts, then stays as it was.
    fn requirements_condition(&self) -> (Status, String, String) {
        let gate = &self.observed.gates.requirements;
        if self.started_before_this_plan(0)
            && let Some(kept) = self.kept_condition(REQUIREMENTS_MET)
        {
            return kept;
        }
        (
            Status::from_bool(gate.open),
            gate.reason.clone(),
            gate.message.clone(),
        )
    }

    /// Approved speaks for the first stage that asks for a sign-off and had not started; once
    /// every such stage started it stays as it was.
    fn approval_condition(&self) -> (Status, String, String) {
        let gated: Vec<(usize, &Stage)> = self
            .spec
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| required_approvers(s).is_some())
            .collect();
        if gated.is_empty() {
            return (
                Status::True,
                "NotRequired".into(),
                "no stage of this release asks for a sign-off".into(),
            );
        }
        if let Some(rejection) = self.rejection() {
            return (
                Status::False,
                REASON_REJECTED.into(),
                format!(
                    "{} rejected version {} at gate {}",
                    rejection.approver, rejection.version, rejection.gate
                ),
            );
        }
        let pending = gated
            .iter()
            .find(|(i, _)| !self.started_before_this_plan(*i));
        let stage = match (pending, self.kept_condition(APPROVED), gated.last()) {
            (Some((_, stage)), _, _) => *stage,
            (None, Some(kept), _) => return kept,
            (None, None, Some((_, last))) => *last,
            (None, None, None) => return (Status::True, "NotRequired".into(), String::new()),
        };
        let approvers = self.approvers_of(&stage.name);
        if approvers.len() >= required_approvers(stage).unwrap_or(1) {
            let names: Vec<_> = approvers.into_iter().collect();
            (
                Status::True,
                "Approved".into(),
                format!("stage {} approved by {}", stage.name, names.join(", ")),
            )
        } else {
            (
                Status::False,
                "AwaitingApproval".into(),
                self.awaiting_approval_message(stage, &approvers),
            )
        }
    }

    /// WindowOpen speaks for the first stage that waits for a window and has not started; once
    /// every such stage started it stays as it was.
    fn window_condition(&self) -> (Status, String, String) {
        let gated: Vec<usize> = (0..self.spec.stages.len())
            .filter(|&i| self.spec.stages[i].window)
            .collect();
        if gated.is_empty() {
            return (
                Status::True,
                "NotRequired".into(),
                "no stage of this release waits for a deployment window".into(),
            );
        }
        let Some(window) = &self.observed.gates.window else {
            return (
                Status::True,
                "NoCalendar".into(),
                "the release names no calendar, so no window gates its stages".into(),
            );
        };
        if gated.iter().all(|&i| self.started_before_this_plan(i))
            && let Some(kept) = self.kept_condition(WINDOW_OPEN)
        {
            return kept;
        }
        (
            Status::from_bool(window.open),
            window.reason.clone(),
            window.message.clone(),
        )
    }

    fn kept_condition(&self, type_: &str) -> Option<(Status, String, String)> {
        conditions::find_condition(&self.old.conditions, type_).map(|c| {
            (
                Status::from_bool(c.status == "True"),
                c.reason.clone(),
                c.message.clone(),
            )
        })
    }

    // ---------------------------------------------------------------------------------------
    // Small helpers
    // ---------------------------------------------------------------------------------------

    fn record(&mut self, type_: EventType, event: &str, stage: Option<&str>, message: String) {
        self.status.history.push(HistoryEntry {
            at: to_k8s_time(self.now),
            event: event.to_owned(),
            stage: stage.map(str::to_owned),
            message: Some(message.clone()),
        });
        let excess = self.status.history.len().saturating_sub(MAX_HISTORY);
        self.status.history.drain(..excess);
        self.events.push(PlannedEvent {
            type_,
            reason: event.to_owned(),
            message,
        });
    }

    fn requeue_at(&mut self, at: DateTime<Utc>) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |current| current.min(at)));
    }

    fn stage_phase(&self, index: usize) -> StagePhase {
        self.status
            .stages
            .get(index)
            .and_then(|s| s.phase)
            .unwrap_or(StagePhase::Pending)
    }

    fn set_stage_phase(&mut self, index: usize, phase: StagePhase) {
        if let Some(stage) = self.status.stages.get_mut(index) {
            stage.phase = Some(phase);
        }
    }

    /// Whether the spec stage `index` had started according to the status as last written.
    /// Gate conditions follow their gate until then, and keep what they said afterwards.
    fn started_before_this_plan(&self, index: usize) -> bool {
        self.spec.stages.get(index).is_some_and(|stage| {
            self.old
                .stages
                .iter()
                .find(|s| s.name == stage.name)
                .and_then(|s| s.phase)
                .is_some_and(|phase| phase != StagePhase::Pending)
        })
    }

    fn all_stages_verified(&self) -> bool {
        (0..self.spec.stages.len()).all(|i| self.stage_phase(i) == StagePhase::Verified)
    }

    /// The first spec stage not verified yet, or the last one when all are.
    fn current_stage(&self) -> usize {
        (0..self.spec.stages.len())
            .find(|&i| self.stage_phase(i) != StagePhase::Verified)
            .unwrap_or(self.spec.stages.len().saturating_sub(1))
    }

    /// The stage a failure was recorded on.
    fn failed_stage(&self) -> Option<usize> {
        self.status.stages.iter().position(|s| s.failure.is_some())
    }

    fn stage_namespace(&self, stage: &Stage) -> String {
        stage.namespace_or(&self.release_namespace).to_owned()
    }

    /// `spec.stages[i].namespace` of the spec stage `stage`, or the status entry's field when
    /// the stage was removed from the spec.
    fn stage_field(&self, stage: &str) -> String {
        match self.spec.stages.iter().position(|s| s.name == stage) {
            Some(index) => format!("spec.stages[{index}].namespace"),
            None => format!("status.stages[{stage}]"),
        }
    }

    /// `Some` (Stalled, [`REASON_NAMESPACE_NOT_PERMITTED`]) when the spec stage `index` deploys
    /// to a namespace other than the release's that has not accepted the release.
    fn namespace_refusal(&mut self, index: usize, stage: &Stage) -> Option<Outcome> {
        let namespace = self.stage_namespace(stage);
        if self.observed.may_act_in(&namespace) {
            return None;
        }
        let field = format!("spec.stages[{index}].namespace");
        let message = self.consent_message(&field, &stage.name, &namespace);
        self.requeue_consent();
        Some(Outcome::stalled(
            &stage.name,
            REASON_NAMESPACE_NOT_PERMITTED,
            message,
        ))
    }

    /// Why `namespace` (named by `field` of stage `stage`) refuses the release, and the fix.
    fn consent_message(&self, field: &str, stage: &str, namespace: &str) -> String {
        let own = &self.release_namespace;
        let key = ANNOTATION_ACCEPT_RELEASES_FROM;
        let (why, fix) = match self.observed.namespace_consent.get(namespace) {
            Some(NamespaceConsent::NotFound) => (
                format!("namespace {namespace} does not exist"),
                format!(
                    "create it, and if its owners agree: kubectl annotate namespace {namespace} {key}={own}"
                ),
            ),
            Some(NamespaceConsent::NotListed { value }) => {
                let listed: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .chain([own.as_str()])
                    .collect();
                (
                    format!("its {key} annotation ({value:?}) does not list {own}"),
                    format!(
                        "if its owners agree: kubectl annotate --overwrite namespace {namespace} {key}={}",
                        listed.join(",")
                    ),
                )
            }
            Some(NamespaceConsent::Unreadable { message }) => (
                format!(
                    "relman may not read Namespace {namespace}, so it cannot see whether it consents: {message}"
                ),
                format!(
                    "give relman's ServiceAccount get on that Namespace (chart value rbac.stageNamespaces), and if its owners agree: kubectl annotate namespace {namespace} {key}={own}"
                ),
            ),
            Some(NamespaceConsent::NotAnnotated | NamespaceConsent::Accepted) | None => (
                format!("it has no {key} annotation"),
                format!("if its owners agree: kubectl annotate namespace {namespace} {key}={own}"),
            ),
        };
        format!(
            "{field}: stage {stage} deploys to namespace {namespace}, which does not accept Releases from namespace {own} ({why}); nothing is changed there. To allow it, {fix}"
        )
    }

    /// Looks at the namespaces again after [`NAMESPACE_CONSENT_RECHECK`]: nothing watches them.
    fn requeue_consent(&mut self) {
        let at = add(self.now, NAMESPACE_CONSENT_RECHECK);
        self.requeue_at(at);
    }

    /// The last line of defence: an action in a namespace that has not accepted the release
    /// is dropped and the release stalls. The lifecycle checks consent before each step, so
    /// this should never change a plan.
    fn refuse_actions_without_consent(&mut self, outcome: Outcome) -> Outcome {
        let (stage, namespace) = match &self.action {
            Action::None => return outcome,
            Action::CreateJob {
                stage, namespace, ..
            }
            | Action::RollOut {
                stage, namespace, ..
            }
            | Action::Revert {
                stage, namespace, ..
            }
            | Action::MarkKnownGood {
                stage, namespace, ..
            } => (stage.clone(), namespace.clone()),
        };
        if self.observed.may_act_in(&namespace) {
            return outcome;
        }
        self.action = Action::None;
        let field = self.stage_field(&stage);
        let message = self.consent_message(&field, &stage, &namespace);
        self.requeue_consent();
        Outcome::stalled(&stage, REASON_NAMESPACE_NOT_PERMITTED, message)
    }

    /// While the API server refuses relman's last action for this release (403), the release
    /// is Stalled with the refusal, which names the verb and the resource; the action is still
    /// planned, and tried again after [`FORBIDDEN_RECHECK`], so granting the permission is
    /// enough for the release to go on.
    fn stall_while_denied(&mut self, outcome: Outcome) -> Outcome {
        let Some(denied) = &self.observed.denied else {
            return outcome;
        };
        if self.action == Action::None {
            return outcome;
        }
        self.requeue_at(add(self.now, FORBIDDEN_RECHECK));
        let stage = outcome.stage.clone();
        Outcome::new(
            OutcomeKind::Stalled,
            stage.as_deref(),
            REASON_FORBIDDEN,
            format!(
                "the API server denied relman's request: {denied}. Grant relman's ServiceAccount this permission (docs/install.md); relman tries again every {}",
                human(FORBIDDEN_RECHECK)
            ),
        )
    }

    fn deployment_status(
        &mut self,
        index: usize,
        namespace: &str,
        name: &str,
    ) -> Option<&mut DeploymentStatus> {
        self.status.stages[index]
            .deployments
            .iter_mut()
            .find(|d| d.namespace == namespace && d.name == name)
    }

    /// Whether the status as last written holds the known-good state of this Deployment.
    fn capture_is_persisted(&self, stage: &str, namespace: &str, name: &str) -> bool {
        self.old.stages.iter().filter(|s| s.name == stage).any(|s| {
            s.deployments.iter().any(|d| {
                d.namespace == namespace && d.name == name && d.known_good_template.is_some()
            })
        })
    }

    /// Every duration of every stage, or the first that cannot be read.
    fn stage_timeouts(&self) -> Result<Vec<StageTimeouts>, InvalidField> {
        let config = &self.observed.config;
        let read = |value: Option<&String>, field: String, default: Duration| match value {
            None => Ok(default),
            Some(text) => parse_duration(text).map_err(|source| InvalidField { field, source }),
        };
        self.spec
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                Ok(StageTimeouts {
                    rollout: read(
                        stage.rollout_timeout.as_ref(),
                        format!("spec.stages[{i}].rolloutTimeout"),
                        config.default_rollout_timeout,
                    )?,
                    backup: read(
                        stage.backup.as_ref().and_then(|b| b.timeout.as_ref()),
                        format!("spec.stages[{i}].backup.timeout"),
                        config.default_job_timeout,
                    )?,
                    smoke_test: read(
                        stage.smoke_test.as_ref().and_then(|s| s.timeout.as_ref()),
                        format!("spec.stages[{i}].smokeTest.timeout"),
                        config.default_job_timeout,
                    )?,
                    bake: match &stage.bake {
                        None => None,
                        Some(text) => {
                            Some(parse_duration(text).map_err(|source| InvalidField {
                                field: format!("spec.stages[{i}].bake"),
                                source,
                            })?)
                        }
                    },
                })
            })
            .collect()
    }
}

/// How many distinct approvers a stage needs, if it asks for a sign-off.
fn required_approvers(stage: &Stage) -> Option<usize> {
    stage
        .approval
        .as_ref()
        .filter(|a| a.required)
        .map(|a| usize::try_from(a.approvers.max(1)).unwrap_or(1))
}

fn progressing_reason(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "BackingUp",
        JobKind::SmokeTest => "SmokeTesting",
    }
}

/// `<Stage>Deployed` and `<Stage>Verified` for a stage in a phase.
fn stage_conditions(
    stage: &Stage,
    status: &StageStatus,
) -> ((Status, String, String), (Status, String, String)) {
    let name = &stage.name;
    let phase = status.phase.unwrap_or(StagePhase::Pending);
    let failed = || {
        let cause = status
            .failure
            .clone()
            .unwrap_or_else(|| failure("StageFailed", "the stage failed".into()));
        (
            Status::False,
            cause.reason,
            format!("stage {name}: {}", cause.message),
        )
    };
    let not = |reason: &str, message: String| (Status::False, reason.to_owned(), message);
    let deployed = match phase {
        StagePhase::Pending => not("StageNotStarted", format!("stage {name} has not started")),
        StagePhase::BackingUp => not("BackingUp", format!("stage {name}: the backup Job runs")),
        StagePhase::RollingOut => not("RollingOut", format!("stage {name}: rolling out")),
        StagePhase::Verifying | StagePhase::Verified => (
            Status::True,
            "RolloutComplete".to_owned(),
            format!("stage {name}: every Deployment rolled out"),
        ),
        StagePhase::Failed => failed(),
        StagePhase::RollingBack => not("RollingBack", format!("stage {name} is being reverted")),
        StagePhase::RolledBack => not(
            "RolledBack",
            format!("stage {name} was reverted to its known-good state"),
        ),
    };
    let verified = match phase {
        StagePhase::Pending | StagePhase::BackingUp | StagePhase::RollingOut => {
            not("NotDeployed", format!("stage {name} is not deployed yet"))
        }
        StagePhase::Verifying => not("Verifying", format!("stage {name}: running its checks")),
        StagePhase::Verified => (
            Status::True,
            if stage.smoke_test.is_some() {
                "SmokeTestSucceeded"
            } else {
                "RolloutComplete"
            }
            .to_owned(),
            format!("stage {name} passed its checks; its revisions are marked known-good"),
        ),
        StagePhase::Failed => failed(),
        StagePhase::RollingBack => not("RollingBack", format!("stage {name} is being reverted")),
        StagePhase::RolledBack => not(
            "RolledBack",
            format!("stage {name} was reverted to its known-good state"),
        ),
    };
    (deployed, verified)
}

/// `90s`, `10m`, `1h30m`: a duration as people write it.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text += &format!("{h}h");
    }
    if m > 0 {
        text += &format!("{m}m");
    }
    if s > 0 || text.is_empty() {
        text += &format!("{s}s");
    }
    text
}
