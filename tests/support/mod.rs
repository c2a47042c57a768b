//! What the leader election and metrics tests share: a test namespace with the staging and
//! production Deployments of application `web`, Releases of it, a plain HTTP GET, and the
//! consent of a namespace to another namespace's Releases.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseApproval, ReleaseStatus};

use relman::api::labels::ANNOTATION_ACCEPT_RELEASES_FROM;
use relman_testenv::{ControlPlane, FAIL_LABEL};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for the cluster or the controller.
pub const WAIT: Duration = Duration::from_secs(120);

/// The image the Deployments run before any release.
pub const OLD_IMAGE: &str = "web:1.0.0";

/// A test's namespace with the staging and production Deployments running [`OLD_IMAGE`].
pub struct Env {
    pub client: kube::Client,
    pub ns: String,
    pub releases: Api<Release>,
    pub deployments: Api<Deployment>,
}

impl Env {
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        let client = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for name in ["web-staging", "web-prod"] {
            deployments
                .create(&PostParams::default(), &deployment(name))
                .await?;
        }
        let env = Self {
            releases: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            deployments,
        };
        for name in ["web-staging", "web-prod"] {
            env.wait_available(name).await?;
        }
        Ok(env)
    }

    pub async fn create(&self, release: &Release) -> anyhow::Result<()> {
        self.releases
            .create(&PostParams::default(), release)
            .await?;
        Ok(())
    }

    /// Starts a controller for the test's namespace; it stops with the test.
    pub fn controller(&self) -> tokio::task::JoinHandle<()> {
        let ctx = std::sync::Arc::new(relman::controller::Context::new(
            self.client.clone(),
            Some("test".into()),
            relman::plan::PlanConfig::default(),
        ));
        let namespace = self.ns.clone();
        tokio::spawn(async move {
            let _ = relman::controller::run(ctx, Some(namespace), std::future::pending()).await;
        })
    }

    /// A client for user `name` holding only the shipped `relman-developer` role
    /// (config/user-roles.yaml) in the test's namespace: may create and change Releases, may
    /// not touch Deployments, Jobs or sign-offs.
    pub async fn developer(&self, name: &str) -> anyhow::Result<kube::Client> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/user-roles.yaml"
        ))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document)?;
            if value["kind"] == "ClusterRole" && value["metadata"]["name"] == "relman-developer" {
                Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(self.client.clone())
                    .patch(
                        "relman-developer",
                        &PatchParams::apply("relman-tests").force(),
                        &Patch::Apply(&value),
                    )
                    .await?;
            }
        }
        let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("relman-developer-{name}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "relman-developer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]
        }))?;
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &binding)
            .await?;
        Ok(ControlPlane::shared().await?.user_client(name, &[]).await?)
    }

    /// The image of the first container of Deployment `name`.
    pub async fn image(&self, name: &str) -> anyhow::Result<String> {
        let d = self.deployments.get(name).await?;
        Ok(d.spec.template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap_or_default())
    }

    /// Runs kubectl in the test's namespace, off the async runtime.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = ControlPlane::shared().await?.kubectl();
        command.args(args).args(["-n", &self.ns]);
        let out = tokio::task::spawn_blocking(move || command.output()).await??;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// The Events on Release `name` with `reason`, once there is at least one (Events are
    /// recorded just after the status they go with, so a test that saw the status waits a
    /// moment for them); empty if none comes within 10 seconds.
    pub async fn events(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
        for _ in 0..50 {
            let found = self.events_now(name, reason).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Vec::new())
    }

    /// The Events on Release `name` with `reason`, as they are now.
    pub async fn events_now(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect())
    }

    /// Approves `release` (version `version`) at the production gate.
    pub async fn approve_production(&self, release: &str, version: &str) -> anyhow::Result<()> {
        let approval: ReleaseApproval = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseApproval",
            "metadata": {"name": format!("{release}-production")},
            "spec": {"release": release, "version": version, "gate": "production",
                "decision": "Approved", "approver": relman_testenv::ADMIN_USER,
                "comment": "Staging verified."}
        }))?;
        Api::<ReleaseApproval>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &approval)
            .await?;
        Ok(())
    }

    pub async fn wait_available(&self, name: &str) -> anyhow::Result<()> {
        let done = |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                let status = d.status.clone().unwrap_or_default();
                d.metadata.generation == status.observed_generation
                    && status.updated_replicas == d.spec.replicas
                    && status.available_replicas == d.spec.replicas
                    && status.replicas == d.spec.replicas
            })
        };
        tokio::time::timeout(WAIT, await_condition(self.deployments.clone(), name, done))
            .await
            .map_err(|_| anyhow::anyhow!("Deployment {name} did not become available"))??;
        Ok(())
    }

    /// Waits until the Release's condition `type_` has `status`; returns the status then.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
    ) -> anyhow::Result<ReleaseStatus> {
        self.wait_status(name, &format!("{type_}={status}"), |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status)
        })
        .await
    }

    /// Waits until the Release's status satisfies `holds` (described by `what`); returns it.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        holds: impl Fn(&ReleaseStatus) -> bool,
    ) -> anyhow::Result<ReleaseStatus> {
        let cond = |r: Option<&Release>| r.and_then(|r| r.status.as_ref()).is_some_and(&holds);
        match tokio::time::timeout(WAIT, await_condition(self.releases.clone(), name, cond)).await {
            Ok(found) => Ok(found?.and_then(|r| r.status).unwrap_or_default()),
            Err(_) => {
                let now = self.releases.get(name).await?.status;
                anyhow::bail!("timed out waiting for {what} on {name}; status: {now:#?}")
            }
        }
    }
}

