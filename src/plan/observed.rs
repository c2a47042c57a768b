//! What the observe step gathers for one reconcile, as plain data: the planner's only input.
//!
//! Nothing here does I/O. The `from_*` constructors turn objects read from the API server into
//! the planner's view of them, so the observe layer and the tests share one interpretation.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::labels::{
    ANNOTATION_ACCEPT_RELEASES_FROM, ANNOTATION_APPROVER_GROUPS, ANNOTATION_DRIVEN_BY,
    ANNOTATION_KNOWN_GOOD_RELEASE, ANNOTATION_REVISION, LABEL_RELEASE_UID,
};
use crate::api::release::RequirementStatus;
use crate::api::time::from_k8s_time;
use crate::api::{Decision, Release, ReleaseApproval};
use crate::plan::policy::NamespacePolicy;

/// Everything the planner may look at for one Release at one moment.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The Release: its spec, `metadata.generation`, and the status as last written.
    pub release: Release,
    /// The Deployments of every stage that exist. A Deployment the spec names but that is not
    /// listed here does not exist.
    pub deployments: Vec<ObservedDeployment>,
    /// The Jobs labelled with this release (`relman.io/release`), in every stage namespace.
    /// The planner finds the backup and smoke-test Jobs of the current attempt by name.
    pub jobs: Vec<ObservedJob>,
    /// The ReleaseApprovals that name this Release (any version; the planner filters).
    pub approvals: Vec<ObservedApproval>,
    /// Whether the API server enforces who signs an approval in the Release's namespace (the
    /// approval identity policy and a binding that denies cover it). An approval that is
    /// not enforced never opens a gate; a rejection still stops the release.
    pub approval_enforcement: ApprovalEnforcement,
    /// The gates other parts of relman compute: requirements and the deployment window.
    pub gates: Gates,
    /// Whether each stage namespace other than the Release's own accepts the Release (its
    /// Namespace's [`ANNOTATION_ACCEPT_RELEASES_FROM`] annotation). A stage acts in another
    /// namespace only when it is listed here as [`NamespaceConsent::Accepted`]; a namespace
    /// missing from the map has not consented. The Release's own namespace needs no entry.
    pub namespace_consent: BTreeMap<String, NamespaceConsent>,
    /// The rules of each stage namespace (the Release's own included): its ReleasePolicies,
    /// the cluster default or the built-in default. A namespace missing from the map gets the
    /// built-in default.
    pub policies: BTreeMap<String, NamespacePolicy>,
    /// Who set `spec.abort`, as the API server recorded it (the field manager and the time of
    /// the change in `metadata.managedFields`); read only while an abort is not yet recorded.
    pub abort_requested_by: Option<String>,
    /// The API server's refusal (403) of the action relman last took for this release, while
    /// it lasts: the release is Stalled (`Forbidden`) with it, and the action is tried again
    /// after [`FORBIDDEN_RECHECK`](super::lifecycle::FORBIDDEN_RECHECK).
    pub denied: Option<String>,
    /// Tunables.
    pub config: PlanConfig,
    /// The time of this reconcile.
    pub now: DateTime<Utc>,
}

impl Observed {
    /// The observed Deployment `namespace/name`, if it exists.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<&ObservedDeployment> {
        self.deployments
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
    }

    /// Whether a stage of the Release may act in `namespace`: its own namespace always, any
    /// other only with that namespace's consent.
    pub fn may_act_in(&self, namespace: &str) -> bool {
        self.release.metadata.namespace.as_deref() == Some(namespace)
            || self.namespace_consent.get(namespace) == Some(&NamespaceConsent::Accepted)
    }

    /// The rules of `namespace` (the built-in default when none were observed).
    pub fn policy(&self, namespace: &str) -> std::borrow::Cow<'_, NamespacePolicy> {
        match self.policies.get(namespace) {
            Some(policy) => std::borrow::Cow::Borrowed(policy),
            None => std::borrow::Cow::Owned(NamespacePolicy::default()),
        }
    }

    /// The observed Job `namespace/name`, if it exists.
    pub fn job(&self, namespace: &str, name: &str) -> Option<&ObservedJob> {
        self.jobs
            .iter()
            .find(|j| j.namespace == namespace && j.name == name)
    }
}

