//! Failure and the revert to the known-good state: what is reverted, what is left alone and
//! why, and how the release ends.

use std::collections::BTreeSet;

use crate::api::Compact;
use crate::api::reason::Reason;
use crate::api::release::{Failure, IncidentStatus, StagePhase, StageStatus};
use crate::api::time::to_k8s_time;
use crate::plan::action::{Action, EventType};
use crate::plan::rollout::{
    PodProblems, RolloutProgress, judge_pod_problems, rollout_progress, runs_known_good,
};
use crate::plan::standing::standing;

use super::planner::{
    Outcome, OutcomeKind, Planner, REASON_ABORTED, REASON_NAMESPACE_NOT_PERMITTED, REASON_REJECTED,
    failure, human,
};

impl<'a> Planner<'a> {
    /// Records why the release fails, on the stage it failed in, and opens an incident when a
    /// stage after the first (production) was changed.
    pub(super) fn fail(&mut self, index: usize, cause: Failure) {
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
                Reason::IncidentOpened.as_str(),
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
    pub(super) fn revert_to_known_good(&mut self) -> Outcome {
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
                        Reason::RevertFailed.as_str(),
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
                                Reason::RevertFailed.as_str(),
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
            Reason::RolledBack.as_str(),
            Some(&failed_stage),
            outcome.message.clone(),
        );
        outcome
    }

    /// The final outcome of a reverted release, from the status alone.
    pub(super) fn rolled_back_outcome(&self) -> Outcome {
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
                failure(
                    Reason::RolledBack.as_str(),
                    "the release was rolled back".into(),
                ),
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
    pub(super) fn restored_revisions(&self, first_stage: usize) -> String {
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
}