/// The condition `type_` of `status`; panics with the status when it is missing.
pub fn condition<'a>(status: &'a ReleaseStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {status:#?}"))
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": OLD_IMAGE}]}
            }
        }
    }))
    .expect("valid Deployment")
}

/// A smoke test that passes or fails.
fn smoke(passes: bool) -> Value {
    let labels = if passes {
        json!({})
    } else {
        json!({ FAIL_LABEL: "true" })
    };
    json!({"timeout": "5m", "template": {"spec": {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "smoke:1"}]}
    }}}})
}

/// How a test wants a Release of `web`.
pub struct ReleaseOf<'a> {
    pub version: &'a str,
    /// Whether production's smoke test passes.
    pub production_passes: bool,
    /// Whether production waits for a sign-off.
    pub production_approval: bool,
    pub annotations: Value,
}

impl ReleaseOf<'_> {
    /// The Release's name: `web-<version with dashes>`.
    pub fn name(&self) -> String {
        format!("web-{}", self.version.replace('.', "-"))
    }

    pub fn build(&self) -> Release {
        let mut production = json!({"name": "production", "deployments": ["web-prod"],
            "smokeTest": smoke(self.production_passes)});
        if self.production_approval {
            production["approval"] = json!({"approvers": 1});
        }
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": self.name(), "annotations": self.annotations},
            "spec": {
                "application": "web",
                "version": self.version,
                "type": "Major",
                "owner": "team-web",
                "rollbackPlan": "revert to the previous version",
                "notes": {"summary": format!("Version {}.", self.version), "migrationSteps": ["none"]},
                "images": [{"container": "api", "image": format!("web:{}", self.version)}],
                "stages": [
                    {"name": "staging", "deployments": ["web-staging"], "smokeTest": smoke(true)},
                    production
                ]
            }
        }))
        .expect("valid Release")
    }
}

/// `GET path` on `addr`: the status code, the head and the body.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await??;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end in {response:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status in {head:?}"))?;
    Ok((code, head.to_owned(), body.to_owned()))
}

/// Lets Releases of the namespaces `from` (comma-separated, or `*`) drive stages in `namespace`,
/// as `kubectl annotate --overwrite namespace <namespace> relman.io/accept-releases-from=<from>`
/// does; `None` removes the annotation (withdraws the consent).
pub async fn accept_releases_from(
    client: &kube::Client,
    namespace: &str,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ACCEPT_RELEASES_FROM: from}}});
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
