//! A fresh local control plane with the benchmark's namespaces.

use anyhow::Context as _;
use relman_testenv::ControlPlane;

/// A control plane for one phase; its processes stop when it is dropped.
pub struct Cluster {
    /// The control plane.
    pub control_plane: ControlPlane,
    /// An admin client (what the benchmark itself uses).
    pub admin: kube::Client,
    /// The namespaces the Releases are spread over.
    pub namespaces: Vec<String>,
}

impl Cluster {
    /// Starts a control plane and creates `namespaces` namespaces named `<prefix>-*`.
    pub async fn start(prefix: &str, namespaces: usize) -> anyhow::Result<Self> {
        let control_plane = ControlPlane::start()
            .await
            .context("start the local control plane (RELMAN_TESTENV_BIN_DIR, see testenv/)")?;
        let admin = control_plane.client().await?;
        let mut names = Vec::with_capacity(namespaces);
        for _ in 0..namespaces {
            names.push(
                control_plane
                    .test_namespace(prefix)
                    .await?
                    .name()
                    .to_owned(),
            );
        }
        tracing::info!(
            server = %control_plane.server_url(),
            startup = ?control_plane.startup_time(),
            "control plane ready"
        );
        Ok(Self {
            control_plane,
            admin,
            namespaces: names,
        })
    }

    /// A kubeconfig for `user`, in `system:masters` (relman's chart role would do; the
    /// benchmark measures requests, not permissions).
    pub fn kubeconfig_for(&self, user: &str) -> anyhow::Result<std::path::PathBuf> {
        Ok(self
            .control_plane
            .user_kubeconfig(user, &["system:masters"])?)
    }
}