/// Whether a namespace other than the Release's own lets the Release's stages act in it.
///
/// A Release may only be created by someone allowed to in its namespace; relman, which may
/// change Deployments and create Jobs in every namespace, acts elsewhere only where that
/// namespace's owners said so on the Namespace object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceConsent {
    /// [`ANNOTATION_ACCEPT_RELEASES_FROM`] lists the Release's namespace, or is `*`.
    Accepted,
    /// The Namespace has no [`ANNOTATION_ACCEPT_RELEASES_FROM`] annotation.
    NotAnnotated,
    /// The annotation lists other namespaces only.
    NotListed {
        /// The annotation's value.
        value: String,
    },
    /// The Namespace does not exist.
    NotFound,
    /// relman may not read the Namespace (403): its RBAC does not reach it, so it acts there
    /// no more than where consent is missing.
    Unreadable {
        /// The API server's refusal, naming the verb and the resource.
        message: String,
    },
    /// A ReleasePolicy of the namespace (or the default that governs it) does not accept
    /// Releases of the Release's namespace.
    RefusedByPolicy {
        /// The policy, e.g. `ReleasePolicy shop-prod/default`.
        policy: String,
        /// Why, naming the policy's field.
        why: String,
    },
}

impl NamespaceConsent {
    /// Whether `namespace`, governed by `policy`, accepts Releases of `release_namespace`
    /// (whose Namespace carries `source_labels`; `None`: the Namespace does not exist). A
    /// namespace with ReleasePolicies of its own answers by them alone; one without answers
    /// yes when the cluster default policy accepts, or, until its owners write a policy, when
    /// its legacy [`ANNOTATION_ACCEPT_RELEASES_FROM`] annotation does.
    pub fn decide(
        namespace: Option<&Namespace>,
        policy: &NamespacePolicy,
        release_namespace: &str,
        source_labels: &BTreeMap<String, String>,
    ) -> Self {
        if namespace.is_none() {
            return Self::NotFound;
        }
        let by_policy = policy.accepts(release_namespace, source_labels);
        if policy.is_own() {
            return match by_policy {
                Ok(()) => Self::Accepted,
                Err((policy, why)) => Self::RefusedByPolicy { policy, why },
            };
        }
        match (
            by_policy,
            Self::from_namespace(namespace, release_namespace),
        ) {
            (Ok(()), _) | (_, Self::Accepted) => Self::Accepted,
            (Err(_), legacy) => legacy,
        }
    }

    /// What `namespace` says about Releases of `release_namespace` (`None`: the Namespace
    /// does not exist).
    pub fn from_namespace(namespace: Option<&Namespace>, release_namespace: &str) -> Self {
        let Some(namespace) = namespace else {
            return Self::NotFound;
        };
        match namespace
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_ACCEPT_RELEASES_FROM))
        {
            None => Self::NotAnnotated,
            Some(value) if accepts_releases_from(value, release_namespace) => Self::Accepted,
            Some(value) => Self::NotListed {
                value: value.clone(),
            },
        }
    }
}

/// Whether the value of [`ANNOTATION_ACCEPT_RELEASES_FROM`] accepts Releases of
/// `release_namespace`: a comma-separated list of namespaces (whitespace around each item is
/// ignored) that names it, or `*`.
pub fn accepts_releases_from(value: &str, release_namespace: &str) -> bool {
    !release_namespace.is_empty()
        && value
            .split(',')
            .map(str::trim)
            .any(|item| item == "*" || item == release_namespace)
}

/// Whether the API server enforces the identity of ReleaseApprovals (the approval identity
/// ValidatingAdmissionPolicy of `config/approval-policy.yaml`) in one namespace. Without it,
/// anyone allowed to create a ReleaseApproval could sign it with another person's name, so
/// relman counts approvals only where it is enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalEnforcement {
    /// The policy exists with `failurePolicy: Fail`, matches the creation of ReleaseApprovals,
    /// and a binding with `validationActions` including `Deny` covers the namespace.
    Enforced,
    /// It is not, and why (e.g. the policy does not exist, or no binding covers the namespace).
    NotEnforced {
        /// Why, for people.
        reason: String,
    },
    /// Not looked at: no ReleaseApproval names the Release, so there is nothing to count
    /// (and no Namespace to read). Counts as not enforced.
    Unchecked,
}

impl ApprovalEnforcement {
    /// Whether approvals in the namespace can be trusted.
    pub fn is_enforced(&self) -> bool {
        *self == Self::Enforced
    }

