//! The status the plan writes: stage entries, counted sign-offs, the incident, the summary
//! and every condition.

use crate::api::Decision;
use crate::api::conditions::{
    self, APPROVED, READY, RECONCILING, REQUIREMENTS_MET, ROLLED_BACK, STALLED, Status,
    WINDOW_OPEN, set_condition,
};
use crate::api::reason::Reason;
use crate::api::release::{ApprovalRecord, ReleasePhase, Stage, StagePhase, StageStatus};
use crate::api::time::to_k8s_time;
use crate::plan::action::EventType;

use super::planner::{
    MAX_APPROVAL_RECORDS, Outcome, OutcomeKind, Planner, REASON_NAMESPACE_NOT_PERMITTED,
    REASON_REJECTED, failure,
};

impl<'a> Planner<'a> {
    /// One status entry per spec stage, in spec order, followed by entries of stages no longer
    /// in the spec that still hold captured state (so a revert can still restore them).
    pub(super) fn sync_stage_statuses(&mut self) {
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

    /// Adds the approvals that count to `status.approvals`, so the audit trail survives a
    /// deleted ReleaseApproval. At most [`MAX_APPROVAL_RECORDS`] are kept, the oldest dropped
    /// first and counted in `approvalsNotListed`: a flood of sign-offs cannot grow the status
    /// until etcd refuses it.
    pub(super) fn record_counted_approvals(&mut self) {
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
        let excess = self
            .status
            .approvals
            .len()
            .saturating_sub(MAX_APPROVAL_RECORDS);
        if excess > 0 {
            self.status.approvals.drain(..excess);
            // The sign-offs known now (listed or still existing) beyond the cap; never fewer
            // than counted before, when some of those were deleted since.
            let before = self.old.approvals_not_listed.unwrap_or(0);
            let now = u32::try_from(excess).unwrap_or(u32::MAX);
            self.status.approvals_not_listed = Some(before.max(now));
        }
    }

    pub(super) fn close_incident_once_root_cause_is_recorded(&mut self) {
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
                Reason::IncidentClosed.as_str(),
                Some(&stage),
                format!("root cause recorded: {root_cause}"),
            );
        }
    }

    /// Phase, current stage, observedGeneration, conditions, and a history entry when the
    /// release starts waiting or stalls.
    pub(super) fn write_summary(&mut self, outcome: &Outcome) {
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

    pub(super) fn write_conditions(&mut self, outcome: &Outcome) {
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
            OutcomeKind::RollingBack => (Status::False, Reason::RollingBack.as_str(), message),
            OutcomeKind::Stalled
                if reason == Reason::RevertFailed.as_str()
                    || (reason == REASON_NAMESPACE_NOT_PERMITTED
                        && self.failed_stage().is_some()) =>
            {
                (Status::False, reason, message)
            }
            _ => (
                Status::False,
                Reason::NotRolledBack.as_str(),
                "no revert happened",
            ),
        };
        set(ROLLED_BACK, rolled_back.0, rolled_back.1, rolled_back.2);
        self.status.conditions = list;

        if !self.started_before_this_plan(0) {
            self.status.requirements = self.observed.gates.requirement_details.clone();
        }
    }

    /// RequirementsMet follows the gate until the first stage starts, then stays as it was.
    pub(super) fn requirements_condition(&self) -> (Status, String, String) {
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
    pub(super) fn approval_condition(&self) -> (Status, String, String) {
        let gated: Vec<(usize, &Stage)> = self
            .spec
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| self.required_approvers(s).is_some())
            .collect();
        if gated.is_empty() {
            return (
                Status::True,
                Reason::NotRequired.as_str().into(),
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
            (None, None, None) => {
                return (
                    Status::True,
                    Reason::NotRequired.as_str().into(),
                    String::new(),
                );
            }
        };
        let approvers = self.approvers_of(stage);
        if approvers.len() >= self.required_approvers(stage).unwrap_or(1) {
            let names: Vec<_> = approvers.into_iter().collect();
            (
                Status::True,
                Reason::Approved.as_str().into(),
                format!("stage {} approved by {}", stage.name, names.join(", ")),
            )
        } else {
            (
                Status::False,
                Reason::AwaitingApproval.as_str().into(),
                self.awaiting_approval_message(stage, &approvers),
            )
        }
    }

    /// WindowOpen speaks for the first stage that waits for a window and has not started; once
    /// every such stage started it stays as it was.
    pub(super) fn window_condition(&self) -> (Status, String, String) {
        let gated: Vec<usize> = (0..self.spec.stages.len())
            .filter(|&i| self.waits_for_window(&self.spec.stages[i]))
            .collect();
        if gated.is_empty() {
            return (
                Status::True,
                Reason::NotRequired.as_str().into(),
                "no stage of this release waits for a deployment window".into(),
            );
        }
        let Some(window) = &self.observed.gates.window else {
            return (
                Status::True,
                Reason::NoCalendar.as_str().into(),
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

    pub(super) fn kept_condition(&self, type_: &str) -> Option<(Status, String, String)> {
        conditions::find_condition(&self.old.conditions, type_).map(|c| {
            (
                Status::from_bool(c.status == "True"),
                c.reason.clone(),
                c.message.clone(),
            )
        })
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
            .unwrap_or_else(|| failure(Reason::StageFailed.as_str(), "the stage failed".into()));
        (
            Status::False,
            cause.reason,
            format!("stage {name}: {}", cause.message),
        )
    };
    let not = |reason: &str, message: String| (Status::False, reason.to_owned(), message);
    let deployed = match phase {
        StagePhase::Pending => not(
            Reason::StageNotStarted.as_str(),
            format!("stage {name} has not started"),
        ),
        StagePhase::BackingUp => not(
            Reason::BackingUp.as_str(),
            format!("stage {name}: the backup Job runs"),
        ),
        StagePhase::RollingOut => not(
            Reason::RollingOut.as_str(),
            format!("stage {name}: rolling out"),
        ),
        StagePhase::Verifying | StagePhase::Verified => (
            Status::True,
            Reason::RolloutComplete.as_str().to_owned(),
            format!("stage {name}: every Deployment rolled out"),
        ),
        StagePhase::Failed => failed(),
        StagePhase::RollingBack => not(
            Reason::RollingBack.as_str(),
            format!("stage {name} is being reverted"),
        ),
        StagePhase::RolledBack => not(
            Reason::RolledBack.as_str(),
            format!("stage {name} was reverted to its known-good state"),
        ),
    };
    let verified = match phase {
        StagePhase::Pending | StagePhase::BackingUp | StagePhase::RollingOut => not(
            Reason::NotDeployed.as_str(),
            format!("stage {name} is not deployed yet"),
        ),
        StagePhase::Verifying => not(
            Reason::Verifying.as_str(),
            format!("stage {name}: running its checks"),
        ),
        StagePhase::Verified => (
            Status::True,
            if stage.smoke_test.is_some() {
                Reason::SmokeTestSucceeded.as_str()
            } else {
                Reason::RolloutComplete.as_str()
            }
            .to_owned(),
            format!("stage {name} passed its checks; its revisions are marked known-good"),
        ),
        StagePhase::Failed => failed(),
        StagePhase::RollingBack => not(
            Reason::RollingBack.as_str(),
            format!("stage {name} is being reverted"),
        ),
        StagePhase::RolledBack => not(
            Reason::RolledBack.as_str(),
            format!("stage {name} was reverted to its known-good state"),
        ),
    };
    (deployed, verified)
}
