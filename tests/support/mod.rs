//! What the integration tests share: the Releases they create ([`release`], [`smoke`]), the
//! Deployments those drive ([`deployment`]), a test namespace with the staging and production
//! Deployments of application `web` and a controller for it ([`Env`]), waits for Events and
//! for anything else that comes eventually, a plain HTTP GET, JSON and YAML helpers, and the
//! consent of a namespace to another namespace's Releases.
//!
//! Each test file is its own binary and compiles this module as `mod support;` (a test in a
//! directory as `#[path = "../support/mod.rs"] mod support;`); what a file does not use is
//! dead code there.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

mod release;

#[allow(unused_imports)] // Each test binary uses some.
pub use release::{ReleaseBuilder, SMOKE_TIMEOUT, Smoke, release, release_name, smoke};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseApproval, ReleaseStatus};
use relman::controller::Context;
use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::k8s::ANNOTATION_ACCEPT_RELEASES_FROM;
use relman::plan::PlanConfig;
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The label that ties a test's ReleaseCalendar (cluster-scoped, named after the test's
/// namespace) to the test's calendar controller.
pub const CALENDAR_LABEL: &str = "relman.io/test-namespace";

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

    /// Starts a controller for the test's namespace; it stops with the test.
    pub fn controller(&self) -> JoinHandle<()> {
        start_controller(&self.client, &self.ns, "test")
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

    /// Approves `release` (version `version`) at the production gate.
    pub async fn approve_production(&self, release: &str, version: &str) -> anyhow::Result<()> {
        let approval = approval(
            &format!("{release}-production"),
            release,
            version,
            "production",
            relman_testenv::ADMIN_USER,
        );
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

/// relman's entries in an object's managedFields: each write by relman's field manager updates
/// its entry's time (and fields), so equal entries mean relman wrote nothing.
pub fn relman_writes(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("relman"))
        .map(|m| {
            format!(
                "{:?} {:?} {:?} {:?}",
                m.operation, m.subresource, m.time, m.fields_v1
            )
        })
        .collect()
}

/// The stdout of a command that ran as `what`; its stderr as the error when it failed.
pub fn stdout_of(output: std::process::Output, what: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The condition `type_` of `status`; panics with the status when it is missing.
pub fn condition<'a>(status: &'a ReleaseStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {status:#?}"))
}

/// A Release controller's context for `client`, its Events reported by `instance`.
pub fn context(client: &kube::Client, instance: &str) -> Context {
    Context::new(
        client.clone(),
        Some(instance.to_owned()),
        PlanConfig::default(),
    )
}

/// Runs the Release controller with `ctx` for namespace `ns` until the handle is aborted (or
/// the test ends).
pub fn run_controller(ctx: Arc<Context>, ns: &str) -> JoinHandle<()> {
    let ns = ns.to_owned();
    tokio::spawn(async move {
        let _ = relman::controller::run(ctx, Some(ns), std::future::pending()).await;
    })
}

/// [`run_controller`] with a [`context`] for `client` and `instance`.
pub fn start_controller(client: &kube::Client, ns: &str, instance: &str) -> JoinHandle<()> {
    run_controller(Arc::new(context(client, instance)), ns)
}

/// A calendar controller for the Releases of namespace `ns` that reads only the calendars
/// labelled [`CALENDAR_LABEL`]`=<ns>`.
pub fn calendar_controller(client: &kube::Client, ns: &str) -> CalendarController {
    CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespace: Some(ns.to_owned()),
            calendar_selector: Some(format!("{CALENDAR_LABEL}={ns}")),
        },
    )
}

/// Deployment `name` of `replicas` pods labelled `app: <name>`, running `image` in container
/// `api`.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    deployment_with(name, image, replicas, json!({}))
}

/// [`deployment`] with `extra_spec`'s keys merged into its spec.
pub fn deployment_with(name: &str, image: &str, replicas: i32, extra_spec: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "api", "image": image}]}
        }
    });
    merge(&mut spec, extra_spec);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
        .expect("valid Deployment")
}