    /// Whether the ValidatingAdmissionPolicy `policy_name` (among `policies`) and one of
    /// `bindings` enforce the identity of ReleaseApprovals created in `namespace`, whose labels
    /// are `namespace_labels` (`Err`: why they could not be read; they matter only when the
    /// policy or a binding selects namespaces by label, see [`Self::needs_namespace_labels`]).
    pub fn from_policies(
        policy_name: &str,
        namespace: &str,
        policies: &[ValidatingAdmissionPolicy],
        bindings: &[ValidatingAdmissionPolicyBinding],
        namespace_labels: &Result<BTreeMap<String, String>, String>,
    ) -> Self {
        let not = |reason: String| Self::NotEnforced { reason };
        let Some(policy) = policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(policy_name))
        else {
            return not(format!(
                "the ValidatingAdmissionPolicy {policy_name} does not exist"
            ));
        };
        let spec = policy.spec.clone().unwrap_or_default();
        if let Some(failure) = spec.failure_policy.as_deref()
            && failure != "Fail"
        {
            return not(format!(
                "the ValidatingAdmissionPolicy {policy_name} has failurePolicy {failure}, not Fail"
            ));
        }
        if !spec
            .match_constraints
            .as_ref()
            .is_some_and(|m| creates_approvals(m) && !lets_approvals_out(m))
        {
            return not(format!(
                "the ValidatingAdmissionPolicy {policy_name} does not match the creation of every ReleaseApproval (releaseapprovals.relman.io, without objectSelector or excludeResourceRules)"
            ));
        }
        let labels_needed = |selector: &LabelSelector| -> Result<bool, String> {
            match namespace_labels {
                Ok(labels) => Ok(selects(selector, labels)),
                Err(why) => Err(why.clone()),
            }
        };
        if spec
            .match_conditions
            .as_ref()
            .is_some_and(|c| !c.is_empty())
        {
            return not(format!(
                "the ValidatingAdmissionPolicy {policy_name} has matchConditions, which may skip approvals"
            ));
        }
        if let Some(selector) = spec
            .match_constraints
            .as_ref()
            .and_then(|m| m.namespace_selector.as_ref())
        {
            match labels_needed(selector) {
                Ok(true) => {}
                Ok(false) => {
                    return not(format!(
                        "the namespaceSelector of the ValidatingAdmissionPolicy {policy_name} does not select namespace {namespace}"
                    ));
                }
                Err(why) => return not(why),
            }
        }
        let mut unreadable = None;
        for binding in bindings {
            let spec = &binding.spec;
            if spec.policy_name != policy_name
                || !spec.validation_actions.iter().any(|a| a == "Deny")
            {
                continue;
            }
            let Some(resources) = spec.match_resources.as_ref() else {
                return Self::Enforced;
            };
            if lets_approvals_out(resources)
                || resources
                    .resource_rules
                    .as_ref()
                    .is_some_and(|rules| !rules.is_empty() && !creates_approvals(resources))
            {
                continue;
            }
            match resources.namespace_selector.as_ref() {
                None => return Self::Enforced,
                Some(selector) => match labels_needed(selector) {
                    Ok(true) => return Self::Enforced,
                    Ok(false) => {}
                    Err(why) => unreadable = Some(why),
                },
            }
        }
        not(unreadable.unwrap_or_else(|| {
            format!(
                "no ValidatingAdmissionPolicyBinding with validationActions Deny binds the ValidatingAdmissionPolicy {policy_name} to namespace {namespace}"
            )
        }))
    }
}

impl ApprovalEnforcement {
    /// Whether deciding [`Self::from_policies`] needs the namespace's labels: the policy
    /// `policy_name` or one of its bindings has a namespaceSelector.
    pub fn needs_namespace_labels(
        policy_name: &str,
        policies: &[ValidatingAdmissionPolicy],
        bindings: &[ValidatingAdmissionPolicyBinding],
    ) -> bool {
        let selects_namespaces = |resources: Option<&MatchResources>| {
            resources.is_some_and(|r| r.namespace_selector.is_some())
        };
        policies
            .iter()
            .filter(|p| p.metadata.name.as_deref() == Some(policy_name))
            .any(|p| selects_namespaces(p.spec.as_ref().and_then(|s| s.match_constraints.as_ref())))
            || bindings
                .iter()
                .map(|b| &b.spec)
                .filter(|s| s.policy_name == policy_name)
                .any(|s| selects_namespaces(s.match_resources.as_ref()))
    }
}

