//! A test's namespace with the staging and production Deployments of application `web`, the
//! Releases of `web` created there, and what a test asks of them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseApproval, ReleaseStatus};
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{
    ReleaseBuilder, WAIT, approval, deployment_with, events, events_now, image_of, release,
    start_controller, stdout_of,
};

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
    /// Two replicas each, as [`deployment`] makes them.
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        Self::with_deployment_spec(prefix, json!({})).await
    }

    /// With `extra_spec`'s keys merged into the Deployments' spec (e.g. a progress deadline).
    pub async fn with_deployment_spec(prefix: &str, extra_spec: Value) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        let client = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for name in ["web-staging", "web-prod"] {
            let deployment = deployment_with(name, OLD_IMAGE, 2, extra_spec.clone());
            deployments
                .create(&PostParams::default(), &deployment)
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

    /// Creates the Release written as `release` (JSON) with `client` (e.g. a developer's);
    /// returns its name.
    pub async fn create_as(&self, client: kube::Client, release: Value) -> anyhow::Result<String> {
        let release: Release = serde_json::from_value(release)?;
        let name = release.metadata.name.clone().unwrap_or_default();
        Api::<Release>::namespaced(client, &self.ns)
            .create(&PostParams::default(), &release)
            .await?;
        Ok(name)
    }

    /// Starts a controller for the test's namespace; it stops with the test.
    pub fn controller(&self) -> JoinHandle<()> {
        start_controller(&self.client, &self.ns, "test")
    }

    /// A client for user `name` holding only the shipped `relman-developer` role
    /// (config/user-roles.yaml) in the test's namespace: may create and change Releases, may
    /// not touch Deployments, Jobs or sign-offs.
    pub async fn developer(&self, name: &str) -> anyhow::Result<kube::Client> {
        self.user_with_role(name, "relman-developer").await
    }

    /// A client for user `name` holding only the shipped ClusterRole `role`
    /// (config/user-roles.yaml: relman-developer, relman-approver or relman-release-manager)
    /// in the test's namespace.
    pub async fn user_with_role(&self, name: &str, role: &str) -> anyhow::Result<kube::Client> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/user-roles.yaml"
        ))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document)?;
            if value["kind"] == "ClusterRole" && value["metadata"]["name"] == role {
                Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(self.client.clone())
                    .patch(
                        role,
                        &PatchParams::apply("relman-tests").force(),
                        &Patch::Apply(&value),
                    )
                    .await?;
            }
        }
        let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-{name}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]
        }))?;
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &binding)
            .await?;
        Ok(ControlPlane::shared().await?.user_client(name, &[]).await?)
    }

    /// The image of the first container of Deployment `name`.
    pub async fn image(&self, name: &str) -> anyhow::Result<String> {
        Ok(image_of(&self.deployments.get(name).await?))
    }

    /// The `deployment.kubernetes.io/revision` of Deployment `name`.
    pub async fn revision(&self, name: &str) -> anyhow::Result<Option<String>> {
        let d = self.deployments.get(name).await?;
        Ok(d.metadata
            .annotations
            .unwrap_or_default()
            .get("deployment.kubernetes.io/revision")
            .cloned())
    }

    /// The names of the smoke-test Jobs in the test's namespace, sorted.
    pub async fn smoke_jobs(&self) -> anyhow::Result<Vec<String>> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.ns);
        let list = jobs
            .list(&ListParams::default().labels("relman.io/job-kind=smoke"))
            .await?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Sets `spec.abort` of Release `name`.
    pub async fn abort(&self, name: &str) -> anyhow::Result<()> {
        let patch = json!({"spec": {"abort": true}});
        self.releases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Runs kubectl in the test's namespace, off the async runtime.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = ControlPlane::shared().await?.kubectl();
        command.args(args).args(["-n", &self.ns]);
        let out = tokio::task::spawn_blocking(move || command.output()).await??;
        stdout_of(out, &format!("kubectl {}", args.join(" ")))
    }

    /// The Events on Release `name` with `reason`: see [`events`].
    pub async fn events(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
        events(&self.client, &self.ns, name, reason).await
    }

    /// The Events on Release `name` with `reason`, as they are now.
    pub async fn events_now(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
        events_now(&self.client, &self.ns, name, reason).await
    }

    /// Approves `release` (version `version`) at the production gate, naming the Release
    /// object's uid as `kubectl relman approve` does.
    pub async fn approve_production(&self, release: &str, version: &str) -> anyhow::Result<()> {
        let uid = self.releases.get(release).await?.metadata.uid;
        let mut approval = approval(
            &format!("{release}-production"),
            release,
            version,
            "production",
            relman_testenv::ADMIN_USER,
        );
        approval.spec.release_uid = uid;
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

    /// Waits until the Release is `Stalled=True` for `reason`; returns the Stalled message.
    pub async fn wait_stalled(&self, name: &str, reason: &str) -> anyhow::Result<String> {
        let status = self
            .wait_status(name, &format!("Stalled {reason}"), |s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == reason)
            })
            .await?;
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .map(|c| c.message.clone())
            .unwrap_or_default())
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

/// The Release of `web` at `version` that the tests on an [`Env`] create: image
/// `web:<version>` on `web-staging`, then `web-prod`, both smoke tests passing.
pub fn web(version: &str) -> ReleaseBuilder {
    release("web", version)
        .rollback_plan("revert to the previous version")
        .summary(&format!("Version {version}."))
}
