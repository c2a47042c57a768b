//! Rolling out a release's images, reverting to the known-good template, and marking a revision
//! known-good.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::labels::{
    ANNOTATION_DRIVEN_BY, ANNOTATION_REVERTED_BY, FIELD_MANAGER, LABEL_RELEASE,
    LABEL_RELEASE_NAMESPACE,
};
use crate::error::{Error, Result};
use crate::plan::jobs::fit_name;

/// Who drives a Deployment: the Release's namespace and name.
#[derive(Clone, Debug)]
pub struct Driver<'a> {
    /// The Release's namespace.
    pub namespace: &'a str,
    /// The Release's name.
    pub name: &'a str,
}

/// The server-side apply patch that sets `images` (container name → image) on a Deployment and
/// labels it as driven by the release. It names only those fields, so nothing else in the
/// Deployment changes and relman's field manager owns only the images it set.
pub fn roll_out_patch(
    deployment: &Deployment,
    images: &BTreeMap<String, String>,
    driver: &Driver<'_>,
) -> serde_json::Value {
    let spec = deployment.spec.template.spec.as_ref();
    let init_names: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|c| c.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let (init, main): (Vec<_>, Vec<_>) = images
        .iter()
        .map(|(name, image)| (name, json!({ "name": name, "image": image })))
        .partition(|(name, _)| init_names.contains(&name.as_str()));
    let mut pod_spec = serde_json::Map::new();
    if !main.is_empty() {
        pod_spec.insert(
            "containers".into(),
            main.into_iter().map(|(_, c)| c).collect(),
        );
    }
    if !init.is_empty() {
        pod_spec.insert(
            "initContainers".into(),
            init.into_iter().map(|(_, c)| c).collect(),
        );
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment.name_any(),
            "namespace": deployment.namespace(),
            "labels": {
                LABEL_RELEASE: fit_name(driver.name),
                LABEL_RELEASE_NAMESPACE: driver.namespace,
            },
            "annotations": { ANNOTATION_DRIVEN_BY: format!("{}/{}", driver.namespace, driver.name) },
        },
        "spec": { "template": { "spec": pod_spec } },
    })
}

/// Sets the release's images on the Deployment `namespace/name`; returns it as written. The
/// patch carries the resourceVersion just read: if anyone (a person, another replica of relman
/// that took over) changed the Deployment in between, or the patch reaches the API server after
/// such a change, it is refused (409) and the next reconcile plans again.
pub async fn roll_out(
    client: &Client,
    namespace: &str,
    name: &str,
    images: &BTreeMap<String, String>,
    driver: &Driver<'_>,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let current = api.get(name).await?;
    let mut patch = roll_out_patch(&current, images, driver);
    patch["metadata"]["resourceVersion"] = json!(current.resource_version());
    Ok(api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?)
}

/// The JSON patch of a revert: restore `template` as the Deployment's pod template (the whole
/// template, as `kubectl rollout undo` does, so it runs exactly what it ran before) and give
/// the Deployment back to the Release that drove it before (`driver`; the driven-by
/// annotation is emptied when `None`), noting the reverting Release (`reverter`) in
/// `relman.io/reverted-by`. It first tests that `metadata.generation` is still
/// `generation`: the patch applies only while the Deployment's spec is the one the revert was
/// decided on. (Not the resourceVersion: the Deployment controller's status writes change it
/// all through a rollout, and a revert would keep losing that race.)
pub fn revert_patch(
    template: &PodTemplateSpec,
    generation: i64,
    driver: Option<&str>,
    reverter: &str,
) -> serde_json::Value {
    let annotation = |key: &str| {
        format!(
            "/metadata/annotations/{}",
            key.replace('~', "~0").replace('/', "~1")
        )
    };
    json!([
        { "op": "test", "path": "/metadata/generation", "value": generation },
        { "op": "replace", "path": "/spec/template", "value": template },
        // An empty value means "driven by no Release". Not a `remove`, which fails when the
        // annotation is gone.
        { "op": "add", "path": annotation(ANNOTATION_DRIVEN_BY), "value": driver.unwrap_or_default() },
        { "op": "add", "path": annotation(ANNOTATION_REVERTED_BY), "value": reverter },
    ])
}

