//! The `Release` resource: one version of one application, taken through its stages.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::compact::Compact;
use super::schema::{
    DNS_LABEL, DURATION, SEMVER, conditions_schema, job_template_schema,
    preserve_unknown_object_opt,
};

/// What a release changes and how it is taken to production, as the release guide asks.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "relman.io",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    status = "ReleaseStatus",
    shortname = "rel",
    category = "relman",
    doc = "A Release is one version of one application, taken through staging and production by relman: \
           pre-release requirements, rollouts, smoke tests, sign-off, deployment window and automatic \
           revert to the last known-good revision.",
    printcolumn(
        name = "Application",
        type_ = "string",
        json_path = ".spec.application"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Stage",
        type_ = "string",
        json_path = ".status.stage",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// The application this release belongs to. Releases of one application are compared to find
    /// the previous version, the last known-good revision and the calendar rows. Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(
        validation = Rule::new(DNS_LABEL).message("spec.application must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit, e.g. checkout"),
        validation = Rule::new("self == oldSelf").message("spec.application is immutable: create a new Release for another application")
    )]
    pub application: String,

    /// The version being released, as a semantic version (MAJOR.MINOR.PATCH with an optional
    /// pre-release and build suffix, e.g. 2.3.0 or 2.3.0-rc.1). Immutable.
    #[schemars(length(min = 5, max = 128))]
    #[x_kube(
        validation = Rule::new(SEMVER).message("spec.version must be a semantic version such as 2.3.0 or 2.3.0-rc.1 (no leading 'v')"),
        validation = Rule::new("self == oldSelf").message("spec.version is immutable: create a new Release for a new version")
    )]
    pub version: String,

    /// The kind of release: Patch (a hotfix: only the patch number changes), Minor (new features,
    /// backwards compatible) or Major (breaking changes; release notes must list migration steps).
    #[serde(rename = "type")]
    pub release_type: ReleaseType,

    /// Who owns the release: a team or person, shown in the calendar and in announcements.
    #[schemars(length(min = 1, max = 128))]
    pub owner: String,

    /// The day the release is planned for production, as YYYY-MM-DD. Shown in the calendar and
    /// used to find conflicts; it does not start anything by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(r"self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')").message("spec.targetDate must be a date as YYYY-MM-DD, e.g. 2026-12-01"))]
    #[schemars(length(max = 10))]
    pub target_date: Option<String>,

    /// The ReleaseCalendar (cluster-scoped) whose deployment windows and freezes gate the stages
    /// that set `window: true`. Without it those stages are not gated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub calendar: Option<String>,

    /// How to roll back or mitigate if the release goes wrong: a URL to the runbook or the plan
    /// itself. The release guide requires it before staging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub rollback_plan: Option<String>,

    /// The release notes. A summary is required before staging; they are published before
    /// production and sent with the announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<ReleaseNotes>,

    /// The container images this release sets, each on the named container of every Deployment
    /// of every stage. Immutable: a different set of images is a different release.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(
        validation = Rule::new("self.all(i, self.exists_one(j, j.container == i.container))").message("spec.images must name each container once"),
        validation = Rule::new("self == oldSelf").message("spec.images is immutable: create a new Release to ship other images")
    )]
    pub images: Vec<ImageSpec>,

    /// Requirements beyond the built-in ones (notes drafted, rollback plan documented, smoke
    /// tests prepared), e.g. "acceptance criteria met" or "security scan passed". Each is met by
    /// an approved ReleaseApproval for it, or by a condition on another object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(s, s.name == r.name))").message("spec.requirements names must be unique"))]
    pub requirements: Vec<Requirement>,

    /// The stages in the order they run, usually `staging` then `production`. A stage starts only
    /// after the one before it is verified.
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(
        validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("spec.stages names must be unique"),
        validation = Rule::new("!self.exists(s, s.name == 'staging') || !self.exists(s, s.name == 'production') || self.filter(s, s.name == 'staging' || s.name == 'production')[0].name == 'staging'").message("spec.stages: the 'production' stage must come after the 'staging' stage"),
        validation = Rule::new(format!("!self.exists(s, self.exists(t, {SHARE_A_DEPLOYMENT}))")).message(Message::Expression(shared_deployment_message()))
    )]
    pub stages: Vec<Stage>,

    /// Who is told about the release, and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub notify: Vec<NotifyTarget>,

    /// Set to true to stop the release and revert every Deployment it changed to its last
    /// known-good revision, also after the release succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,

    /// The incident record, filled in after a production revert: root cause and action items.
    /// Recording a root cause closes the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentRecord>,
}

