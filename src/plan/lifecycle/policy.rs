//! The rules of each stage's target namespace (its ReleasePolicies): applied before anything
//! changes there, and again as each stage starts, so a policy written or tightened while a
//! release waits still holds it.

use crate::api::reason::Reason;
use crate::api::release::{Stage, StagePhase};
use crate::api::time::add;

use super::planner::{NAMESPACE_CONSENT_RECHECK, Outcome, Planner};

impl<'a> Planner<'a> {
    /// `Some` (Stalled, `PolicyViolation`) when the target namespace's policy refuses stage
    /// `index` of this release: the policy cannot be read, the release type is not allowed,
    /// the calendar it demands is not the release's, or a Deployment is outside its selector.
    /// The message names the policy, the rule and the field to change.
    pub(super) fn policy_refusal(&mut self, index: usize, stage: &Stage) -> Option<Outcome> {
        let namespace = self.stage_namespace(stage);
        let policy = self.observed.policy(&namespace).into_owned();
        let refuse = |message: String| {
            Some(Outcome::stalled(
                &stage.name,
                Reason::PolicyViolation.as_str(),
                message,
            ))
        };
        let message = if let Some(unreadable) = &policy.unreadable {
            format!(
                "stage {} deploys to namespace {namespace}, whose ReleasePolicies relman cannot read ({unreadable}); nothing is changed there until it can. Grant relman's ServiceAccount list and watch on releasepolicies.relman.io there (docs/install.md)",
                stage.name
            )
        } else if let Some((by, allowed)) = policy.refuses_type(self.spec.release_type) {
            let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            format!(
                "spec.type: {by} allows only {} releases into namespace {namespace} (spec.gates.releaseTypes), and this one is {}; nothing is changed",
                allowed.join(", "),
                self.spec.release_type
            )
        } else if let Some((i, by, allowed)) =
            self.spec.images.iter().enumerate().find_map(|(i, image)| {
                policy
                    .refuses_image(&image.image)
                    .map(|(by, allowed)| (i, by, allowed))
            })
        {
            format!(
                "spec.images[{i}].image: {by} allows only images starting with {} in namespace {namespace} (spec.images.allowedPrefixes), not {}; nothing is changed",
                allowed.join(" or "),
                self.spec.images[i].image
            )
        } else if let Some((calendar, by)) = policy
            .calendars()
            .into_iter()
            .find(|(calendar, _)| self.spec.calendar.as_deref() != Some(calendar.as_str()))
        {
            let now = match &self.spec.calendar {
                Some(own) => format!("it names {own}"),
                None => "it names none".to_owned(),
            };
            format!(
                "spec.calendar: {by} demands the deployment windows of ReleaseCalendar {calendar} for namespace {namespace} (spec.gates.calendar), and {now}; set spec.calendar: {calendar}"
            )
        } else {
            let found = stage.deployments.iter().enumerate().find_map(|(i, name)| {
                let deployment = self.observed.deployment(&namespace, &name.0)?;
                let (by, why) = policy.refuses_deployment(&deployment.labels)?;
                Some(format!(
                    "spec.stages[{index}].deployments[{i}]: {by} does not let Releases drive Deployment {namespace}/{} ({why}); nothing is changed. Ask the namespace's owners to label it, or remove it from the stage",
                    name.0
                ))
            });
            found?
        };
        // Policies are not watched by every release: look again, as for consent.
        self.requeue_at(add(self.now, NAMESPACE_CONSENT_RECHECK));
        refuse(message)
    }

    /// Every stage's policy, before the first stage starts: a refusal anywhere is found now,
    /// not after staging changed.
    pub(super) fn policy_refusal_before_start(&mut self) -> Option<Outcome> {
        if self.stage_phase(0) != StagePhase::Pending {
            return None;
        }
        let spec = self.spec;
        spec.stages
            .iter()
            .enumerate()
            .find_map(|(index, stage)| self.policy_refusal(index, stage))
    }

    /// Writes the policies each stage is held to into `status.stages[].policies`, while the
    /// stage has not ended (an ended stage keeps what it was held to).
    pub(super) fn record_policies(&mut self) {
        let spec = self.spec;
        for (index, stage) in spec.stages.iter().enumerate() {
            if matches!(
                self.stage_phase(index),
                StagePhase::Verified | StagePhase::Failed | StagePhase::RolledBack
            ) {
                continue;
            }
            let namespace = self.stage_namespace(stage);
            let described = self.observed.policy(&namespace).describe();
            if let Some(status) = self.status.stages.get_mut(index) {
                status.policies = described;
            }
        }
    }
}
