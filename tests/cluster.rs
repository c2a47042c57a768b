//! The local control plane behaves like a real cluster: Deployments roll out and report their
//! progress, Jobs finish, and the test labels make pods fail or stay unready.
//!
//! Every test uses the process's shared control plane and a namespace of its own. A control
//! plane that cannot be built or started fails the tests; it never skips them.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use relman_testenv::{ControlPlane, FAIL_LABEL, NEVER_READY_LABEL};
use serde::de::DeserializeOwned;
use serde_json::json;

/// How long any one wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The revision annotation the Deployment controller puts on Deployments and ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// An admin client of the shared control plane and a fresh namespace.
struct TestEnv {
    client: kube::Client,
    namespace: String,
}

impl TestEnv {
    async fn new(prefix: &str) -> Result<Self> {
        let cp = ControlPlane::shared()
            .await
            .context("the local control plane did not start")?;
        let client = cp.client().await?;
        let namespace = cp.test_namespace(prefix).await?.name().to_owned();
        Ok(Self { client, namespace })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create<K>(&self, object: serde_json::Value) -> Result<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned
            + serde::Serialize,
        K::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object)?;
        Ok(self
            .api::<K>()
            .create(&PostParams::default(), &object)
            .await?)
    }
}

/// Waits (with a watch) until `name` satisfies `condition`; returns the object.
async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    condition: impl Condition<K>,
) -> Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    let waited = tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, condition)).await;
    let object = waited
        .with_context(|| format!("{name} did not become {what} within {TIMEOUT:?}"))?
        .with_context(|| format!("watching {name}"))?;
    object.with_context(|| format!("{name} was deleted while waiting for it to become {what}"))
}

fn deployment(name: &str, image: &str, pod_labels: serde_json::Value) -> serde_json::Value {
    let mut labels = json!({ "app": name });
    if let (Some(labels), Some(extra)) = (labels.as_object_mut(), pod_labels.as_object()) {
        labels.extend(extra.clone());
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "app", "image": image }] },
            },
        },
    })
}

fn job(name: &str, pod_labels: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{ "name": "smoke", "image": "registry.example/smoke:1",
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}} }],
                },
            },
        },
    })
}

/// Whether the Deployment has condition `type_` with `status` (and `reason`, when given).
fn deployment_has(d: &Deployment, type_: &str, status: &str, reason: Option<&str>) -> bool {
    let conditions = d.status.as_ref().and_then(|s| s.conditions.as_deref());
    conditions.unwrap_or_default().iter().any(|c| {
        c.type_.as_deref() == Some(type_)
            && c.status.as_deref() == Some(status)
            && reason.is_none_or(|r| c.reason.as_deref() == Some(r))
    })
}

/// Whether the Job has condition `type_` set to True.
fn job_has(j: &Job, type_: &str) -> bool {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.as_deref());
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The rollout of the Deployment's current generation is complete: every replica is updated
/// and available, no old replica is left, and the Deployment is Available.
fn rolled_out() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let Some(status) = d.status.as_ref() else {
            return false;
        };
        let wanted = d.spec.replicas.unwrap_or(1);
        status.observed_generation >= d.metadata.generation
            && status.updated_replicas == Some(wanted)
            && status.available_replicas == Some(wanted)
            && status.replicas == Some(wanted)
            && deployment_has(d, "Available", "True", None)
    }
}

fn job_condition(type_: &'static str) -> impl Condition<Job> {
    move |j: Option<&Job>| j.is_some_and(|j| job_has(j, type_))
}

async fn pods(env: &TestEnv, selector: &str) -> Result<Vec<Pod>> {
    let list = env
        .api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await?;
    Ok(list.items)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    meta.annotations.as_ref()?.get(REVISION).map(String::as_str)
}

