//! The gates before a stage starts: the requirements, the sign-off and the window; and the
//! start itself.

use std::collections::BTreeSet;

use crate::api::reason::Reason;
use crate::api::release::{Stage, StagePhase};
use crate::api::time::from_k8s_time;
use crate::api::time::to_k8s_time;
use crate::api::{Decision, Release};
use crate::plan::action::EventType;
use crate::plan::observed::{ApprovalEnforcement, ObservedApproval};

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
        let groups = self.groups_demanded(stage);
        let creator = self.observed.release.creator();
        self.counted_approvals()
            .into_iter()
            .filter(|a| a.gate == stage.name && a.decision == Decision::Approved)
            .filter(|a| !independent || creator.is_some_and(|c| c != a.approver))
            .filter(|a| {
                groups.iter().all(|group| {
                    a.groups
                        .as_ref()
                        .is_some_and(|recorded| recorded.contains(group))
                })
            })
            .map(|a| a.approver.clone())
            .collect()
    }

    /// The groups a policy of the stage's namespace demands approvers belong to.
    pub(super) fn groups_demanded(&self, stage: &Stage) -> Vec<String> {
        self.observed
            .policy(&self.stage_namespace(stage))
            .approval()
            .map(|d| d.groups)
            .unwrap_or_default()
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
        let groups = self.groups_demanded(stage);
        if !groups.is_empty() {
            message.push_str(&format!(
                ". Only sign-offs by members of {} count, as the API server recorded them on the ReleaseApproval (relman.io/approver-groups, set by config/approval-policy.yaml)",
                groups.join(" and ")
            ));
        }
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
        if let ApprovalEnforcement::NotEnforced { reason } = &self.observed.approval_enforcement {
            message += &format!(
                "; {}",
                not_enforced_message(
                    self.observed
                        .release
                        .metadata
                        .namespace
                        .as_deref()
                        .unwrap_or_default(),
                    reason,
                )
            );
        }
        let uncounted = self.uncounted_at(&stage.name);
        if !uncounted.is_empty() {
            message += &format!("; not counted: {}", uncounted.join("; "));
        }
        message
    }

    /// The first Rejected decision on this version at a gate the release has.
    pub(super) fn rejection(&self) -> Option<&'a ObservedApproval> {
        self.counted_approvals()
            .into_iter()
            .find(|a| a.decision == Decision::Rejected)
    }

    /// The approvals that count: see [`counted_approvals`].
    pub(super) fn counted_approvals(&self) -> Vec<&'a ObservedApproval> {
        counted_approvals(
            &self.observed.release,
            &self.observed.approvals,
            &self.observed.approval_enforcement,
            &self.policy_requirement_names(),
        )
        .counted
    }

    /// The names of the requirements the stage namespaces' policies demand: approvals of them
    /// are gates of this release too.
    fn policy_requirement_names(&self) -> Vec<String> {
        self.observed
            .policies
            .values()
            .flat_map(|p| p.requirements())
            .map(|(r, _)| r.name)
            .collect()
    }

    /// Why each approval for this version at `gate` does not count, one sentence each, but
    /// for the approvals the namespace's missing enforcement leaves out (said once, instead).
    fn uncounted_at(&self, gate: &str) -> Vec<String> {
        counted_approvals(
            &self.observed.release,
            &self.observed.approvals,
            &self.observed.approval_enforcement,
            &self.policy_requirement_names(),
        )
        .uncounted
        .into_iter()
        .filter(|(a, why)| a.gate == gate && *why != Uncounted::NotEnforced)
        .map(|(a, why)| why.explain(a))
        .collect()
    }
}

/// Which approvals of a Release count, and why the others do not.
#[derive(Debug, Default)]
pub struct ApprovalCount<'a> {
    /// The approvals that count, oldest first.
    pub counted: Vec<&'a ObservedApproval>,
    /// The approvals of this Release's name, version and one of its gates that do not count,
    /// with the reason.
    pub uncounted: Vec<(&'a ObservedApproval, Uncounted)>,
}

