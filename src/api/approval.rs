//! The `ReleaseApproval` resource: a signed statement about a release.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{DNS_LABEL, SEMVER};

/// A sign-off (or a rejection) of one gate of one release version.
///
/// Who may create approvals is decided by RBAC; that the approver is the person who created it,
/// and that approvals never change, is enforced by the ValidatingAdmissionPolicy relman ships.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "relman.io",
    version = "v1alpha1",
    kind = "ReleaseApproval",
    namespaced,
    shortname = "relapp",
    category = "relman",
    doc = "A ReleaseApproval records one person's decision on one gate of one release version: \
           the Release Manager's sign-off before production, or a named requirement such as \
           acceptance-criteria. Approvals are immutable.",
    printcolumn(name = "Release", type_ = "string", json_path = ".spec.release"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Gate", type_ = "string", json_path = ".spec.gate"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(name = "Approver", type_ = "string", json_path = ".spec.approver"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("ReleaseApproval is immutable: create a new approval instead of changing this one"))]
#[serde(rename_all = "camelCase")]
pub struct ReleaseApprovalSpec {
    /// The name of the Release (in this namespace) the decision is about.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub release: String,

    /// The release version the decision is about. A decision counts only for this version, so an
    /// approval of 2.3.0 never opens the gate for 2.3.1.
    #[schemars(length(min = 5, max = 128))]
    #[x_kube(validation = Rule::new(SEMVER).message("spec.version must be the semantic version of the release, such as 2.3.0"))]
    pub version: String,

    /// The gate: the name of a stage that requires approval (e.g. production), or the name of
    /// one of the release's requirements (e.g. acceptance-criteria).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_LABEL).message("spec.gate must be a stage or requirement name, e.g. production"))]
    pub gate: String,

    /// Approved opens the gate; Rejected stops the release and reverts what it deployed.
    pub decision: Decision,

    /// The Kubernetes user name of the person deciding. It must be the user who creates the
    /// object (checked by the admission policy).
    #[schemars(length(min = 1, max = 253))]
    pub approver: String,

    /// Why, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub comment: Option<String>,

    /// The `metadata.uid` of the Release object the decision is about (`kubectl relman
    /// approve` sets it). A decision counts only for that object, and only if it was created
    /// no earlier than it: a Release deleted and created again under the same name does not
    /// inherit it. Without it, the decision counts for no Release.
    #[serde(
        default,
        rename = "releaseUID",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 64))]
    pub release_uid: Option<String>,
}

/// A decision on a gate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Decision {
    /// The gate may open.
    Approved,
    /// The release must stop and revert.
    Rejected,
}