/// CEL, true when the stages `s` and `t` are two stages that name a common Deployment in the same
/// namespace. A stage without `namespace` deploys to the Release's namespace, which CEL cannot
/// see: two stages without one match each other, and a stage without one never matches a stage
/// that names a namespace (the controller stalls the release when that namespace is the
/// Release's own). `s.name != t.name` tells the stages apart: another rule keeps names unique.
/// `namespace` is a CEL reserved word, so the API server calls the field `__namespace__`; read
/// that way, its maxLength bounds the rule's estimated cost.
const SHARE_A_DEPLOYMENT: &str = "s.name != t.name \
    && (has(s.__namespace__) ? s.__namespace__ : '') == (has(t.__namespace__) ? t.__namespace__ : '') \
    && s.deployments.exists(d, d in t.deployments)";

/// The message of the rule that refuses two stages sharing a Deployment: it names the first such
/// stage, the other stage and the Deployment. It maps the stages rather than filtering them: the
/// API server's cost estimate loses the field sizes of a filtered list of objects.
fn shared_deployment_message() -> String {
    format!(
        "self.map(s, (self.map(t, ({SHARE_A_DEPLOYMENT}) \
            ? \"spec.stages: stages '\" + s.name + \"' and '\" + t.name + \"' both name the Deployment \" \
                + s.deployments.filter(d, d in t.deployments)[0] \
                + (has(s.__namespace__) ? \" in namespace \" + s.__namespace__ : \" in the Release's namespace\") \
                + \"; a Deployment belongs to one stage (a revert of one would undo the other): \
                give staging its own Deployment, e.g. in a staging namespace\" \
            : '').filter(m, m != '') + [''])[0]).filter(m, m != '')[0]"
    )
}

/// The kind of release, per the release guide.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReleaseType {
    /// A hotfix: only the patch number changes.
    Patch,
    /// New backwards-compatible features: the minor number changes and the patch resets.
    Minor,
    /// Breaking changes: the major number changes.
    Major,
}

impl std::fmt::Display for ReleaseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Patch => "Patch",
            Self::Minor => "Minor",
            Self::Major => "Major",
        })
    }
}

/// Release notes, following the release guide's template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseNotes {
    /// One paragraph on what the release is and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub summary: Option<String>,
    /// The notable changes, one per item (at most 100 items of 500 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 500)))]
    pub notable_changes: Vec<String>,
    /// What users or operators must do when upgrading. A Major release must list them or say
    /// "none". At most 50 items of 500 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 500)))]
    pub migration_steps: Vec<String>,
    /// Known issues that ship with this release (at most 50 items of 500 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 500)))]
    pub known_issues: Vec<String>,
}

/// A container image to set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// The name of the container (in each stage's Deployments) that gets the image.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub container: String,
    /// The image reference, e.g. registry.example/checkout:2.3.0 or an image digest.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[^\s]+$"))]
    pub image: String,
}

/// A requirement the release must meet before staging.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The requirement's name, e.g. acceptance-criteria or security-scan. Without `condition`, a
    /// ReleaseApproval with this name as its gate and decision Approved meets it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// What the requirement means, for people reading the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Meet the requirement when another object in the Release's namespace (or a cluster-scoped
    /// one) has a condition, e.g. a Tekton PipelineRun with Succeeded=True.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionGate>,
}

/// A condition on another object that opens a gate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionGate {
    /// The object's apiVersion, e.g. tekton.dev/v1.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// The object's kind, e.g. PipelineRun.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The object's name. It is looked up in the Release's own namespace (other namespaces
    /// cannot be read through a Release), or cluster-wide for a cluster-scoped kind.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The condition type to look at, e.g. Succeeded or Ready.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub condition_type: String,
    /// The status the condition must have. Defaults to "True".
    #[serde(default = "default_condition_status")]
    pub status: ConditionStatus,
}

fn default_condition_status() -> ConditionStatus {
    ConditionStatus::True
}

/// A Kubernetes condition status.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known.
    Unknown,
}

/// One stage of the release: the Deployments it changes and the checks that verify it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// The stage's name, unique in the release, e.g. staging or production.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The namespace of the stage's Deployments. Defaults to the Release's namespace. Another
    /// namespace must accept Releases of this one: its Namespace object carries the annotation
    /// relman.io/accept-releases-from listing this namespace (comma-separated) or `*`.
    /// Without it the release is Stalled (NamespaceNotPermitted) and nothing is changed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// The Deployments that get the release's images in this stage.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e == d))").message("a stage's deployments must be listed once each"))]
    pub deployments: Vec<DeploymentName>,

    /// A Job run before the rollout, e.g. a database backup or snapshot. If it fails the stage
    /// stops before anything changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<JobCheck>,

    /// The smoke-test (or post-deploy verification) Job run after the rollout. It must succeed
    /// for the stage to be verified. The release guide requires one in every stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke_test: Option<JobCheck>,

    /// Sign-off required before this stage starts, e.g. the Release Manager's verification of
    /// staging before production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,

    /// Wait for an open deployment window in the release's calendar before starting this stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub window: bool,

    /// How long the rollout may take before it counts as failed, as a duration such as 10m or
    /// 1h30m. Defaults to 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION).message("must be a duration such as 90s, 10m or 1h30m"))]
    pub rollout_timeout: Option<String>,

    /// Bake time: how long the stage stays under watch after its smoke test passed, as a
    /// duration such as 15m, before it is verified. If a Deployment of the stage loses an
    /// available replica (a pod that crash-loops or fails its readiness probe) or a condition
    /// requirement of the release stops holding meanwhile, the stage fails and is reverted.
    /// No bake time when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION).message("must be a duration such as 90s, 10m or 1h30m"))]
    pub bake: Option<String>,
}