#[tokio::test]
async fn deployment_pods_run_and_it_becomes_available() -> Result<()> {
    let env = TestEnv::new("deployment-available").await?;
    env.create::<Deployment>(deployment("web", "registry.example/web:1.0", json!({})))
        .await?;

    wait_for(&env.api(), "web", "rolled out and Available", rolled_out()).await?;

    let replica_sets = env
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app=web"))
        .await?;
    ensure!(
        replica_sets.items.len() == 1,
        "expected one ReplicaSet, got {}",
        replica_sets.items.len()
    );
    let pods = pods(&env, "app=web").await?;
    ensure!(pods.len() == 2, "expected 2 pods, got {}", pods.len());
    ensure!(
        pods.iter().all(|p| phase(p) == "Running"),
        "pods not Running: {:?}",
        pods.iter().map(phase).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn changing_the_image_rolls_out_a_second_revision() -> Result<()> {
    let env = TestEnv::new("deployment-revision").await?;
    let api = env.api::<Deployment>();
    env.create::<Deployment>(deployment("web", "registry.example/web:1.0", json!({})))
        .await?;
    wait_for(&api, "web", "rolled out", rolled_out()).await?;

    let new_image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/web:2.0"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(new_image))
        .await?;
    let rolled = wait_for(&api, "web", "rolled out again", rolled_out()).await?;

    ensure!(
        revision(&rolled.metadata) == Some("2"),
        "Deployment revision is {:?}",
        revision(&rolled.metadata)
    );
    let replica_sets = env
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    ensure!(
        replica_sets.len() == 2,
        "expected two ReplicaSets, got {}",
        replica_sets.len()
    );
    let second = replica_sets
        .iter()
        .find(|rs| revision(&rs.metadata) == Some("2"))
        .context("no ReplicaSet has revision 2")?;
    let image = second
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref());
    ensure!(
        image == Some("registry.example/web:2.0"),
        "revision 2 runs {image:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_pod_succeeds_and_the_job_completes() -> Result<()> {
    let env = TestEnv::new("job-complete").await?;
    env.create::<Job>(job("smoke", json!({}))).await?;

    wait_for(&env.api(), "smoke", "Complete", job_condition("Complete")).await?;

    let pods = pods(&env, "job-name=smoke").await?;
    ensure!(
        !pods.is_empty() && pods.iter().all(|p| phase(p) == "Succeeded"),
        "pods: {:?}",
        pods.iter().map(phase).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn a_job_pod_with_the_failure_label_fails_the_job() -> Result<()> {
    let env = TestEnv::new("job-failed").await?;
    env.create::<Job>(job("smoke", json!({ FAIL_LABEL: "true" })))
        .await?;

    wait_for(&env.api(), "smoke", "Failed", job_condition("Failed")).await?;

    let pods = pods(&env, "job-name=smoke").await?;
    let pod = pods.first().context("the Job has no pod")?;
    ensure!(phase(pod) == "Failed", "pod phase {}", phase(pod));
    let exit_code = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    ensure!(exit_code == Some(1), "container exit code {exit_code:?}");
    Ok(())
}

#[tokio::test]
async fn never_ready_pods_exceed_the_progress_deadline() -> Result<()> {
    let env = TestEnv::new("deployment-deadline").await?;
    let mut manifest = deployment(
        "web",
        "registry.example/web:1.0",
        json!({ NEVER_READY_LABEL: "true" }),
    );
    manifest["spec"]["progressDeadlineSeconds"] = json!(5);
    env.create::<Deployment>(manifest).await?;

    let deadline_exceeded = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            deployment_has(d, "Progressing", "False", Some("ProgressDeadlineExceeded"))
        })
    };
    wait_for(
        &env.api(),
        "web",
        "Progressing=False (ProgressDeadlineExceeded)",
        deadline_exceeded,
    )
    .await?;

    let pods = pods(&env, "app=web").await?;
    ensure!(
        !pods.is_empty() && pods.iter().all(|p| phase(p) == "Running"),
        "pods: {:?}",
        pods.iter().map(phase).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_reports_the_pinned_server_version() -> Result<()> {
    let cp = ControlPlane::shared()
        .await
        .context("the local control plane did not start")?;
    let mut kubectl = cp.kubectl();
    kubectl.args(["version", "--output=json"]);
    let output = tokio::process::Command::from(kubectl)
        .output()
        .await
        .context("run kubectl")?;
    ensure!(
        output.status.success(),
        "kubectl version failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let server = version["serverVersion"]["gitVersion"].as_str();
    ensure!(server == Some("v1.37.2"), "server version {server:?}");
    Ok(())
}

#[tokio::test]
async fn deployment_pods_with_the_failure_label_crash_loop() -> Result<()> {
    let env = TestEnv::new("deployment-crash-loop").await?;
    let mut manifest = deployment(
        "web",
        "registry.example/web:1.0",
        json!({ FAIL_LABEL: "true" }),
    );
    manifest["spec"]["progressDeadlineSeconds"] = json!(5);
    env.create::<Deployment>(manifest).await?;

    let deadline_exceeded = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            deployment_has(d, "Progressing", "False", Some("ProgressDeadlineExceeded"))
        })
    };
    wait_for(&env.api(), "web", "Progressing=False", deadline_exceeded).await?;

    let pods = pods(&env, "app=web").await?;
    let waiting: Vec<Option<String>> = pods
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
        })
        .collect();
    ensure!(
        !waiting.is_empty()
            && waiting
                .iter()
                .all(|r| r.as_deref() == Some("CrashLoopBackOff")),
        "container states: {waiting:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_user_client_authenticates_as_the_user_and_its_groups() -> Result<()> {
    let env = TestEnv::new("user-client").await?;
    let cp = ControlPlane::shared().await?;
    let alice = cp
        .user_client("alice", &["release-managers", "team-payments"])
        .await?;

    let review = Api::<SelfSubjectReview>::all(alice.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .context("no user info")?;
    ensure!(
        user.username.as_deref() == Some("alice"),
        "username {:?}",
        user.username
    );
    let groups = user.groups.unwrap_or_default();
    for group in ["release-managers", "team-payments", "system:authenticated"] {
        ensure!(
            groups.iter().any(|g| g == group),
            "groups {groups:?} lack {group}"
        );
    }

    // RBAC applies: nothing grants alice anything.
    let listed = Api::<Pod>::namespaced(alice, &env.namespace)
        .list(&ListParams::default())
        .await;
    ensure!(
        matches!(&listed, Err(kube::Error::Api(status)) if status.code == 403),
        "expected 403 Forbidden, got {listed:?}"
    );
    Ok(())
}
