//! A fresh local control plane with the benchmark's namespaces.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use relman_testenv::{ControlPlane, NODE_NAME};
use serde_json::json;

/// How often the benchmark renews the kwok node's Lease.
const LEASE_RENEW: Duration = Duration::from_secs(5);

/// A control plane for one phase; its processes stop when it is dropped.
pub struct Cluster {
    /// The control plane.
    pub control_plane: ControlPlane,
    /// An admin client (what the benchmark itself uses).
    pub admin: kube::Client,
    /// The namespaces the Releases are spread over.
    pub namespaces: Vec<String>,
    /// Keeps the node's Lease fresh (see [`keep_node_lease`]).
    lease_keeper: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.lease_keeper.abort();
    }
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
        let lease_keeper = tokio::spawn(keep_node_lease(admin.clone()));
        Ok(Self {
            control_plane,
            admin,
            namespaces: names,
            lease_keeper,
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

/// Renews the kwok node's Lease every [`LEASE_RENEW`].
///
/// kwok reports the node's status about once a minute and keeps no Lease, while the node
/// lifecycle controller declares a node unreachable after 50 s without either: with thousands of
/// pods the status update comes late, the node flaps NotReady and every pod on it is marked
/// unready, which stalls rollouts for reasons that have nothing to do with relman. A fresh
/// Lease keeps the node healthy, as a kubelet's would.
async fn keep_node_lease(client: kube::Client) {
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let params = PatchParams::apply("relman-bench").force();
    loop {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NODE_NAME, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": NODE_NAME, "leaseDurationSeconds": 40, "renewTime": now}
        });
        if let Err(e) = api.patch(NODE_NAME, &params, &Patch::Apply(&lease)).await {
            tracing::warn!(error = %e, "cannot renew the node's Lease");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}
