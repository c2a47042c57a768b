//! relman's admission policies, installed on every control plane the way a cluster running
//! relman has them: the Release creator policy (`config/release-creator.yaml`, every
//! document) and the approval identity policy of `config/approval-policy.yaml`, bound to every
//! namespace except those labelled [`UNBOUND_LABEL`]`=unbound`.
//!
//! relman counts sign-offs only where the API server enforces who signs them, so tests and the
//! demo need the identity policy bound to their namespaces. A test that takes the policy away
//! labels its namespace to step out of the shared binding and binds the policy itself. The
//! group restriction of `config/approval-policy.yaml` (`relman-production-signoff`) is not
//! installed here: tests that need it bind it to their own namespace.

use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::crds::FIELD_MANAGER;
use crate::error::{Error, Result};

/// A namespace with this label set to `unbound` is not covered by the harness's binding of the
/// approval identity policy.
pub const UNBOUND_LABEL: &str = "relman.io/approval-policy";

/// The approval identity policy's name in `config/approval-policy.yaml`.
const IDENTITY_POLICY: &str = "relman-approval-identity";

/// The name of the harness's binding of the identity policy.
pub const IDENTITY_BINDING: &str = "relman-approval-identity-testenv";

/// Applies the policies from `<workspace>/config/`. A missing file installs nothing from it.
pub(crate) async fn install(client: &kube::Client, config: &Path) -> Result<Vec<String>> {
    let mut objects = documents(&config.join("release-creator.yaml"))?;
    let approval = documents(&config.join("approval-policy.yaml"))?;
    if let Some(policy) = approval.iter().find(|d| {
        d["kind"] == "ValidatingAdmissionPolicy" && d["metadata"]["name"] == IDENTITY_POLICY
    }) {
        objects.push(policy.clone());
        objects.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": IDENTITY_BINDING},
            "spec": {
                "policyName": IDENTITY_POLICY,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": UNBOUND_LABEL, "operator": "NotIn", "values": ["unbound"]}
                ]}}
            }
        }));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (group, version) = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .split_once('/')
            .unwrap_or_default();
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&kind));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(Error::kube(format!("apply {kind} {name}")))?;
        names.push(format!("{kind}/{name}"));
    }
    Ok(names)
}

/// How long the API server may take to apply a new MutatingAdmissionPolicy.
const MUTATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until the API server stamps the creator annotation on a new Release (a dry run as
/// the admin): policies and bindings take effect a moment after they are created, and the
/// creator policy's validating half may be enforced before its mutating half. Returns at once
/// when `config/release-creator.yaml` was not installed.
pub(crate) async fn wait_for_creator_stamp(
    client: &kube::Client,
    installed: &[String],
) -> Result<()> {
    if !installed
        .iter()
        .any(|n| n.starts_with("MutatingAdmissionPolicy/"))
    {
        return Ok(());
    }
    let gvk = GroupVersionKind::gvk("relman.io", "v1alpha1", "Release");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    let probe: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1", "kind": "Release",
        "metadata": {"name": "relman-testenv-probe", "namespace": "default"},
        "spec": {"application": "probe", "version": "1.0.0", "type": "Patch",
            "owner": "relman-testenv", "images": [{"container": "probe", "image": "probe:1.0.0"}],
            "stages": [{"name": "probe", "deployments": ["probe"]}]}
    }))
    .map_err(|e| Error::Build(format!("the creator probe Release: {e}")))?;
    let params = kube::api::PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let began = std::time::Instant::now();
    loop {
        let stamped = api
            .create(&params, &probe)
            .await
            .ok()
            .is_some_and(|created| {
                created.metadata.annotations.is_some_and(|a| {
                    a.get("relman.io/created-by").map(String::as_str) == Some(crate::ADMIN_USER)
                })
            });
        if stamped {
            return Ok(());
        }
        if began.elapsed() > MUTATION_TIMEOUT {
            return Err(Error::Build(
                "the API server did not apply the MutatingAdmissionPolicy of config/release-creator.yaml within 30s"
                    .to_owned(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The documents of the YAML file `path` (none when it does not exist).
fn documents(path: &Path) -> Result<Vec<Value>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|source| Error::Manifest {
            path: path.to_owned(),
            source,
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The resource name of an admission kind: `ValidatingAdmissionPolicy` →
/// `validatingadmissionpolicies`.
fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_the_admission_kinds() {
        assert_eq!(
            plural("ValidatingAdmissionPolicy"),
            "validatingadmissionpolicies"
        );
        assert_eq!(
            plural("MutatingAdmissionPolicyBinding"),
            "mutatingadmissionpolicybindings"
        );
    }
}