/// The name of a Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct DeploymentName(
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub String,
);

/// A Job that checks something, with a deadline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobCheck {
    /// The Job to run, as in a CronJob's jobTemplate. relman names it after the release and
    /// stage, labels it, and runs it in the stage's namespace.
    #[schemars(schema_with = "job_template_schema")]
    #[x_kube(validation = Rule::new("has(self.spec) && has(self.spec.template) && has(self.spec.template.spec) && has(self.spec.template.spec.containers) && size(self.spec.template.spec.containers) > 0").message("template must be a Job template with spec.template.spec.containers"))]
    pub template: Compact<JobTemplateSpec>,

    /// How long the Job may run before it counts as failed, as a duration such as 90s or 10m.
    /// Defaults to 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION).message("must be a duration such as 90s, 10m or 1h30m"))]
    pub timeout: Option<String>,
}

/// Who must sign off before a stage starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// Whether a sign-off is required.
    #[serde(default = "default_true")]
    pub required: bool,
    /// How many distinct people must approve. Defaults to 1.
    #[serde(default = "default_approvers")]
    #[schemars(range(min = 1, max = 10))]
    pub approvers: u32,
}

fn default_true() -> bool {
    true
}

fn default_approvers() -> u32 {
    1
}

/// Someone to tell about the release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyTarget {
    /// A name for this receiver, used in status and Events.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The Secret key (in the Release's namespace) that holds the webhook URL. The URL is never
    /// written to logs, Events or status.
    pub secret_ref: SecretKeyRef,
    /// The events to send. Defaults to Released, RolledBack and IncidentOpened.
    #[serde(default = "default_notify_events")]
    #[schemars(length(max = 8))]
    pub events: Vec<NotifyEvent>,
    /// The payload format: Slack (Slack-compatible JSON) or CDEvents. Defaults to Slack.
    #[serde(default)]
    pub format: NotifyFormat,
}

fn default_notify_events() -> Vec<NotifyEvent> {
    vec![
        NotifyEvent::Released,
        NotifyEvent::RolledBack,
        NotifyEvent::IncidentOpened,
    ]
}

/// A reference to one key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A moment in a release worth telling people about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NotifyEvent {
    /// The release started its first stage.
    Started,
    /// The release waits for a sign-off.
    AwaitingApproval,
    /// The release reached production and passed verification.
    Released,
    /// The release was reverted to the last known-good revision.
    RolledBack,
    /// A production revert opened an incident (pages on-call).
    IncidentOpened,
}

/// The format of notification payloads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NotifyFormat {
    /// Slack-compatible JSON (`text` and `blocks`).
    #[default]
    Slack,
    /// CloudEvents carrying CDEvents (service.deployed, service.rolledback).
    CDEvents,
}

/// What people recorded about an incident.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRecord {
    /// The root cause, once known. Recording it closes the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub root_cause: Option<String>,
    /// Follow-up actions agreed in the review (at most 50 items of 500 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 500)))]
    pub action_items: Vec<String>,
}

/// What relman has observed and done. Written only by relman.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A one-word summary for people and printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,
    /// The stage running now, or the last one that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Ready, Reconciling and Stalled (kstatus), and the gates: RequirementsMet, StagingDeployed,
    /// StagingVerified, Approved, WindowOpen, ProductionDeployed, ProductionVerified, RolledBack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The state of each requirement, built-in and named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<RequirementStatus>,
    /// Per-stage progress: rollout revisions, the captured known-good state, Jobs and results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// The sign-offs relman has counted, the newest 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRecord>,
    /// How many older sign-offs `approvals` leaves out: it lists the newest 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_not_listed: Option<u32>,
    /// The incident opened by a production revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentStatus>,
    /// Transitions with timestamps, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// The last delivery of each `spec.notify` receiver and event: delivered or why not.
    /// Written by relman's notifier (field manager `relman-notify`) after each delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "notifications_schema")]
    pub notifications: Vec<NotificationStatus>,
}

