//! Kubeconfig files for the admin and for test users.

use std::path::Path;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};
use crate::pki::CertAndKey;

/// The name of the cluster (and of the context) in every kubeconfig the harness writes.
pub const CLUSTER_NAME: &str = "relman-testenv";

/// A self-contained kubeconfig (certificates embedded) for `user` authenticating with `client`.
pub(crate) fn render(server: &str, ca_pem: &str, user: &str, client: &CertAndKey) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": b64(&client.cert_pem),
                "client-key-data": b64(&client.key_pem),
            },
        }],
        "contexts": [{
            "name": CLUSTER_NAME,
            "context": {"cluster": CLUSTER_NAME, "user": user},
        }],
        "current-context": CLUSTER_NAME,
    });
    // Rendering a JSON value as YAML cannot fail; JSON is valid YAML should it ever do.
    serde_yaml::to_string(&document).unwrap_or_else(|_| format!("{document:#}\n"))
}

/// A client configuration from a rendered kubeconfig.
pub(crate) async fn load(contents: &str) -> Result<kube::Config> {
    let kubeconfig = Kubeconfig::from_yaml(contents)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// Loads the kubeconfig at `path`.
pub(crate) async fn load_file(path: &Path) -> Result<kube::Config> {
    let contents = tokio::fs::read_to_string(path)
        .await
        .map_err(Error::io(format!("read {}", path.display())))?;
    load(&contents).await
}
