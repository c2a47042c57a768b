//! The planner's state and its entry points: what one plan reads, builds and returns, and the
//! small accessors every step shares.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::duration::{DurationError, parse_duration};
use crate::api::reason::Reason;
use crate::api::release::{
    DeploymentStatus, Failure, HistoryEntry, ReleasePhase, Stage, StagePhase,
};
use crate::api::time::{to_k8s_time, until};
use crate::api::{ReleaseSpec, ReleaseStatus};
use crate::plan::action::{Action, EventType, JobKind, Plan, PlannedEvent};
use crate::plan::observed::{Observed, ObservedDeployment};

/// The failure reason of a release withdrawn by `spec.abort`.
pub(super) const REASON_ABORTED: &str = Reason::Aborted.as_str();
/// The failure reason of a release whose sign-off was rejected.
pub(super) const REASON_REJECTED: &str = Reason::ApprovalRejected.as_str();
/// The Stalled reason of a release whose step the API server refuses to relman (403).
pub const REASON_FORBIDDEN: &str = Reason::Forbidden.as_str();
/// How often a release stalled for [`REASON_FORBIDDEN`] tries again: a permission granted
/// later lets it go on without anyone touching the Release.
pub const FORBIDDEN_RECHECK: Duration = Duration::from_secs(60);
/// The history entry and Event of an abort that reverted nothing: the release no longer
/// drives any Deployment it changed.
pub(super) const REASON_ABORT_IGNORED: &str = Reason::AbortIgnored.as_str();
/// The most history entries kept; the oldest go first.
pub(super) const MAX_HISTORY: usize = 100;
/// The most bytes of captured pod templates a Release keeps in its status (to revert): with
/// the rest of the status and the spec, the object stays well inside etcd's 1.5 MiB.
pub(super) const CAPTURE_BUDGET: usize = 512 * 1024;
/// The most sign-offs `status.approvals` lists; the oldest go first (see
/// `approvalsNotListed`).
pub(super) const MAX_APPROVAL_RECORDS: usize = 100;
/// The Stalled reason of a release whose stage would act in a namespace that has not
/// accepted it (see [`NamespaceConsent`]).
pub const REASON_NAMESPACE_NOT_PERMITTED: &str = Reason::NamespaceNotPermitted.as_str();
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
        // A finished release counts no approval.
        approval_enforcement: crate::plan::observed::ApprovalEnforcement::NotEnforced {
            reason: "a finished release reads no approvals".into(),
        },
        gates: crate::plan::observed::Gates::default(),
        namespace_consent: BTreeMap::new(),
        policies: BTreeMap::new(),
        abort_requested_by: None,
        denied: None,
        config: crate::plan::observed::PlanConfig::default(),
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
pub(super) struct InvalidField {
    /// The field's path, e.g. `spec.stages[1].smokeTest.timeout`.
    pub(super) field: String,
    pub(super) source: DurationError,
}

/// The durations of one stage, read from the spec or defaulted.
#[derive(Clone, Copy, Debug)]
pub(super) struct StageTimeouts {
    pub(super) rollout: Duration,
    pub(super) backup: Duration,
    pub(super) smoke_test: Duration,
    /// How long the stage stays under watch after its checks passed; `None`: no bake time.
    pub(super) bake: Option<Duration>,
}