/// Waits up to a minute until Deployment `name` is `Available` with every replica updated.
pub async fn wait_deployment_available(api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            }) && s.updated_replicas == s.replicas
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), name, available),
    )
    .await??;
    Ok(())
}

/// The image of the first container of `d`.
pub fn image_of(d: &Deployment) -> String {
    d.spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The Events in `ns` on the object `name` with `reason`, once there is at least one (Events
/// are recorded just after the status they go with, so a test that saw the status waits a
/// moment for them); empty if none comes within 30 seconds.
pub async fn events(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let found = eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let found = events_now(client, ns, name, reason).await?;
            Ok(if found.is_empty() {
                Err(found)
            } else {
                Ok(found)
            })
        },
    )
    .await?;
    Ok(found.unwrap_or_else(|none| none))
}

/// The Events in `ns` on the object `name` with `reason`, as they are now.
pub async fn events_now(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .collect())
}

/// Calls `check` every `every` until it says `Ok(done)`, for at most `within`: `Ok(Ok(done))`
/// then, or `Ok(Err(last))` with what `check` last said instead (`Err(not_yet)`). An error of
/// `check` (a failed API call) ends the wait at once.
pub async fn eventually<T, E, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<Result<T, E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, E>>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await? {
            Ok(done) => return Ok(Ok(done)),
            Err(not_yet) if Instant::now() >= deadline => return Ok(Err(not_yet)),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually`], failing with `not_yet`'s text when the time is up.
pub async fn wait_for<T, F, Fut>(within: Duration, every: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    eventually(within, every, check)
        .await?
        .map_err(|not_yet| anyhow::anyhow!("{not_yet}"))
}

/// Shallow merge of `extra`'s keys into `value`.
pub fn merge(value: &mut Value, extra: Value) {
    if let (Some(value), Value::Object(extra)) = (value.as_object_mut(), extra) {
        value.extend(extra);
    }
}

/// `doc` with `value` at the JSON pointer (its parent must exist); `null` removes the key.
pub fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    match doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the document"))
    {
        Value::Object(map) if value.is_null() => {
            map.remove(key);
        }
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        other => panic!("cannot set {key} in {other}"),
    }
    doc
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The documents of the file `path` (e.g. one in `config/`): see [`documents`].
pub fn file_documents(path: &str) -> anyhow::Result<Vec<Value>> {
    documents(&std::fs::read_to_string(path)?)
}

/// An approval of release `release` at `version` and `gate`, signed `approver`, named `name`,
/// with the comment "Staging verified.".
pub fn approval(
    name: &str,
    release: &str,
    version: &str,
    gate: &str,
    approver: &str,
) -> ReleaseApproval {
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseApproval",
        "metadata": {"name": name},
        "spec": {
            "release": release,
            "version": version,
            "gate": gate,
            "decision": "Approved",
            "approver": approver,
            "comment": "Staging verified."
        }
    }))
    .expect("valid ReleaseApproval")
}

/// Waits until the admission policies reject each probe with its message (the probes are
/// created with dry runs, as whoever `approvals`' client is): policy bindings take effect
/// asynchronously.
pub async fn wait_until_rejected(
    approvals: &Api<ReleaseApproval>,
    probes: &[(ReleaseApproval, &str)],
    within: Duration,
) -> anyhow::Result<()> {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + within;
    for (probe, rejection) in probes {
        loop {
            match approvals.create(&dry_run, probe).await {
                Err(kube::Error::Api(e)) if e.message.contains(rejection) => break,
                other => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the admission policy is not enforced after {within:?}: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(())
}

/// The Release of `web` at `version` that the tests on an [`Env`] create: image
/// `web:<version>` on `web-staging`, then `web-prod`, both smoke tests passing.
pub fn web(version: &str) -> ReleaseBuilder {
    release("web", version)
        .rollback_plan("revert to the previous version")
        .summary(&format!("Version {version}."))
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
