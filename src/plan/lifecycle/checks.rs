//! The checks of a stage: backup and smoke-test Jobs, the known-good capture, the rollout,
//! bake time and the known-good mark.

use std::time::Duration;

use crate::api::Compact;
use crate::api::labels::{ANNOTATION_KNOWN_GOOD_RELEASE, ANNOTATION_KNOWN_GOOD_REVISION};
use crate::api::reason::Reason;
use crate::api::release::{DeploymentStatus, JobCheck, JobStatus, Stage};
use crate::api::time::from_k8s_time;
use crate::api::time::{add, to_k8s_time};
use crate::plan::action::{Action, EventType, JobKind};
use crate::plan::jobs::{build_job, job_name, set_deadline};
use crate::plan::observed::{JobState, Observed, ObservedDeployment};
use crate::plan::rollout::{
    PodProblems, RolloutProgress, images_to_roll_out, judge_pod_problems, rollout_progress,
    runs_release_images,
};

use super::planner::{
    CAPTURE_BUDGET, Check, Outcome, Planner, StageTimeouts, failure, human, progressing_reason,
};

impl<'a> Planner<'a> {
    /// The backup or smoke-test Job of the current attempt: create it, wait for it, judge it.
    pub(super) fn job_check(
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
            JobKind::Backup => (
                Reason::BackupSucceeded.as_str(),
                Reason::BackupFailed.as_str(),
                Reason::BackupTimedOut.as_str(),
            ),
            JobKind::SmokeTest => (
                Reason::SmokeTestSucceeded.as_str(),
                Reason::SmokeTestFailed.as_str(),
                Reason::SmokeTestTimedOut.as_str(),
            ),
        };
        let recorded = self.job_status(index, kind).clone();
        if recorded
            .as_ref()
            .is_some_and(|r| r.name == name && r.result.as_deref() == Some(JobStatus::SUCCEEDED))
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
            // Checked again for the one Job about to be created: a template edited in after
            // the start (without the release freeze) is refused too, and nothing is created.
            if let Some(refused) = self.template_refusal(index, stage, kind, check) {
                return Check::Waiting(refused);
            }
            set_result(self, JobStatus::RUNNING, None);
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
                Reason::JobOfAnotherRelease.as_str(),
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
                set_result(self, JobStatus::SUCCEEDED, None);
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
                set_result(self, JobStatus::FAILED, Some(text.clone()));
                Check::Failed(failure(failed, text))
            }
            JobState::Running { since } => {
                let deadline = add(*since, timeout);
                if deadline <= self.now {
                    let text = format!(
                        "the {what} Job {namespace}/{name} did not finish within {}",
                        human(timeout)
                    );
                    set_result(self, JobStatus::FAILED, Some(text.clone()));
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
                        set_result(self, JobStatus::FAILED, Some(text.clone()));
                        return Check::Failed(failure(problem.reason.as_str(), text));
                    }
                    PodProblems::GraceUntil(at) => self.requeue_at(at),
                    PodProblems::None => {}
                }
                set_result(self, JobStatus::RUNNING, None);
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

    pub(super) fn job_status(&mut self, index: usize, kind: JobKind) -> &mut Option<JobStatus> {
        let stage = &mut self.status.stages[index];
        match kind {
            JobKind::Backup => &mut stage.backup,
            JobKind::SmokeTest => &mut stage.smoke_test,
        }
    }

    /// Captures the known-good state, then rolls the Deployments out one at a time.
    pub(super) fn roll_out_stage(
        &mut self,
        index: usize,
        stage: &Stage,
        timeout: Duration,
    ) -> Check {
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
                        Reason::CapturingKnownGood.as_str(),
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
                    Reason::RollingOut.as_str(),
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
                    return Check::Failed(failure(
                        Reason::ProgressDeadlineExceeded.as_str(),
                        message,
                    ));
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
                            Reason::RolloutTimedOut.as_str(),
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
                        Reason::RollingOut.as_str(),
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

    /// `Some` (Stalled, `StatusTooLarge`) when the pod templates relman would keep in the status
    /// to revert (every Deployment of every stage, those captured already and those still to
    /// capture) pass [`CAPTURE_BUDGET`]: the status write would fail on etcd's object limit and
    /// the release would be stuck with no clear message. Checked before the first stage and
    /// before each capture, so nothing of the stage has changed yet.
    pub(super) fn capture_budget_refusal(&self) -> Option<Outcome> {
        let mut seen = std::collections::BTreeSet::new();
        let mut bytes = 0usize;
        let mut count = 0usize;
        for stage in &self.spec.stages {
            let namespace = self.stage_namespace(stage);
            for deployment in &stage.deployments {
                if !seen.insert((namespace.clone(), deployment.0.clone())) {
                    continue;
                }
                let captured = self
                    .status
                    .stages
                    .iter()
                    .flat_map(|s| &s.deployments)
                    .find(|d| d.namespace == namespace && d.name == deployment.0)
                    .and_then(|d| d.known_good_template.as_ref())
                    .map(|t| serde_json::to_vec(&t.get()).map_or(0, |v| v.len()));
                let observed = || {
                    self.observed
                        .deployment(&namespace, &deployment.0)
                        .map(|d| serde_json::to_vec(&d.template).map_or(0, |v| v.len()))
                };
                if let Some(size) = captured.or_else(observed) {
                    bytes += size;
                    count += 1;
                }
            }
        }
        if bytes <= CAPTURE_BUDGET {
            return None;
        }
        let stage = self.spec.stages.get(self.current_stage())?;
        Some(Outcome::stalled(
            &stage.name,
            Reason::StatusTooLarge.as_str(),
            format!(
                "spec.stages: the pod templates of the release's {count} Deployments take {} KiB; relman keeps each in status.stages[].deployments[].knownGoodTemplate to revert it, and a Release keeps at most {} KiB of them (etcd refuses an object over 1.5 MiB). Nothing of stage {} was changed: split the release into smaller ones or trim the templates",
                bytes / 1024,
                CAPTURE_BUDGET / 1024,
                stage.name
            ),
        ))
    }

    /// Records each Deployment's pod template and revision before the stage changes anything.
    /// A Deployment whose state is already captured is never captured again: after a restart
    /// it may already run the new template. Returns where the release is when it captured.
    pub(super) fn capture_known_good(
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
        if let Some(refused) = self.capture_budget_refusal() {
            return Some(refused);
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
                    available_at_bake_start: None,
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
                    available_at_bake_start: None,
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
            Reason::CapturingKnownGood.as_str(),
            format!(
                "stage {}: recorded the known-good state of its Deployments before rolling out",
                stage.name
            ),
        ))
    }

    /// Pods of the stage's Deployments that cannot start fail it during verification too
    /// (e.g. a crash loop that began after the rollout completed).
    pub(super) fn pods_start_after_rollout(
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
    pub(super) fn smoke_test_result(
        &mut self,
        index: usize,
        stage: &Stage,
        timeouts: StageTimeouts,
    ) -> Check {
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
    pub(super) fn bake(&mut self, index: usize, stage: &Stage, timeouts: StageTimeouts) -> Check {
        let Some(bake) = timeouts.bake else {
            return Check::Passed;
        };
        let started = match self.status.stages[index].bake_started_at.as_ref() {
            Some(at) => from_k8s_time(at),
            None => {
                self.status.stages[index].bake_started_at = Some(to_k8s_time(self.now));
                // What "healthy" means for the bake: the replicas available now.
                let namespace = self.stage_namespace(stage);
                for entry in &mut self.status.stages[index].deployments {
                    if entry.namespace == namespace
                        && let Some(observed) = self.observed.deployment(&namespace, &entry.name)
                    {
                        entry.available_at_bake_start = Some(observed.available_replicas);
                    }
                }
                self.record(
                    EventType::Normal,
                    Reason::BakeStarted.as_str(),
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
            // Fewer available than when the bake began (or than desired, if that is fewer):
            // a replica was lost. More desired than available alone is a scale-up under way.
            let baseline = self.status.stages[index]
                .deployments
                .iter()
                .find(|d| d.namespace == namespace && d.name == deployment.0)
                .and_then(|d| d.available_at_bake_start)
                .unwrap_or(observed.desired_replicas);
            let needed = baseline.min(observed.desired_replicas);
            if observed.available_replicas < needed {
                return Check::Failed(failure(
                    Reason::BakeFailed.as_str(),
                    format!(
                        "during its bake time, {namespace}/{} has {} of {} replicas available \
                         ({} were when the bake began)",
                        deployment.0,
                        observed.available_replicas,
                        observed.desired_replicas,
                        baseline
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
                    Reason::BakeFailed.as_str(),
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
            Reason::Baking.as_str(),
            format!(
                "stage {}: its checks passed; watching its Deployments until {} (bake {})",
                stage.name,
                end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human(bake)
            ),
        ))
    }

    /// Annotates each Deployment of a stage that passed its checks, one at a time.
    pub(super) fn mark_known_good(
        &mut self,
        index: usize,
        stage: &Stage,
        _timeouts: StageTimeouts,
    ) -> Check {
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
                Reason::MarkingKnownGood.as_str(),
                format!(
                    "stage {}: marking {namespace}/{name} known-good",
                    stage.name
                ),
            ));
        }
        Check::Passed
    }

    /// The observed Deployment a stage is to change, or why the release is blocked on it.
    pub(super) fn deployment_to_change(
        &self,
        stage: &Stage,
        namespace: &str,
        name: &str,
    ) -> Result<&'a ObservedDeployment, Outcome> {
        let world: &'a Observed = self.observed;
        let Some(observed) = world.deployment(namespace, name) else {
            return Err(Outcome::stalled(
                &stage.name,
                Reason::DeploymentNotFound.as_str(),
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
                Reason::NoMatchingContainer.as_str(),
                format!(
                    "stage {}: Deployment {namespace}/{name} has none of the release's containers ({})",
                    stage.name,
                    containers.join(", ")
                ),
            ));
        }
        Ok(observed)
    }
}