/// Whether `resources`' rules match the creation of releaseapprovals.relman.io.
fn creates_approvals(resources: &MatchResources) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.iter()
            .flatten()
            .any(|item| item == "*" || item == want)
    };
    resources
        .resource_rules
        .iter()
        .flatten()
        .any(|rule: &NamedRuleWithOperations| {
            has(&rule.api_groups, "relman.io")
                && has(&rule.api_versions, "v1alpha1")
                && has(&rule.operations, "CREATE")
                && has(&rule.resources, "releaseapprovals")
                && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
        })
}

/// Whether `resources` lets some ReleaseApprovals out: an objectSelector (an approval's own
/// labels would decide) or excluded resources.
fn lets_approvals_out(resources: &MatchResources) -> bool {
    resources
        .object_selector
        .as_ref()
        .is_some_and(|s| !selects_everything(s))
        || resources
            .exclude_resource_rules
            .as_ref()
            .is_some_and(|rules| !rules.is_empty())
}

/// Whether `selector` selects every object (no labels, no expressions).
fn selects_everything(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether the label selector `selector` selects an object labelled `labels`, as the API
/// server evaluates it (an unknown operator selects nothing).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

/// Tunables of the planner, with defaults that suit most clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// How long a pod may stay unable to start (image pull errors, crash loops, unschedulable)
    /// before the check it belongs to counts as failed.
    pub pod_problem_grace: Duration,
    /// The rollout timeout of a stage that does not set `rolloutTimeout`.
    pub default_rollout_timeout: Duration,
    /// The timeout of a backup or smoke-test Job that does not set `timeout`.
    pub default_job_timeout: Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            pod_problem_grace: Duration::from_secs(120),
            default_rollout_timeout: Duration::from_secs(600),
            default_job_timeout: Duration::from_secs(600),
        }
    }
}