/// The last delivery of one notification to one receiver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The receiver (`spec.notify[].name`).
    pub target: String,
    /// The event sent.
    pub event: NotifyEvent,
    /// Whether the receiver accepted it.
    pub delivered: bool,
    /// How many times it was sent (0 when the webhook URL could not be read).
    pub attempts: u32,
    /// When the last attempt ended.
    pub time: Time,
    /// Why the delivery failed (never the webhook URL); absent when delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A one-word summary of where a release is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReleasePhase {
    /// Accepted, waiting for its requirements.
    Pending,
    /// A stage is being backed up, rolled out or verified.
    Progressing,
    /// Waiting for a sign-off.
    AwaitingApproval,
    /// Waiting for the calendar's deployment window.
    AwaitingWindow,
    /// Every stage is verified.
    Succeeded,
    /// Reverting to the last known-good revision.
    RollingBack,
    /// Reverted to the last known-good revision.
    RolledBack,
    /// Stopped without a revert; a person must act (e.g. invalid input or a failed revert).
    Failed,
}

/// The state of one requirement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequirementStatus {
    /// The requirement's name: a built-in one (versionType, notesDrafted, rollbackPlanDocumented,
    /// smokeTestsPrepared, migrationStepsListed) or a `spec.requirements[].name`.
    pub name: String,
    /// Whether it is met.
    pub met: bool,
    /// Why it is or is not met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Progress of one stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The stage's name.
    pub name: String,
    /// Where the stage is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<StagePhase>,
    /// How many times the stage has started (the Job names carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When the stage started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the rollout of the stage's Deployments began, right after their known-good state
    /// was captured. The stage's rolloutTimeout counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// When the stage's bake time began: its smoke test had passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_started_at: Option<Time>,
    /// When the stage was verified, failed or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Each Deployment of the stage: the captured known-good state and the rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentStatus>,
    /// The backup Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<JobStatus>,
    /// The smoke-test Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke_test: Option<JobStatus>,
    /// Why the stage failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The ReleasePolicies (`namespace/name`) of the stage's namespace that the stage is held
    /// to, or `(built-in default)`; kept as they were when the stage ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

/// Where a stage is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StagePhase {
    /// Not started.
    Pending,
    /// The backup Job runs.
    BackingUp,
    /// The Deployments roll out.
    RollingOut,
    /// The smoke-test Job runs.
    Verifying,
    /// Every check passed; the revisions are marked known-good.
    Verified,
    /// A check failed.
    Failed,
    /// Reverting to the known-good state.
    RollingBack,
    /// Reverted to the known-good state.
    RolledBack,
}

/// One Deployment in a stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// The Deployment's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The revision that ran before this release (deployment.kubernetes.io/revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good_revision: Option<String>,
    /// The pod template that ran before this release, kept so a revert works even after the
    /// ReplicaSet history was pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object_opt")]
    pub known_good_template: Option<Compact<PodTemplateSpec>>,
    /// The revision this release rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_out_revision: Option<String>,
    /// The revision restored by a revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_revision: Option<String>,
    /// The Release (`namespace/name`) that drove the Deployment before this one (its
    /// relman.io/driven-by annotation at capture time). A revert gives the Deployment back to
    /// it along with its template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good_driver: Option<String>,
    /// Why a revert left the Deployment alone: another Release drives it now, or someone
    /// changed it since this release rolled it out. relman never overwrites either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_alone: Option<String>,
    /// Replicas available when the stage's bake time began. During the bake the stage fails
    /// only when fewer are available than this (or than desired, when that is fewer): an
    /// autoscaler adding replicas that are still starting is not a failure; losing one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at_bake_start: Option<i32>,
}

/// A Job relman ran.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The Job's name.
    pub name: String,
    /// Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why something failed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// A CamelCase reason, e.g. SmokeTestFailed, ProgressDeadlineExceeded or ImagePullBackOff.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// A sign-off relman counted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// The ReleaseApproval's name.
    pub name: String,
    /// The gate it is for.
    pub gate: String,
    /// Approved or Rejected.
    pub decision: String,
    /// Who signed off.
    pub approver: String,
    /// When the approval was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}

/// An incident opened by a production revert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    /// When the failure was detected.
    pub opened_at: Time,
    /// When the revert completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<Time>,
    /// When a root cause was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Time>,
    /// The stage that failed.
    pub stage: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened.
    pub message: String,
    /// The revision restored by the revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_restored: Option<String>,
}

/// A transition in the release's life.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it happened.
    pub at: Time,
    /// What happened, as a CamelCase reason (e.g. StagingDeployed, Approved, RolledBack).
    pub event: String,
    /// The stage, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Notification results as a list keyed by receiver and event.
fn notifications_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<NotificationStatus>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["target", "event"]),
    );
    schema
}
