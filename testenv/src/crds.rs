//! Installing CustomResourceDefinitions from a directory of YAML files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions::is_crd_established;
use serde::Deserialize as _;

use crate::error::{Error, Result};

/// Overrides the directory whose CRDs [`ControlPlane::start`](crate::ControlPlane::start)
/// installs (default: `<workspace>/crds`).
pub const CRD_DIR_ENV: &str = "RELMAN_TESTENV_CRD_DIR";

/// The field manager of every server-side apply the harness makes.
pub const FIELD_MANAGER: &str = "relman-testenv";

/// How long a CRD may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory whose CRDs a new control plane installs: `$RELMAN_TESTENV_CRD_DIR`, or
/// `<workspace>/crds`.
pub(crate) fn default_dir() -> PathBuf {
    std::env::var_os(CRD_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::binaries::workspace_root().join("crds"))
}

/// Applies every CRD in the `*.yaml` files of `dir` and waits until each is Established.
/// A missing or empty directory installs nothing. Returns the CRDs' names.
pub(crate) async fn install(client: &kube::Client, dir: &Path) -> Result<Vec<String>> {
    let crds = read_dir(dir)?;
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::with_capacity(crds.len());
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(Error::kube(format!(
                "apply CustomResourceDefinition {name}"
            )))?;
        names.push(name);
    }
    for name in &names {
        crate::wait::until(
            api.clone(),
            name,
            is_crd_established(),
            ESTABLISHED_TIMEOUT,
            format!("CustomResourceDefinition {name} to be Established"),
        )
        .await?;
    }
    Ok(names)
}

/// The CRDs in the `*.yaml` files of `dir`, in file-name order.
fn read_dir(dir: &Path) -> Result<Vec<CustomResourceDefinition>> {
    let mut crds = Vec::new();
    for path in yaml_files(dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(Error::io(format!("read {}", path.display())))?;
        crds.extend(parse(&text).map_err(|source| Error::Manifest { path, source })?);
    }
    Ok(crds)
}

/// The `*.yaml` files in `dir`, sorted; none when `dir` does not exist.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()))(e)),
    };
    let mut files = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::io(format!("list {}", dir.display())))?;
    files.retain(|p| p.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    Ok(files)
}

/// Every non-empty YAML document of `text`, as a CRD.
fn parse(text: &str) -> Result<Vec<CustomResourceDefinition>, serde_yaml::Error> {
    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document)?;
        if !value.is_null() {
            crds.push(serde_yaml::from_value(value)?);
        }
    }
    Ok(crds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object}
"#;

    #[test]
    fn empty_documents_are_skipped() {
        let crds = parse(&format!("---\n{CRD}\n---\n")).unwrap();
        assert_eq!(crds.len(), 1);
        assert_eq!(
            crds[0].metadata.name.as_deref(),
            Some("widgets.example.com")
        );
    }

    #[test]
    fn a_missing_directory_has_no_crds() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_dir(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn a_manifest_that_is_not_a_crd_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "kind: ConfigMap\napiVersion: v1\n",
        )
        .unwrap();
        let message = read_dir(dir.path()).unwrap_err().to_string();
        assert!(message.contains("bad.yaml"), "{message}");
    }
}