/// Where the release is after this plan: sets the phase and the kstatus conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) kind: OutcomeKind,
    pub(super) stage: Option<String>,
    pub(super) reason: String,
    pub(super) message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OutcomeKind {
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
    pub(super) fn new(
        kind: OutcomeKind,
        stage: Option<&str>,
        reason: &str,
        message: String,
    ) -> Self {
        Self {
            kind,
            stage: stage.map(str::to_owned),
            reason: reason.to_owned(),
            message,
        }
    }

    pub(super) fn progressing(stage: &str, reason: &str, message: String) -> Self {
        Self::new(OutcomeKind::Progressing, Some(stage), reason, message)
    }

    pub(super) fn stalled(stage: &str, reason: &str, message: String) -> Self {
        Self::new(OutcomeKind::Stalled, Some(stage), reason, message)
    }

    pub(super) fn phase(&self) -> ReleasePhase {
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
pub(super) enum Check {
    /// The check passed: go on with the next one.
    Passed,
    /// Not done yet (or blocked): this is where the release is.
    Waiting(Outcome),
    /// The check failed: revert.
    Failed(Failure),
}

pub(super) fn failure(reason: &str, message: String) -> Failure {
    Failure {
        reason: reason.to_owned(),
        message,
    }
}

pub(super) struct Planner<'a> {
    pub(super) observed: &'a Observed,
    pub(super) spec: &'a ReleaseSpec,
    pub(super) release_name: String,
    pub(super) release_namespace: String,
    /// `namespace/name` of the Release: the value of the driven-by marker it sets.
    pub(super) me: String,
    pub(super) generation: Option<i64>,
    pub(super) now: DateTime<Utc>,
    /// The status as last written.
    pub(super) old: ReleaseStatus,
    /// The status being built.
    pub(super) status: ReleaseStatus,
    pub(super) action: Action,
    pub(super) requeue_at: Option<DateTime<Utc>>,
    pub(super) requeue_now: bool,
    pub(super) events: Vec<PlannedEvent>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(observed: &'a Observed) -> Self {
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

    pub(super) fn run(mut self) -> Plan {
        self.sync_stage_statuses();
        self.record_policies();
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

    pub(super) fn record(
        &mut self,
        type_: EventType,
        event: &str,
        stage: Option<&str>,
        message: String,
    ) {
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
            stage: stage.map(str::to_owned),
            message,
        });
    }

    pub(super) fn requeue_at(&mut self, at: DateTime<Utc>) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |current| current.min(at)));
    }

    pub(super) fn stage_phase(&self, index: usize) -> StagePhase {
        self.status
            .stages
            .get(index)
            .and_then(|s| s.phase)
            .unwrap_or(StagePhase::Pending)
    }

    pub(super) fn set_stage_phase(&mut self, index: usize, phase: StagePhase) {
        if let Some(stage) = self.status.stages.get_mut(index) {
            stage.phase = Some(phase);
        }
    }

    /// Whether the spec stage `index` had started according to the status as last written.
    /// Gate conditions follow their gate until then, and keep what they said afterwards.
    pub(super) fn started_before_this_plan(&self, index: usize) -> bool {
        self.spec.stages.get(index).is_some_and(|stage| {
            self.old
                .stages
                .iter()
                .find(|s| s.name == stage.name)
                .and_then(|s| s.phase)
                .is_some_and(|phase| phase != StagePhase::Pending)
        })
    }

    pub(super) fn all_stages_verified(&self) -> bool {
        (0..self.spec.stages.len()).all(|i| self.stage_phase(i) == StagePhase::Verified)
    }

    /// The first spec stage not verified yet, or the last one when all are.
    pub(super) fn current_stage(&self) -> usize {
        (0..self.spec.stages.len())
            .find(|&i| self.stage_phase(i) != StagePhase::Verified)
            .unwrap_or(self.spec.stages.len().saturating_sub(1))
    }

    /// The stage a failure was recorded on.
    pub(super) fn failed_stage(&self) -> Option<usize> {
        self.status.stages.iter().position(|s| s.failure.is_some())
    }

    pub(super) fn stage_namespace(&self, stage: &Stage) -> String {
        stage.namespace_or(&self.release_namespace).to_owned()
    }

    /// `spec.stages[i].namespace` of the spec stage `stage`, or the status entry's field when
    /// the stage was removed from the spec.
    pub(super) fn stage_field(&self, stage: &str) -> String {
        match self.spec.stages.iter().position(|s| s.name == stage) {
            Some(index) => format!("spec.stages[{index}].namespace"),
            None => format!("status.stages[{stage}]"),
        }
    }

    pub(super) fn deployment_status(
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
    pub(super) fn capture_is_persisted(&self, stage: &str, namespace: &str, name: &str) -> bool {
        self.old.stages.iter().filter(|s| s.name == stage).any(|s| {
            s.deployments.iter().any(|d| {
                d.namespace == namespace && d.name == name && d.known_good_template.is_some()
            })
        })
    }

    /// How many distinct approvers a stage needs, if it needs a sign-off: the most that the
    /// stage asks for and its namespace's policies demand.
    pub(super) fn required_approvers(&self, stage: &Stage) -> Option<usize> {
        let own = stage
            .approval
            .as_ref()
            .filter(|a| a.required)
            .map(|a| a.approvers.max(1));
        let demanded = self
            .observed
            .policy(&self.stage_namespace(stage))
            .approval()
            .map(|d| d.approvers);
        let needed = own.into_iter().chain(demanded).max()?;
        Some(usize::try_from(needed).unwrap_or(1))
    }

    /// The policies that keep the Release's creator from signing off `stage`, if any.
    pub(super) fn independence_demanded_by(&self, stage: &Stage) -> Option<String> {
        self.observed
            .policy(&self.stage_namespace(stage))
            .approval()
            .filter(|d| d.independent)
            .map(|d| d.by)
    }

    /// Whether `stage` waits for an open deployment window: it asks to, or a policy of its
    /// namespace demands a calendar.
    pub(super) fn waits_for_window(&self, stage: &Stage) -> bool {
        stage.window
            || !self
                .observed
                .policy(&self.stage_namespace(stage))
                .calendars()
                .is_empty()
    }

    /// Every duration of every stage, or the first that cannot be read.
    pub(super) fn stage_timeouts(&self) -> Result<Vec<StageTimeouts>, InvalidField> {
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

pub(super) fn progressing_reason(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => Reason::BackingUp.as_str(),
        JobKind::SmokeTest => Reason::SmokeTesting.as_str(),
    }
}

/// `90s`, `10m`, `1h30m`: a duration as people write it.
pub(super) fn human(duration: Duration) -> String {
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
