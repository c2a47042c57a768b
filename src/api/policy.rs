//! The `ReleasePolicy` resource: what the owner of a namespace lets Releases do there, and the
//! gates they must pass first.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::release::{ReleaseType, Requirement};
use super::schema::label_selector_schema;

/// The rules a namespace's owner sets for every Release stage that deploys into it.
///
/// Every ReleasePolicy of a namespace applies: a stage must satisfy each of them, so a second
/// policy can only narrow what the first allows. A namespace with none gets the cluster
/// default (the controller's `--default-policy`) or, without one, the built-in default:
/// Releases of this namespace only, Jobs at the Pod Security `Restricted` level as the
/// `default` ServiceAccount, no extra gates.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "relman.io",
    version = "v1alpha1",
    kind = "ReleasePolicy",
    namespaced,
    shortname = "relpol",
    category = "relman",
    doc = "A ReleasePolicy is written by the owner of a namespace: which namespaces' Releases may \
           deploy into it, which Deployments they may drive, what their Jobs may do, and the gates \
           (sign-offs, calendar window, requirements, release types) every Release must pass \
           there, whatever the Release itself asks for.",
    printcolumn(name = "Jobs", type_ = "string", json_path = ".spec.jobs.podSecurity"),
    printcolumn(
        name = "Approvers",
        type_ = "integer",
        json_path = ".spec.gates.approval.approvers"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePolicySpec {
    /// Which other namespaces' Releases may deploy here. Releases of this namespace always
    /// may. Without it, no other namespace may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_releases_from: Option<SourceNamespaces>,

    /// Which Deployments of this namespace Releases may drive. Without it, any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<DeploymentRules>,

    /// Which images Releases may set on the Deployments here. Without it, any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageRules>,

    /// What the backup and smoke-test Jobs of a stage here may ask of the cluster.
    #[serde(default)]
    pub jobs: JobRules,

    /// Gates every stage deploying here must pass, in addition to the ones the Release asks
    /// for: a Release can add gates, never remove one of these.
    #[serde(default)]
    pub gates: GateRules,
}

/// Namespaces whose Releases are accepted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceNamespaces {
    /// Namespaces by name; `*` accepts every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub namespaces: Vec<SourceNamespaceName>,
    /// Namespaces by label (a Namespace whose labels match is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "label_selector_schema")]
    pub namespace_selector: Option<LabelSelector>,
}

/// The name of a namespace, or `*`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct SourceNamespaceName(
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")
    )]
    pub String,
);

/// Which Deployments Releases may drive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRules {
    /// Only Deployments whose labels match are driven; a stage naming another one stalls
    /// before anything changes.
    #[schemars(schema_with = "label_selector_schema")]
    pub selector: LabelSelector,
}

/// Which images Releases may set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRules {
    /// Every image of the Release (`spec.images[].image`) must start with one of these, e.g.
    /// `registry.example/shop/` for the repositories under that path (end a path with `/`, or
    /// `registry.example/shop` would also allow `registry.example/shopping`).
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 512)))]
    pub allowed_prefixes: Vec<String>,
}

/// What a Release's Jobs may do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRules {
    /// The Pod Security Standards level the Job templates must meet, checked by relman before
    /// the Job is created with the same rules as Pod Security admission. Defaults to
    /// Restricted.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    /// The ServiceAccounts Jobs may run as. Defaults to `default` only.
    #[serde(default = "default_service_accounts")]
    #[schemars(length(min = 1, max = 16))]
    pub service_accounts: Vec<ServiceAccountName>,
}

impl Default for JobRules {
    fn default() -> Self {
        Self {
            pod_security: PodSecurityLevel::default(),
            service_accounts: default_service_accounts(),
        }
    }
}

fn default_service_accounts() -> Vec<ServiceAccountName> {
    vec![ServiceAccountName("default".to_owned())]
}

/// The name of a ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct ServiceAccountName(
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub String,
);

/// A Pod Security Standards level, most permissive first.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum PodSecurityLevel {
    /// Anything a pod may ask for. Only for trusted teams.
    Privileged,
    /// No known privilege escalation: no host namespaces, host paths, privileged containers or
    /// extra capabilities.
    Baseline,
    /// Baseline, and the pod hardening best practices: non-root, no privilege escalation,
    /// every capability dropped, a seccomp profile, only ordinary volume types.
    #[default]
    Restricted,
}

impl std::fmt::Display for PodSecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Privileged => "Privileged",
            Self::Baseline => "Baseline",
            Self::Restricted => "Restricted",
        })
    }
}

/// Gates a namespace demands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateRules {
    /// The release types that may deploy here, e.g. [Patch, Minor] to keep Major releases out.
    /// Without it, every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub release_types: Vec<ReleaseType>,

    /// A sign-off every stage deploying here needs before it starts (ReleaseApprovals with the
    /// stage's name as gate). A Release asking for more approvers gets more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRule>,

    /// The ReleaseCalendar whose deployment windows and freezes gate every stage deploying
    /// here. A Release must name it as `spec.calendar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub calendar: Option<String>,

    /// Requirements the Release must meet before its first stage, in addition to its own. A
    /// requirement here replaces the Release's requirement of the same name, so its author
    /// cannot point it at an object they control.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub requirements: Vec<Requirement>,
}

/// The sign-off a namespace demands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRule {
    /// How many distinct people must approve. Defaults to 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    pub approvers: u32,
    /// Whether the Release's creator (recorded at admission in the relman.io/created-by
    /// annotation) is kept from signing off their own release. A Release without that record
    /// then gets no sign-off counted at all. Defaults to true.
    #[serde(default = "yes")]
    pub independent: bool,
    /// Count only sign-offs by members of this group, as the API server recorded them when
    /// the ReleaseApproval was created (the relman.io/approver-groups annotation that
    /// config/approval-policy.yaml sets). An approval without that record does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}
