//! The decision: where the release is, what comes next, and the run of a started stage's
//! checks.

use std::collections::BTreeMap;

use crate::api::conditions::{self};
use crate::api::reason::Reason;
use crate::api::release::{ReleasePhase, Stage, StagePhase};
use crate::api::time::{add, to_k8s_time};
use crate::plan::action::{EventType, JobKind};
use crate::plan::standing::{Standing, record_standings, standings_of};

use super::planner::{
    Check, FORBIDDEN_RECHECK, Outcome, OutcomeKind, Planner, REASON_ABORT_IGNORED, REASON_ABORTED,
    REASON_FORBIDDEN, REASON_REJECTED, StageTimeouts, failure,
};

impl<'a> Planner<'a> {
    pub(super) fn decide(&mut self) -> Outcome {
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
                Reason::InvalidSpec.as_str(),
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
        if let Some(refused) = self.policy_refusal_before_start() {
            return refused;
        }
        if self.stage_phase(0) == StagePhase::Pending
            && let Some(refused) = self.capture_budget_refusal()
        {
            return refused;
        }
        if self.stage_phase(0) == StagePhase::Pending
            && let Some(shared) = self.shared_deployment()
        {
            return Outcome::new(
                OutcomeKind::Stalled,
                self.spec.stages.first().map(|s| s.name.as_str()),
                Reason::InvalidSpec.as_str(),
                shared,
            );
        }
        if let Some(refused) = self.job_template_refusal() {
            // Before the first stage: nothing has changed yet.
            return refused;
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
                Reason::InvalidSpec.as_str(),
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
                    Reason::InvalidSpec.as_str(),
                    invalid.to_string(),
                );
            }
        };
        self.advance(&timeouts)
    }

    /// Takes the stages forward in order, as far as the observed world allows.
    pub(super) fn advance(&mut self, timeouts: &[StageTimeouts]) -> Outcome {
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
                if let Some(refused) = self.policy_refusal(index, stage) {
                    return refused;
                }
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
                Reason::Released.as_str(),
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

    pub(super) fn succeeded_outcome(&self) -> Outcome {
        let last = self.spec.stages.last().map(|s| s.name.as_str());
        Outcome::new(
            OutcomeKind::Succeeded,
            last,
            Reason::Succeeded.as_str(),
            format!(
                "{} {} is released: every stage is verified",
                self.spec.application, self.spec.version
            ),
        )
    }

    /// `spec.abort` on a succeeded release that no longer drives any Deployment it changed:
    /// nothing is reverted (that would destroy a newer release or a person's change); the
    /// release stays Succeeded, says why in its Superseded or Drifted condition, and warns once.
    pub(super) fn abort_ignored(&mut self, standings: &[(String, Standing)]) -> Outcome {
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
    pub(super) fn standings(&self) -> Vec<(String, Standing)> {
        standings_of(
            &self.me,
            self.spec,
            &self.status,
            &self.observed.deployments,
        )
    }

    pub(super) fn record_standings(&mut self, standings: &[(String, Standing)]) {
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
    pub(super) fn shared_deployment(&self) -> Option<String> {
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
    pub(super) fn run_stage(
        &mut self,
        index: usize,
        stage: &Stage,
        timeouts: StageTimeouts,
    ) -> Check {
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
                        Reason::StageFailed.as_str(),
                        format!(
                            "stage {} is marked failed without a recorded reason",
                            stage.name
                        ),
                    ));
                }
            }
        }
    }
}