/// One Deployment as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedDeployment {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.template`: what it runs now.
    pub template: PodTemplateSpec,
    /// The `deployment.kubernetes.io/revision` annotation.
    pub revision: Option<String>,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas` (1 when unset).
    pub desired_replicas: i32,
    /// `status.replicas`: pods of every ReplicaSet, old and new.
    pub replicas: i32,
    /// `status.updatedReplicas`: pods of the newest ReplicaSet.
    pub updated_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// `status.unavailableReplicas`.
    pub unavailable_replicas: i32,
    /// `status.conditions` (Progressing with reason ProgressDeadlineExceeded means the rollout
    /// failed).
    pub conditions: Vec<DeploymentCondition>,
    /// The value of the [`ANNOTATION_KNOWN_GOOD_RELEASE`] annotation.
    pub known_good_release: Option<String>,
    /// Problems of the pods of the newest ReplicaSet (the one rolling out).
    pub pod_problems: Vec<PodProblem>,
    /// Another Release (`namespace/name`) that drives this Deployment and has not finished:
    /// a stage that needs the Deployment waits for it.
    pub driven_by_other: Option<String>,
    /// The Release (`namespace/name`) the `relman.io/driven-by` annotation names: the last
    /// one that rolled out to this Deployment. A release reverts only Deployments it drives.
    pub driven_by: Option<String>,
    /// `metadata.labels`: a namespace's ReleasePolicy may let Releases drive only the
    /// Deployments its selector matches.
    pub labels: BTreeMap<String, String>,
}

impl ObservedDeployment {
    /// The planner's view of a Deployment read from the API server, with the problems of the
    /// pods of its newest ReplicaSet (see [`pod_problems`]).
    pub fn from_deployment(deployment: &Deployment, pod_problems: Vec<PodProblem>) -> Self {
        let meta = &deployment.metadata;
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let spec = &deployment.spec;
        let status = deployment.status.as_ref();
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            template: spec.template.clone(),
            revision: annotation(ANNOTATION_REVISION),
            generation: meta.generation.unwrap_or_default(),
            observed_generation: status
                .and_then(|s| s.observed_generation)
                .unwrap_or_default(),
            desired_replicas: spec.replicas.unwrap_or(1),
            replicas: status.and_then(|s| s.replicas).unwrap_or_default(),
            updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or_default(),
            ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or_default(),
            available_replicas: status
                .and_then(|s| s.available_replicas)
                .unwrap_or_default(),
            unavailable_replicas: status
                .and_then(|s| s.unavailable_replicas)
                .unwrap_or_default(),
            conditions: status
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
            known_good_release: annotation(ANNOTATION_KNOWN_GOOD_RELEASE),
            pod_problems,
            driven_by_other: None,
            // Emptied by a revert that gave the Deployment back to no Release.
            driven_by: annotation(ANNOTATION_DRIVEN_BY).filter(|d| !d.is_empty()),
            labels: meta.labels.clone().unwrap_or_default(),
        }
    }
}

/// One Job relman created, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedJob {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Running, succeeded or failed.
    pub state: JobState,
    /// Problems of its pods.
    pub pod_problems: Vec<PodProblem>,
    /// The uid of the Release object that created it (the `relman.io/release-uid` label). A
    /// Job of another object of the same name (a Release deleted and created again) is never
    /// counted.
    pub release_uid: Option<String>,
}

impl ObservedJob {
    /// The planner's view of a Job read from the API server, with the problems of its pods.
    ///
    /// A Job is finished once its outcome is decided: `Complete` or `SuccessCriteriaMet`
    /// means succeeded, `Failed` or `FailureTarget` means failed.
    pub fn from_job(job: &Job, pod_problems: Vec<PodProblem>) -> Self {
        let meta = &job.metadata;
        let status = job.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let holds = |type_: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == "True")
        };
        let state = if holds("Complete")
            .or_else(|| holds("SuccessCriteriaMet"))
            .is_some()
        {
            JobState::Succeeded
        } else if let Some(failed) = holds("Failed").or_else(|| holds("FailureTarget")) {
            JobState::Failed {
                reason: failed.reason.clone().unwrap_or_else(|| "Failed".into()),
                message: failed.message.clone().unwrap_or_default(),
            }
        } else {
            let since = status
                .and_then(|s| s.start_time.as_ref())
                .or(meta.creation_timestamp.as_ref())
                .map(from_k8s_time)
                .unwrap_or_default();
            JobState::Running { since }
        };
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            state,
            pod_problems,
            release_uid: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_RELEASE_UID))
                .cloned(),
        }
    }
}

/// Where a Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished; started at `since`.
    Running {
        /// When the Job started (`status.startTime`, else its creation).
        since: DateTime<Utc>,
    },
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully.
    Failed {
        /// The Job's `Failed` condition reason, e.g. BackoffLimitExceeded.
        reason: String,
        /// The condition's message.
        message: String,
    },
}

/// A pod that cannot start, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    /// The pod's name.
    pub pod: String,
    /// What is wrong.
    pub reason: PodProblemReason,
    /// The kubelet's or scheduler's message.
    pub message: String,
    /// Since when (the pod's start, or the transition of its PodScheduled condition).
    pub since: DateTime<Utc>,
}

/// Why a pod cannot start. Each one fails the check it belongs to once it lasts longer than
/// [`PlanConfig::pod_problem_grace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PodProblemReason {
    /// The image cannot be pulled.
    ErrImagePull,
    /// The kubelet backs off pulling the image.
    ImagePullBackOff,
    /// The image reference is invalid.
    InvalidImageName,
    /// The container keeps crashing.
    CrashLoopBackOff,
    /// The container cannot be created from its configuration (e.g. a missing Secret).
    CreateContainerConfigError,
    /// No node can run the pod.
    Unschedulable,
}

