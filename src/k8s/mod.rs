//! The API calls relman makes on the objects it drives (Deployments, Jobs) and on its own
//! resources' status.

pub mod deployment;
pub mod job;
pub mod status;
pub mod watch;

/// The field manager relman uses for every server-side apply and update.
pub const FIELD_MANAGER: &str = "relman";

/// The annotation on a driven Deployment naming the Release that drives it (`namespace/name`).
pub const ANNOTATION_DRIVEN_BY: &str = "relman.io/driven-by";
/// The annotation naming the Release (`namespace/name`) that last reverted a Deployment. A
/// revert hands the Deployment back to its previous driver, so this is how the reverting
/// Release still hears of the revert's rollout until it completes.
pub const ANNOTATION_REVERTED_BY: &str = "relman.io/reverted-by";

/// The annotation on a Namespace that lets Releases of other namespaces drive stages in it:
/// a comma-separated list of the namespaces whose Releases it accepts (whitespace around each
/// item is ignored), or `*` for Releases of every namespace. Without it a stage may act only
/// in its Release's own namespace.
pub const ANNOTATION_ACCEPT_RELEASES_FROM: &str = "relman.io/accept-releases-from";