/// Reverts the Deployment `namespace/name` with [`revert_patch`]; returns it as written. A
/// Deployment whose spec changed since `generation` is not touched:
/// [`Error::DeploymentChanged`] asks the caller to read it again.
pub async fn revert_to_known_good(
    client: &Client,
    namespace: &str,
    name: &str,
    template: &PodTemplateSpec,
    generation: i64,
    driver: Option<&str>,
    reverter: &str,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch: json_patch::Patch =
        serde_json::from_value(revert_patch(template, generation, driver, reverter))?;
    match api
        .patch(name, &relman_patch(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(written) => Ok(written),
        // A failed test op is a 422 like any invalid patch: tell them apart by looking.
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => {
            let now = api.get_opt(name).await?;
            if now.is_some_and(|d| d.metadata.generation != Some(generation)) {
                Err(Error::DeploymentChanged {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            } else {
                Err(kube::Error::Api(status).into())
            }
        }
        Err(other) => Err(other.into()),
    }
}

/// Merges `annotations` into the Deployment's metadata (not its pod template: no rollout);
/// returns the Deployment as written. Like [`roll_out`], the patch carries the resourceVersion
/// just read, so a mark that arrives after someone changed the Deployment (a revert by the
/// replica that took over, say) is refused instead of calling the new revision known-good.
pub async fn mark_known_good(
    client: &Client,
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let current = api.get(name).await?;
    let patch = json!({ "metadata": {
        "annotations": annotations,
        "resourceVersion": current.resource_version(),
    } });
    Ok(api
        .patch(name, &relman_patch(), &Patch::Merge(&patch))
        .await?)
}

/// A JSON or merge patch made as relman (its field manager).
fn relman_patch() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "checkout-api", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": {"spec": {
                    "initContainers": [{"name": "migrate", "image": "m:1"}],
                    "containers": [{"name": "api", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}]
                }}
            }
        }))
        .expect("valid deployment")
    }

    #[test]
    fn roll_out_patch_names_only_the_images() {
        let images = BTreeMap::from([
            ("api".to_owned(), "a:2".to_owned()),
            ("migrate".to_owned(), "m:2".to_owned()),
        ]);
        let driver = Driver {
            namespace: "shop",
            name: "checkout-2-0-0",
        };
        let patch = roll_out_patch(&deployment(), &images, &driver);
        assert_eq!(
            patch["spec"],
            json!({"template": {"spec": {
                "containers": [{"name": "api", "image": "a:2"}],
                "initContainers": [{"name": "migrate", "image": "m:2"}]
            }}})
        );
        assert_eq!(patch["metadata"]["labels"][LABEL_RELEASE], "checkout-2-0-0");
        assert_eq!(
            patch["metadata"]["annotations"][ANNOTATION_DRIVEN_BY],
            "shop/checkout-2-0-0"
        );
    }

    #[test]
    fn a_revert_applies_only_to_the_version_it_was_decided_on() {
        let template = deployment().spec.template;
        let patch = revert_patch(
            &template,
            42,
            Some("shop/checkout-1-0-0"),
            "shop/checkout-2-0-0",
        );
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/generation", "value": 42})
        );
        assert_eq!(patch[1]["path"], "/spec/template");
        assert_eq!(
            patch[2],
            json!({"op": "add", "path": "/metadata/annotations/relman.io~1driven-by",
                "value": "shop/checkout-1-0-0"})
        );
        let unowned = revert_patch(&template, 7, None, "shop/checkout-2-0-0");
        assert_eq!(
            unowned[3],
            json!({"op": "add", "path": "/metadata/annotations/relman.io~1reverted-by",
                "value": "shop/checkout-2-0-0"})
        );
        assert_eq!(
            unowned[2],
            json!({"op": "add", "path": "/metadata/annotations/relman.io~1driven-by", "value": ""})
        );
    }
}
