//! Other namespaces' consent, and relman's own refused requests: the release stalls instead
//! of acting where it may not.

use crate::api::labels::ANNOTATION_ACCEPT_RELEASES_FROM;
use crate::api::reason::Reason;
use crate::api::release::{JobCheck, Stage, StagePhase};
use crate::api::time::add;
use crate::plan::action::Action;
use crate::plan::action::JobKind;
use crate::plan::observed::NamespaceConsent;

use crate::plan::pod_security::{JobLimits, template_violations};

use super::planner::{
    FORBIDDEN_RECHECK, NAMESPACE_CONSENT_RECHECK, Outcome, OutcomeKind, Planner, REASON_FORBIDDEN,
    REASON_NAMESPACE_NOT_PERMITTED, human,
};

impl<'a> Planner<'a> {
    /// `Some` (Stalled, [`REASON_NAMESPACE_NOT_PERMITTED`]) when the spec stage `index` deploys
    /// to a namespace other than the release's that has not accepted the release.
    pub(super) fn namespace_refusal(&mut self, index: usize, stage: &Stage) -> Option<Outcome> {
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
    pub(super) fn consent_message(&self, field: &str, stage: &str, namespace: &str) -> String {
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
                    "let relman manage that namespace (chart value managedNamespaces, which grants get on its Namespace and a Role there), and if its owners agree: kubectl annotate namespace {namespace} {key}={own}"
                ),
            ),
            Some(NamespaceConsent::RefusedByPolicy { policy, why }) => (
                format!("{policy}: {why}"),
                format!(
                    "if its owners agree, add {own} to spec.acceptReleasesFrom.namespaces of that policy"
                ),
            ),
            Some(NamespaceConsent::NotAnnotated | NamespaceConsent::Accepted) | None => (
                "it has no ReleasePolicy that accepts it".to_owned(),
                format!(
                    "if its owners agree, create a ReleasePolicy in {namespace} with spec.acceptReleasesFrom.namespaces: [{own}] (docs/policy.md)"
                ),
            ),
        };
        format!(
            "{field}: stage {stage} deploys to namespace {namespace}, which does not accept Releases from namespace {own} ({why}); nothing is changed there. To allow it, {fix}"
        )
    }

    /// Looks at the namespaces again after [`NAMESPACE_CONSENT_RECHECK`]: nothing watches them.
    pub(super) fn requeue_consent(&mut self) {
        let at = add(self.now, NAMESPACE_CONSENT_RECHECK);
        self.requeue_at(at);
    }

    /// The last line of defence: an action in a namespace that has not accepted the release
    /// is dropped and the release stalls. The lifecycle checks consent before each step, so
    /// this should never change a plan.
    pub(super) fn refuse_actions_without_consent(&mut self, outcome: Outcome) -> Outcome {
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
    pub(super) fn stall_while_denied(&mut self, outcome: Outcome) -> Outcome {
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

    /// Before the first stage starts: the first Job template of any stage that asks for more
    /// than a Release may (see [`crate::plan::pod_security`]). The release stalls before
    /// anything changes. After the start each Job is checked as it is about to be created
    /// ([`Planner::template_refusal`]), so a refusal never stops the watch over a running stage.
    pub(super) fn job_template_refusal(&self) -> Option<Outcome> {
        if self.stage_phase(0) != StagePhase::Pending {
            return None;
        }
        let spec = self.spec;
        spec.stages.iter().enumerate().find_map(|(index, stage)| {
            [
                (JobKind::Backup, &stage.backup),
                (JobKind::SmokeTest, &stage.smoke_test),
            ]
            .into_iter()
            .find_map(|(kind, check)| {
                check
                    .as_ref()
                    .and_then(|check| self.template_refusal(index, stage, kind, check))
            })
        })
    }

    /// Why the Job template `check` of stage `index` may not run, as a Stalled outcome naming
    /// the first field at fault; `None` when it may.
    pub(super) fn template_refusal(
        &self,
        index: usize,
        stage: &Stage,
        kind: JobKind,
        check: &JobCheck,
    ) -> Option<Outcome> {
        let field = match kind {
            JobKind::Backup => "backup",
            JobKind::SmokeTest => "smokeTest",
        };
        let namespace = self.stage_namespace(stage);
        let policy = self.observed.policy(&namespace);
        let (level, service_accounts, by) = policy.job_limits();
        let limits = JobLimits {
            level,
            service_accounts: &service_accounts,
        };
        let found = template_violations(&check.template.get(), limits);
        let first = found.first()?;
        let more = match found.len() {
            1 => String::new(),
            n => format!(
                " ({} more: {})",
                n - 1,
                found[1..]
                    .iter()
                    .map(|v| v.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let prefix = if first.field.starts_with("metadata.") {
            format!("spec.stages[{index}].{field}.template.spec.template.")
        } else {
            format!("spec.stages[{index}].{field}.template.spec.template.spec.")
        };
        Some(Outcome::new(
            OutcomeKind::Stalled,
            Some(&stage.name),
            Reason::JobNotPermitted.as_str(),
            format!(
                "{prefix}{}: {}{more}. relman creates Jobs with its own identity, so a \
                 Release's Jobs in namespace {namespace} must meet the Pod Security {level} \
                 level and run as {} ({by}); the Job was not created",
                first.field,
                first.message,
                service_accounts.join(" or ")
            ),
        ))
    }
}
