//! The gates before a stage starts: the requirements, the sign-off and the window; and the
//! start itself.

use std::collections::BTreeSet;

use crate::api::reason::Reason;
use crate::api::release::{Stage, StagePhase};
use crate::api::time::from_k8s_time;
use crate::api::time::to_k8s_time;
use crate::api::{Decision, ReleaseSpec};
use crate::plan::action::EventType;
use crate::plan::observed::{Observed, ObservedApproval};

use super::planner::{Outcome, OutcomeKind, Planner};

impl<'a> Planner<'a> {
    /// Whether a stage may start; `Some` says what it waits for.
    pub(super) fn stage_gates(&mut self, index: usize, stage: &Stage) -> Option<Outcome> {
        let name = stage.name.as_str();
        let requirements = &self.observed.gates.requirements;
        if index == 0 && !requirements.open {
            return Some(Outcome::new(
                OutcomeKind::AwaitingRequirements,
                Some(name),
                Reason::RequirementsNotMet.as_str(),
                requirements.message.clone(),
            ));
        }
        if let Some(needed) = self.required_approvers(stage) {
            let approvers = self.approvers_of(stage);
            if approvers.len() < needed {
                return Some(Outcome::new(
                    OutcomeKind::AwaitingApproval,
                    Some(name),
                    Reason::AwaitingApproval.as_str(),
                    self.awaiting_approval_message(stage, &approvers),
                ));
            }
        }
        if self.waits_for_window(stage)
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
                    Reason::WaitingForOtherRelease.as_str(),
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

    pub(super) fn start_stage(&mut self, index: usize, stage: &Stage) {
        let status = &mut self.status.stages[index];
        status.attempt = Some(status.attempt.unwrap_or(1));
        status.started_at = Some(to_k8s_time(self.now));
        self.set_stage_phase(index, StagePhase::BackingUp);
        self.record(
            EventType::Normal,
            Reason::StageStarted.as_str(),
            Some(&stage.name),
            format!("stage {} started", stage.name),
        );
        if self.required_approvers(stage).is_some() {
            let approvers: Vec<_> = self.approvers_of(stage).into_iter().collect();
            self.record(
                EventType::Normal,
                Reason::Approved.as_str(),
                Some(&stage.name),
                format!("stage {} approved by {}", stage.name, approvers.join(", ")),
            );
        }
    }

    /// The distinct people who approved this version at `stage`'s gate. When a policy of
    /// the stage's namespace demands an independent sign-off, the Release's creator does not
    /// count, and without a record of the creator nobody does (fail closed).
    pub(super) fn approvers_of(&self, stage: &Stage) -> BTreeSet<String> {
        let independent = self.independence_demanded_by(stage).is_some();
        let creator = self.observed.release.creator();
        self.counted_approvals()
            .into_iter()
            .filter(|a| a.gate == stage.name && a.decision == Decision::Approved)
            .filter(|a| !independent || creator.is_some_and(|c| c != a.approver))
            .map(|a| a.approver.clone())
            .collect()
    }

    pub(super) fn awaiting_approval_message(
        &self,
        stage: &Stage,
        approvers: &BTreeSet<String>,
    ) -> String {
        let needed = self.required_approvers(stage).unwrap_or(1);
        let own = stage
            .approval
            .as_ref()
            .filter(|a| a.required)
            .map_or(0, |a| a.approvers.max(1));
        let policy = self.observed.policy(&self.stage_namespace(stage));
        let demanded = match policy.approval() {
            Some(demand)
                if usize::try_from(demand.approvers).unwrap_or(0) >= needed
                    && usize::try_from(own).unwrap_or(0) < needed =>
            {
                format!(" ({} demands it)", demand.by)
            }
            _ => String::new(),
        };
        let mut message = format!(
            "stage {} needs {needed} approval(s) of version {}{demanded} (a ReleaseApproval with gate {}); {} so far",
            stage.name,
            self.spec.version,
            stage.name,
            approvers.len()
        );
        if let Some(by) = self.independence_demanded_by(stage) {
            match self.observed.release.creator() {
                Some(creator) => message.push_str(&format!(
                    ". {by} demands sign-offs by people other than the Release's creator, so {creator}'s own do not count"
                )),
                None => message.push_str(&format!(
                    ". {by} demands sign-offs by people other than the Release's creator, and the Release has no relman.io/created-by record, so no sign-off counts: install the admission policies (config/release-creator.yaml) and create the Release again"
                )),
            }
        }
        message
    }

    /// The first Rejected decision on this version at a gate the release has.
    pub(super) fn rejection(&self) -> Option<&'a ObservedApproval> {
        self.counted_approvals()
            .into_iter()
            .find(|a| a.decision == Decision::Rejected)
    }

    /// The approvals that count: for this Release, this version, and one of its gates (a
    /// stage or a requirement), oldest first.
    pub(super) fn counted_approvals(&self) -> Vec<&'a ObservedApproval> {
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
}