/// Why an approval of the right release name, version and gate does not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uncounted {
    /// It names no `releaseUID`, so it cannot be bound to one Release object.
    NoReleaseUid,
    /// It names the uid of another Release object of the same name (one deleted since).
    OtherRelease {
        /// The uid it names.
        uid: String,
    },
    /// It was created before the Release.
    OlderThanRelease,
    /// An approval (not a rejection) in a namespace where the API server does not enforce who
    /// signs approvals ([`ApprovalEnforcement::NotEnforced`]).
    NotEnforced,
}

impl Uncounted {
    /// Why `approval` does not count, for people.
    pub fn explain(&self, approval: &ObservedApproval) -> String {
        let name = &approval.name;
        match self {
            Self::NoReleaseUid => format!(
                "approval {name} names no releaseUID: create it with kubectl relman approve"
            ),
            Self::OtherRelease { uid } => format!(
                "approval {name} is for an earlier Release of this name (uid {uid}), not this one"
            ),
            Self::OlderThanRelease => {
                format!("approval {name} was created before this Release")
            }
            Self::NotEnforced => format!(
                "approval {name} is not trusted: the API server does not enforce who signs approvals in this namespace"
            ),
        }
    }
}

/// The approvals of `approvals` that count for `release`, oldest first, and why the others of
/// its name, version and gates do not.
///
/// An approval counts when it is for this Release object (it names the Release's uid in
/// `spec.releaseUID` and was created no earlier than the Release: a Release deleted and
/// created again under the same name starts without sign-offs), for its version, and for one
/// of its gates (a stage or a requirement). An `Approved` decision counts only where the API
/// server enforces who signs approvals (`enforcement`); a `Rejected` one counts regardless,
/// since stopping a release on a rejection nobody can vouch for is safe (it reverts) and
/// opening a gate on one is not.
pub fn counted_approvals<'a>(
    release: &Release,
    approvals: &'a [ObservedApproval],
    enforcement: &ApprovalEnforcement,
    policy_gates: &[String],
) -> ApprovalCount<'a> {
    let meta = &release.metadata;
    let spec = &release.spec;
    let name = meta.name.as_deref().unwrap_or_default();
    let created = meta.creation_timestamp.as_ref().map(from_k8s_time);
    let mut count = ApprovalCount::default();
    for approval in approvals {
        if approval.release != name
            || approval.version != spec.version
            || !(spec.stages.iter().any(|s| s.name == approval.gate)
                || spec.requirements.iter().any(|r| r.name == approval.gate)
                || policy_gates.contains(&approval.gate))
        {
            continue;
        }
        let why = match &approval.release_uid {
            None => Some(Uncounted::NoReleaseUid),
            Some(uid) if meta.uid.as_ref() != Some(uid) => {
                Some(Uncounted::OtherRelease { uid: uid.clone() })
            }
            Some(_)
                if created
                    .is_some_and(|created| approval.created.is_none_or(|at| at < created)) =>
            {
                Some(Uncounted::OlderThanRelease)
            }
            Some(_) if approval.decision == Decision::Approved && !enforcement.is_enforced() => {
                Some(Uncounted::NotEnforced)
            }
            Some(_) => None,
        };
        match why {
            None => count.counted.push(approval),
            Some(why) => count.uncounted.push((approval, why)),
        }
    }
    let order = |a: &&ObservedApproval| (a.created, a.name.clone());
    count.counted.sort_by_key(order);
    count.uncounted.sort_by_key(|(a, _)| order(a));
    count
}

/// Why approvals in `namespace` do not open gates, and how to fix it.
pub fn not_enforced_message(namespace: &str, reason: &str) -> String {
    format!(
        "approvals in namespace {namespace} are not trusted and open no gate, because {reason}: the API server must enforce who signs them (a cluster admin runs kubectl apply -f config/approval-policy.yaml, or installs the chart with approvalPolicy.enabled=true)"
    )
}
