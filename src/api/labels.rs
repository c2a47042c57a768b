//! Every label and annotation relman reads or writes, with the field manager it writes as.
//! They are part of relman's contract with the cluster: tools, policies and people select and
//! read them, so they live beside the types and change only with a migration note.

/// The field manager relman uses for every server-side apply and update.
pub const FIELD_MANAGER: &str = "relman";

/// The label naming the Release a Job (or a driven Deployment) belongs to.
pub const LABEL_RELEASE: &str = "relman.io/release";
/// The label naming the namespace of the Release a Job belongs to (Jobs run in the stage's
/// namespace, which may differ).
pub const LABEL_RELEASE_NAMESPACE: &str = "relman.io/release-namespace";
/// The label carrying the uid of the Release object a Job belongs to: a Release deleted and
/// created again under the same name never counts the old object's Jobs.
pub const LABEL_RELEASE_UID: &str = "relman.io/release-uid";
/// The label naming the stage a Job belongs to.
pub const LABEL_STAGE: &str = "relman.io/stage";
/// The label carrying the stage attempt a Job belongs to.
pub const LABEL_ATTEMPT: &str = "relman.io/attempt";
/// The label saying which check a Job performs (`backup` or `smoke`).
pub const LABEL_JOB_KIND: &str = "relman.io/job-kind";

/// The annotation on a driven Deployment naming the Release that drives it (`namespace/name`).
pub const ANNOTATION_DRIVEN_BY: &str = "relman.io/driven-by";
/// The annotation naming the Release (`namespace/name`) that last reverted a Deployment. A
/// revert hands the Deployment back to its previous driver, so this is how the reverting
/// Release still hears of the revert's rollout until it completes.
pub const ANNOTATION_REVERTED_BY: &str = "relman.io/reverted-by";
/// The annotation relman sets on a Deployment whose revision passed a stage's checks; the
/// value names the release (`<namespace>/<name>@<version>`).
pub const ANNOTATION_KNOWN_GOOD_RELEASE: &str = "relman.io/known-good-release";
/// The annotation relman sets next to [`ANNOTATION_KNOWN_GOOD_RELEASE`]: the revision that
/// passed.
pub const ANNOTATION_KNOWN_GOOD_REVISION: &str = "relman.io/known-good-revision";
/// The annotation the Deployment controller keeps the current revision in (not relman's).
pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";

/// The annotation on a Namespace that lets Releases of other namespaces drive stages in it:
/// a comma-separated list of the namespaces whose Releases it accepts (whitespace around each
/// item is ignored), or `*` for Releases of every namespace. Without it a stage may act only
/// in its Release's own namespace.
pub const ANNOTATION_ACCEPT_RELEASES_FROM: &str = "relman.io/accept-releases-from";

/// The annotation that gives the time of the commit a Release ships (RFC 3339). Lead time for
/// changes is measured from it when set, from the Release's creation otherwise.
pub const ANNOTATION_COMMIT_TIME: &str = "relman.io/commit-time";

/// The annotation that records who created a Release: the Kubernetes user name the API server
/// authenticated on create. Only an admission policy sets it (a value sent by the client is
/// overwritten on create, and a change is refused on update), so relman can tell a sign-off by
/// the Release's own author from an independent one.
pub const ANNOTATION_CREATED_BY: &str = "relman.io/created-by";

/// The annotation that records the groups of the user who created a ReleaseApproval, joined by
/// commas, as the API server authenticated them (`config/approval-policy.yaml` sets it on
/// create and refuses any other value). A ReleasePolicy that asks for sign-offs from a group
/// counts only approvals whose record names it.
pub const ANNOTATION_APPROVER_GROUPS: &str = "relman.io/approver-groups";