impl PodProblemReason {
    /// The CamelCase reason, as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ErrImagePull => "ErrImagePull",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::InvalidImageName => "InvalidImageName",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::Unschedulable => "Unschedulable",
        }
    }

    fn from_waiting_reason(reason: &str) -> Option<Self> {
        Some(match reason {
            "ErrImagePull" => Self::ErrImagePull,
            "ImagePullBackOff" => Self::ImagePullBackOff,
            "InvalidImageName" => Self::InvalidImageName,
            "CrashLoopBackOff" => Self::CrashLoopBackOff,
            "CreateContainerConfigError" => Self::CreateContainerConfigError,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PodProblemReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The problems of one pod that keep it from starting: containers waiting on an image pull,
/// a crash loop or a configuration error, and an unschedulable pod. A problem without any
/// timestamp to measure it from is left out.
pub fn pod_problems(pod: &Pod) -> Vec<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let started = status
        .start_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(from_k8s_time);
    let mut problems = Vec::new();
    if let Some(scheduled) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        && scheduled.reason.as_deref() == Some("Unschedulable")
        && let Some(since) = scheduled
            .last_transition_time
            .as_ref()
            .map(from_k8s_time)
            .or(started)
    {
        problems.push(PodProblem {
            pod: name.clone(),
            reason: PodProblemReason::Unschedulable,
            message: scheduled.message.clone().unwrap_or_default(),
            since,
        });
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let Some(reason) = waiting
            .reason
            .as_deref()
            .and_then(PodProblemReason::from_waiting_reason)
        else {
            continue;
        };
        let Some(since) = started else { continue };
        problems.push(PodProblem {
            pod: name.clone(),
            reason,
            message: format!(
                "container {}: {}",
                container.name,
                waiting.message.clone().unwrap_or_default()
            ),
            since,
        });
    }
    problems
}

/// A ReleaseApproval as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedApproval {
    /// The ReleaseApproval's name.
    pub name: String,
    /// The Release it names.
    pub release: String,
    /// The version it is for; only approvals of the release's own version count.
    pub version: String,
    /// The gate: a stage name or a requirement name.
    pub gate: String,
    /// Approved or Rejected.
    pub decision: Decision,
    /// Who decided.
    pub approver: String,
    /// The approver's comment.
    pub comment: Option<String>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// The uid of the Release object it names (`spec.releaseUID`), if it names one.
    pub release_uid: Option<String>,
    /// The approver's groups as the API server recorded them
    /// ([`ANNOTATION_APPROVER_GROUPS`]); `None` when not recorded.
    pub groups: Option<Vec<String>>,
}

impl ObservedApproval {
    /// The planner's view of a ReleaseApproval read from the API server.
    pub fn from_approval(approval: &ReleaseApproval) -> Self {
        Self {
            name: approval.metadata.name.clone().unwrap_or_default(),
            release: approval.spec.release.clone(),
            version: approval.spec.version.clone(),
            gate: approval.spec.gate.clone(),
            decision: approval.spec.decision,
            approver: approval.spec.approver.clone(),
            comment: approval.spec.comment.clone(),
            created: approval
                .metadata
                .creation_timestamp
                .as_ref()
                .map(from_k8s_time),
            release_uid: approval.spec.release_uid.clone(),
            groups: approval
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_APPROVER_GROUPS))
                .map(|groups| {
                    groups
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
        }
    }
}

/// Gates computed elsewhere in relman, which the planner only consumes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gates {
    /// Whether the release's requirements (built-in and named) are met. Checked before the
    /// first stage starts.
    pub requirements: GateState,
    /// The state of each requirement, copied to `status.requirements`.
    pub requirement_details: Vec<RequirementStatus>,
    /// The deployment window of the release's calendar, for stages with `window: true`.
    /// `None` when the release names no calendar: such stages are then not gated.
    pub window: Option<GateState>,
    /// Why the release's Jobs or namespaces cannot work, found before the first stage starts
    /// (e.g. the API server rejects a Job template in a dry run). The release stalls with this
    /// message until the spec is fixed; nothing is changed.
    pub invalid: Option<String>,
    /// Why relman's own identity may not create a stage's Jobs, found by the same dry run (the
    /// API server's 403 names the verb and the resource). The release stalls before anything
    /// changes and looks again after [`FORBIDDEN_RECHECK`](super::lifecycle::FORBIDDEN_RECHECK).
    pub forbidden: Option<String>,
}

/// Whether a gate is open, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateState {
    /// Open (the release may go on) or closed.
    pub open: bool,
    /// A CamelCase reason, e.g. RequirementsMet, NotesMissing, WindowOpen, WindowClosed, Frozen.
    pub reason: String,
    /// Why, for people.
    pub message: String,
    /// When the gate is expected to change (e.g. the next window opens); the planner requeues
    /// then while it waits for the gate.
    pub next_change: Option<DateTime<Utc>>,
}

impl GateState {
    /// An open gate.
    pub fn open(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            open: true,
            reason: reason.into(),
            message: message.into(),
            next_change: None,
        }
    }

    /// A closed gate that may open at `next_change`.
    pub fn closed(
        reason: impl Into<String>,
        message: impl Into<String>,
        next_change: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            open: false,
            reason: reason.into(),
            message: message.into(),
            next_change,
        }
    }
}

