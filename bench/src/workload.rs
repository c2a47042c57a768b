//! What the benchmark applies: per application a staging and a production Deployment and a
//! Release of version 2.0.0 that goes through both, and the sign-offs.

use std::future::Future;

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relman::api::{Release, ReleaseApproval};
use serde_json::{Value, json};

/// The label on every object the benchmark creates.
pub const BENCH_LABEL: &str = "bench.relman.io/run";
/// The label naming a benchmark Deployment's stage.
pub const STAGE_LABEL: &str = "bench.relman.io/stage";
/// The image the Deployments run before the release.
pub const OLD_IMAGE: &str = "bench:1.0.0";
/// The image the release rolls out.
pub const NEW_IMAGE: &str = "bench:2.0.0";
/// The version every Release ships.
pub const VERSION: &str = "2.0.0";
/// The stages, in order, with the suffix of their Deployment's name.
pub const STAGES: [(&str, &str); 2] = [("staging", "staging"), ("production", "prod")];

/// One application: its Release and its two Deployments live in `namespace`.
#[derive(Debug, Clone)]
pub struct App {
    /// The namespace.
    pub namespace: String,
    /// The application's name, e.g. `app-00042`.
    pub name: String,
}

impl App {
    /// The `index`-th application (prefix `prefix`), in namespace `index % namespaces.len()`.
    pub fn nth(prefix: &str, index: usize, namespaces: &[String]) -> Self {
        Self {
            namespace: namespaces[index % namespaces.len()].clone(),
            name: format!("{prefix}-{index:05}"),
        }
    }

    /// The Release's name.
    pub fn release_name(&self) -> String {
        format!("{}-2-0-0", self.name)
    }

    /// The Deployment of `stage_suffix` (`staging`, `prod`).
    pub fn deployment_name(&self, stage_suffix: &str) -> String {
        format!("{}-{stage_suffix}", self.name)
    }

    /// The Deployments of both stages (`replicas` each, the old image).
    pub fn deployments(&self, replicas: i32) -> anyhow::Result<Vec<Deployment>> {
        STAGES
            .iter()
            .map(|(stage, suffix)| deployment(&self.deployment_name(suffix), stage, replicas))
            .collect()
    }

    /// The Release: both stages with a smoke test; production waits for one sign-off, and with
    /// `staging_approval` staging does too (the memory phase's Releases wait there forever).
    pub fn release(&self, staging_approval: bool) -> anyhow::Result<Release> {
        let smoke = json!({"timeout": "10m", "template": {"spec": {"backoffLimit": 0, "template": {
            "spec": {"restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "smoke", "image": "bench-smoke:1",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}
        }}}});
        let mut stages: Vec<Value> = STAGES
            .iter()
            .map(|(stage, suffix)| {
                json!({"name": stage, "deployments": [self.deployment_name(suffix)],
                    "smokeTest": smoke.clone()})
            })
            .collect();
        stages[1]["approval"] = json!({"approvers": 1});
        if staging_approval {
            stages[0]["approval"] = json!({"approvers": 1});
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": self.release_name(), "labels": {BENCH_LABEL: "true"}},
            "spec": {
                "application": self.name,
                "version": VERSION,
                "type": "Major",
                "owner": "team-bench",
                "rollbackPlan": "revert to 1.0.0",
                "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
                "images": [{"container": "api", "image": NEW_IMAGE}],
                "stages": stages
            }
        }))?)
    }
}

/// A Deployment of `replicas` running [`OLD_IMAGE`].
fn deployment(name: &str, stage: &str, replicas: i32) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {BENCH_LABEL: "true", STAGE_LABEL: stage}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": OLD_IMAGE}]}
            }
        }
    }))?)
}

/// The sign-off of `release` (version [`VERSION`], the object with uid `uid`) at `gate`.
pub fn approval(release: &str, uid: &str, gate: &str) -> anyhow::Result<ReleaseApproval> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseApproval",
        "metadata": {"name": format!("{release}-{gate}"), "labels": {BENCH_LABEL: "true"}},
        "spec": {"release": release, "version": VERSION, "gate": gate,
            "decision": "Approved", "approver": relman_testenv::ADMIN_USER,
            "comment": "Staging verified.", "releaseUID": uid}
    }))?)
}

/// Creates every Deployment of `apps` with `replicas` each, `concurrency` requests at a time.
pub async fn create_deployments(
    client: &kube::Client,
    apps: &[App],
    replicas: i32,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut deployments = Vec::with_capacity(apps.len() * STAGES.len());
    for app in apps {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &app.namespace);
        for deployment in app.deployments(replicas)? {
            deployments.push((api.clone(), deployment));
        }
    }
    let work = deployments
        .iter()
        .map(|(api, deployment)| create_or_keep(api, deployment));
    run_all(work, concurrency).await
}

/// Creates the Release of every app, `concurrency` requests at a time.
pub async fn create_releases(
    client: &kube::Client,
    apps: &[App],
    staging_approval: bool,
    concurrency: usize,
) -> anyhow::Result<()> {
    let work = apps.iter().map(|app| {
        let api: Api<Release> = Api::namespaced(client.clone(), &app.namespace);
        async move { create_or_keep(&api, &app.release(staging_approval)?).await }
    });
    run_all(work, concurrency).await
}

/// Creates `object`; one that exists already is kept.
pub async fn create_or_keep<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "create {} {}",
            K::kind(&()),
            object.meta().name.clone().unwrap_or_default()
        ))),
    }
}

/// Runs every future of `work`, at most `concurrency` at a time; the first error stops it.
pub async fn run_all<F>(work: impl Iterator<Item = F>, concurrency: usize) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(work.map(Ok))
        .try_for_each_concurrent(concurrency.max(1), |f| f)
        .await
}

/// Waits until `expected` benchmark Deployments have their replica available. It watches
/// rather than lists: listing thousands of Deployments every few seconds would load the API
/// server the benchmark measures.
pub async fn wait_deployments_available(
    client: &kube::Client,
    expected: usize,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::all(client.clone());
    let events = watcher(api, watcher::Config::default().labels(BENCH_LABEL)).default_backoff();
    let mut available = std::collections::HashSet::new();
    let count = async {
        futures::pin_mut!(events);
        let mut next_report = std::time::Instant::now();
        while let Some(event) = events.try_next().await? {
            let (watcher::Event::Apply(d) | watcher::Event::InitApply(d)) = event else {
                continue;
            };
            let key = (d.metadata.namespace.clone(), d.metadata.name.clone());
            let ready = d
                .status
                .as_ref()
                .is_some_and(|s| s.available_replicas.unwrap_or(0) >= 1);
            if ready {
                available.insert(key);
            } else {
                available.remove(&key);
            }
            if available.len() >= expected {
                return anyhow::Ok(());
            }
            if next_report.elapsed() >= std::time::Duration::from_secs(10) {
                tracing::info!(
                    available = available.len(),
                    expected,
                    "waiting for the Deployments"
                );
                next_report = std::time::Instant::now();
            }
        }
        anyhow::bail!("the Deployment watch ended")
    };
    tokio::time::timeout(timeout, count).await.map_err(|_| {
        anyhow::anyhow!("the Deployments did not become available within {timeout:?}")
    })?
}
