//! Writing a custom resource's status: one mechanism for every controller.

use std::fmt::Debug;

use crate::api::labels::FIELD_MANAGER;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// What became of a status write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// The status was written.
    Written,
    /// The object changed since it was read (409): the status was computed from a stale read
    /// and was not written. The newer version arrives through the watch.
    Stale,
}

/// Writes `status` on `object` with server-side apply under relman's field manager. The patch
/// carries the resourceVersion `object` was read at, so a status computed from a stale read is
/// rejected instead of overwriting a newer one.
pub async fn apply_status<K>(
    api: &Api<K>,
    object: &K,
    status: &impl Serialize,
) -> Result<StatusWrite, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let name = object.name_any();
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name, "resourceVersion": object.resource_version() },
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&name, &params, &Patch::Apply(&patch))
        .await
    {
        Ok(_) => Ok(StatusWrite::Written),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(StatusWrite::Stale),
        Err(e) => Err(e),
    }
}