/// Open, so that a controller that does not compute a gate yet does not block on it.
impl Default for GateState {
    fn default() -> Self {
        Self::open("NotEvaluated", "no check is configured for this gate")
    }
}

/// The images of every container (init containers included) of a pod template, by container
/// name.
pub fn template_images(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template
        .spec
        .iter()
        .flat_map(|spec| {
            spec.init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
        })
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::api::time::to_k8s_time;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn reads_namespace_consent() {
        let namespace = |value: Option<&str>| Namespace {
            metadata: ObjectMeta {
                name: Some("shop-prod".into()),
                annotations: value.map(|v| {
                    BTreeMap::from([(ANNOTATION_ACCEPT_RELEASES_FROM.to_owned(), v.to_owned())])
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let consent =
            |value: Option<&str>| NamespaceConsent::from_namespace(Some(&namespace(value)), "shop");
        assert_eq!(consent(Some("shop")), NamespaceConsent::Accepted);
        assert_eq!(consent(Some(" ops , shop ")), NamespaceConsent::Accepted);
        assert_eq!(consent(Some("*")), NamespaceConsent::Accepted);
        assert_eq!(consent(None), NamespaceConsent::NotAnnotated);
        assert_eq!(
            consent(Some("shopping,ops")),
            NamespaceConsent::NotListed {
                value: "shopping,ops".into()
            }
        );
        assert_eq!(
            consent(Some("")),
            NamespaceConsent::NotListed { value: "".into() }
        );
        assert_eq!(
            NamespaceConsent::from_namespace(None, "shop"),
            NamespaceConsent::NotFound
        );
        assert!(!accepts_releases_from("*", ""));
    }

    #[test]
    fn reads_a_deployment() {
        let deployment = Deployment {
            metadata: ObjectMeta {
                name: Some("api".into()),
                namespace: Some("prod".into()),
                generation: Some(4),
                annotations: Some(BTreeMap::from([
                    (ANNOTATION_REVISION.to_owned(), "7".to_owned()),
                    (
                        ANNOTATION_KNOWN_GOOD_RELEASE.to_owned(),
                        "ns/rel@1.0.0".to_owned(),
                    ),
                ])),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(3),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(4),
                replicas: Some(4),
                updated_replicas: Some(2),
                available_replicas: Some(3),
                ..Default::default()
            }),
        };
        let observed = ObservedDeployment::from_deployment(&deployment, vec![]);
        assert_eq!(observed.revision.as_deref(), Some("7"));
        assert_eq!(observed.known_good_release.as_deref(), Some("ns/rel@1.0.0"));
        assert_eq!(
            (
                observed.desired_replicas,
                observed.replicas,
                observed.updated_replicas
            ),
            (3, 4, 2)
        );
    }

    #[test]
    fn reads_job_outcomes() {
        let job = |conditions: Vec<JobCondition>| Job {
            metadata: ObjectMeta {
                name: Some("smoke".into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(to_k8s_time(at(100))),
                ..Default::default()
            },
            status: Some(JobStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
            ..Default::default()
        };
        let condition = |type_: &str, reason: &str| JobCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("boom".into()),
            ..Default::default()
        };
        assert_eq!(
            ObservedJob::from_job(&job(vec![]), vec![]).state,
            JobState::Running { since: at(100) }
        );
        assert_eq!(
            ObservedJob::from_job(&job(vec![condition("Complete", "")]), vec![]).state,
            JobState::Succeeded
        );
        assert_eq!(
            ObservedJob::from_job(
                &job(vec![condition("FailureTarget", "BackoffLimitExceeded")]),
                vec![]
            )
            .state,
            JobState::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "boom".into()
            }
        );
    }

    #[test]
    fn finds_pods_that_cannot_start() {
        let waiting = |reason: &str| ContainerStatus {
            name: "api".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: Some("details".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("api-1".into()),
                creation_timestamp: Some(to_k8s_time(at(50))),
                ..Default::default()
            },
            status: Some(PodStatus {
                start_time: Some(to_k8s_time(at(60))),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    last_transition_time: Some(to_k8s_time(at(55))),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![
                    waiting("ImagePullBackOff"),
                    waiting("ContainerCreating"),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let problems = pod_problems(&pod);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].reason, PodProblemReason::Unschedulable);
        assert_eq!(problems[0].since, at(55));
        assert_eq!(problems[1].reason, PodProblemReason::ImagePullBackOff);
        assert_eq!(problems[1].since, at(60));
    }
}
