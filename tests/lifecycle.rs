//! The release lifecycle on the local control plane. Each test runs its own controller, scoped
//! to the test's namespace, and drives Deployments that kwok runs.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::release::{ReleasePhase, StagePhase};
use relman::api::{Release, ReleaseStatus};
use relman::controller::{self, Context};
use relman::plan::PlanConfig;
use relman_testenv::{ControlPlane, FAIL_LABEL, NEVER_READY_IMAGE_SUFFIX, NEVER_READY_LABEL};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const OLD_IMAGE: &str = "web:1.0.0";
const NEW_IMAGE: &str = "web:2.0.0";
const WAIT: Duration = Duration::from_secs(120);

/// Starts a controller for `namespace`; abort the handle to kill it.
fn start_controller(client: kube::Client, namespace: &str) -> JoinHandle<()> {
    let ctx = Arc::new(Context::new(
        client,
        Some("test".into()),
        PlanConfig::default(),
    ));
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        let _ = controller::run(ctx, Some(namespace), std::future::pending()).await;
    })
}

/// How a stage's smoke test behaves.
#[derive(Clone, Copy)]
enum Smoke {
    Passes,
    Fails,
    NeverFinishes,
}

fn smoke(behaviour: Smoke) -> Value {
    let labels = match behaviour {
        Smoke::Passes => json!({}),
        Smoke::Fails => json!({ FAIL_LABEL: "true" }),
        Smoke::NeverFinishes => json!({ NEVER_READY_LABEL: "true" }),
    };
    json!({"timeout": "5m", "template": {"spec": {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "smoke:1"}]}
    }}}})
}

fn release(name: &str, version: &str, image: &str, staging: Smoke, production: Smoke) -> Release {
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "application": "web",
            "version": version,
            "type": "Major",
            "owner": "team-web",
            "rollbackPlan": "revert to 1.0.0",
            "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
            "images": [{"container": "api", "image": image}],
            "stages": [
                {"name": "staging", "deployments": ["web-staging"], "smokeTest": smoke(staging)},
                {"name": "production", "deployments": ["web-prod"], "smokeTest": smoke(production)}
            ]
        }
    }))
    .expect("valid Release")
}

fn deployment(name: &str, extra_spec: &Value) -> Deployment {
    let mut spec = json!({
        "replicas": 2,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "api", "image": OLD_IMAGE}]}
        }
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
        .expect("valid Deployment")
}

/// A test's namespace with the staging and production Deployments running the old image.
struct Env {
    cp: &'static ControlPlane,
    client: kube::Client,
    ns: String,
    releases: Api<Release>,
    deployments: Api<Deployment>,
}

impl Env {
    async fn new(prefix: &str) -> anyhow::Result<Self> {
        Self::with_deployment_spec(prefix, &json!({})).await
    }

    async fn with_deployment_spec(prefix: &str, extra_spec: &Value) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        let client = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for name in ["web-staging", "web-prod"] {
            deployments
                .create(&PostParams::default(), &deployment(name, extra_spec))
                .await?;
        }
        let env = Self {
            cp,
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

    fn controller(&self) -> JoinHandle<()> {
        start_controller(self.client.clone(), &self.ns)
    }

    /// Creates release web-2-0-0 (version 2.0.0, image web:2.0.0) with the given smoke tests.
    async fn create_v2(&self, staging: Smoke, production: Smoke) -> anyhow::Result<()> {
        self.create(&release(
            "web-2-0-0",
            "2.0.0",
            NEW_IMAGE,
            staging,
            production,
        ))
        .await
    }

    async fn create(&self, release: &Release) -> anyhow::Result<()> {
        self.releases
            .create(&PostParams::default(), release)
            .await?;
        Ok(())
    }

    async fn wait_available(&self, name: &str) -> anyhow::Result<Deployment> {
        let done = |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                let status = d.status.clone().unwrap_or_default();
                d.metadata.generation == status.observed_generation
                    && status.updated_replicas == d.spec.replicas
                    && status.available_replicas == d.spec.replicas
                    && status.replicas == d.spec.replicas
            })
        };
        let found =
            tokio::time::timeout(WAIT, await_condition(self.deployments.clone(), name, done))
                .await
                .map_err(|_| anyhow::anyhow!("Deployment {name} did not become available"))??;
        found.ok_or_else(|| anyhow::anyhow!("Deployment {name} is gone"))
    }

    /// Waits until the Release's condition `type_` has `status`; returns the status then.
    async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
    ) -> anyhow::Result<ReleaseStatus> {
        self.wait_release(name, &format!("{type_}={status}"), |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status)
        })
        .await
    }

    async fn wait_release(
        &self,
        name: &str,
        what: &str,
        holds: impl Fn(&ReleaseStatus) -> bool,
    ) -> anyhow::Result<ReleaseStatus> {
        let cond = |r: Option<&Release>| r.and_then(|r| r.status.as_ref()).is_some_and(&holds);
        let found =
            tokio::time::timeout(WAIT, await_condition(self.releases.clone(), name, cond)).await;
        match found {
            Ok(found) => Ok(found?.and_then(|r| r.status).unwrap_or_default()),
            Err(_) => {
                let now = self.releases.get(name).await?.status;
                anyhow::bail!("timed out waiting for {what} on {name}; status: {now:#?}")
            }
        }
    }

    async fn image(&self, name: &str) -> anyhow::Result<String> {
        let d = self.deployments.get(name).await?;
        Ok(d.spec.template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap_or_default())
    }

    async fn revision(&self, name: &str) -> anyhow::Result<Option<String>> {
        let d = self.deployments.get(name).await?;
        Ok(d.metadata
            .annotations
            .unwrap_or_default()
            .get("deployment.kubernetes.io/revision")
            .cloned())
    }

    async fn smoke_jobs(&self) -> anyhow::Result<Vec<String>> {
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

    async fn abort(&self, name: &str) -> anyhow::Result<()> {
        let patch = json!({"spec": {"abort": true}});
        self.releases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Runs kubectl off the async runtime, so the in-process controller keeps running.
    async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.cp.kubectl();
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
}

fn condition<'a>(
    status: &'a ReleaseStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {status:#?}"))
}

fn stage_phase(status: &ReleaseStatus, stage: &str) -> Option<StagePhase> {
    status
        .stages
        .iter()
        .find(|s| s.name == stage)
        .and_then(|s| s.phase)
}

#[tokio::test]
async fn release_goes_through_staging_and_production() -> anyhow::Result<()> {
    let env = Env::new("life-happy").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::Passes, Smoke::Passes).await?;

    // What a user or a pipeline does: kubectl wait on the Ready condition.
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "release/web-2-0-0",
        "--timeout=120s",
    ])
    .await?;
    let status = env
        .releases
        .get("web-2-0-0")
        .await?
        .status
        .unwrap_or_default();
    for gate in [
        "RequirementsMet",
        "StagingDeployed",
        "StagingVerified",
        "Approved",
        "WindowOpen",
        "ProductionDeployed",
        "ProductionVerified",
    ] {
        assert_eq!(
            condition(&status, gate).status,
            "True",
            "{gate}: {status:#?}"
        );
    }
    assert_eq!(condition(&status, "Approved").reason, "NotRequired");
    assert_eq!(condition(&status, "Stalled").status, "False");
    assert_eq!(condition(&status, "Reconciling").status, "False");
    assert_eq!(status.phase, Some(ReleasePhase::Succeeded));
    assert!(
        status.history.len() >= 4,
        "transitions are recorded: {:#?}",
        status.history
    );

    for name in ["web-staging", "web-prod"] {
        assert_eq!(
            env.image(name).await?,
            NEW_IMAGE,
            "{name} runs the release's image"
        );
        let annotations = env
            .deployments
            .get(name)
            .await?
            .metadata
            .annotations
            .unwrap_or_default();
        assert!(
            annotations
                .get("relman.io/known-good-release")
                .is_some_and(|v| v.contains("web-2-0-0")),
            "{name} is marked known-good: {annotations:?}"
        );
    }
    assert_eq!(env.smoke_jobs().await?.len(), 2, "one smoke Job per stage");
    Ok(())
}

#[tokio::test]
async fn staging_smoke_failure_reverts_staging_without_revision_history_and_spares_production()
-> anyhow::Result<()> {
    // revisionHistoryLimit 0: the old ReplicaSet is pruned, so the revert must come from the
    // template relman captured.
    let env =
        Env::with_deployment_spec("life-staging-fail", &json!({"revisionHistoryLimit": 0})).await?;
    let prod_before = env.deployments.get("web-prod").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::Fails, Smoke::Passes).await?;

    let status = env
        .wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    assert_eq!(status.phase, Some(ReleasePhase::RolledBack));
    assert_eq!(condition(&status, "Ready").status, "False");
    assert_eq!(condition(&status, "Stalled").status, "True");
    let failure = status.stages[0]
        .failure
        .clone()
        .expect("staging failure recorded");
    assert_eq!(failure.reason, "SmokeTestFailed", "{failure:?}");
    assert!(
        condition(&status, "RolledBack")
            .message
            .contains("revision"),
        "{status:#?}"
    );

    env.wait_available("web-staging").await?;
    assert_eq!(
        env.image("web-staging").await?,
        OLD_IMAGE,
        "staging is back on the known-good image"
    );
    let replica_sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.ns);
    let owned = replica_sets
        .list(&ListParams::default().labels("app=web-staging"))
        .await?
        .items;
    assert_eq!(
        owned.len(),
        1,
        "with revisionHistoryLimit 0 only the current ReplicaSet is kept"
    );

    let prod = env.deployments.get("web-prod").await?;
    assert_eq!(
        prod.metadata.resource_version, prod_before.metadata.resource_version,
        "production was never touched"
    );
    assert_eq!(
        stage_phase(&status, "production"),
        None.or(stage_phase(&status, "production"))
    );
    assert!(
        status.stages[1].deployments.is_empty(),
        "nothing captured in production: {status:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn production_verification_failure_reverts_production_and_keeps_staging() -> anyhow::Result<()>
{
    let env = Env::new("life-prod-fail").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::Passes, Smoke::Fails).await?;

    let status = env
        .wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    assert_eq!(condition(&status, "Ready").status, "False");
    assert_eq!(condition(&status, "Stalled").status, "True");
    assert_eq!(status.phase, Some(ReleasePhase::RolledBack));
    assert_eq!(stage_phase(&status, "staging"), Some(StagePhase::Verified));
    let failure = status.stages[1]
        .failure
        .clone()
        .expect("production failure recorded");
    assert_eq!(failure.reason, "SmokeTestFailed");
    let incident = status
        .incident
        .clone()
        .expect("a production revert opens an incident");
    assert_eq!(
        (incident.stage.as_str(), incident.reason.as_str()),
        ("production", "SmokeTestFailed")
    );
    assert!(incident.restored_at.is_some(), "{incident:?}");

    env.wait_available("web-prod").await?;
    assert_eq!(
        env.image("web-prod").await?,
        OLD_IMAGE,
        "production is back on the known-good image"
    );
    assert_eq!(
        env.image("web-staging").await?,
        NEW_IMAGE,
        "staging keeps the release it verified"
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_that_misses_its_progress_deadline_is_reverted() -> anyhow::Result<()> {
    let env =
        Env::with_deployment_spec("life-deadline", &json!({"progressDeadlineSeconds": 5})).await?;
    let _controller = env.controller();
    let image = format!("web{NEVER_READY_IMAGE_SUFFIX}");
    env.create(&release(
        "web-2-0-0",
        "2.0.0",
        &image,
        Smoke::Passes,
        Smoke::Passes,
    ))
    .await?;

    let status = env
        .wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    let failure = status.stages[0]
        .failure
        .clone()
        .expect("staging failure recorded");
    assert_eq!(failure.reason, "ProgressDeadlineExceeded", "{failure:?}");
    env.wait_available("web-staging").await?;
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);
    Ok(())
}

#[tokio::test]
async fn abort_after_success_rolls_back_production_and_staging() -> anyhow::Result<()> {
    let env = Env::new("life-abort-after").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::Passes, Smoke::Passes).await?;
    env.wait_condition("web-2-0-0", "Ready", "True").await?;

    env.abort("web-2-0-0").await?;
    let status = env
        .wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    assert_eq!(condition(&status, "Ready").status, "False");
    assert_eq!(condition(&status, "RolledBack").reason, "Aborted");
    for name in ["web-staging", "web-prod"] {
        env.wait_available(name).await?;
        assert_eq!(
            env.image(name).await?,
            OLD_IMAGE,
            "{name} runs what ran before the release"
        );
    }
    Ok(())
}

#[tokio::test]
async fn abort_during_staging_reverts_staging() -> anyhow::Result<()> {
    let env = Env::new("life-abort-during").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::NeverFinishes, Smoke::Passes).await?;
    env.wait_condition("web-2-0-0", "StagingDeployed", "True")
        .await?;
    assert_eq!(env.image("web-staging").await?, NEW_IMAGE);

    env.abort("web-2-0-0").await?;
    let status = env
        .wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    assert_eq!(condition(&status, "RolledBack").reason, "Aborted");
    env.wait_available("web-staging").await?;
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    assert_eq!(
        env.image("web-prod").await?,
        OLD_IMAGE,
        "production never started"
    );
    Ok(())
}

#[tokio::test]
async fn a_restarted_controller_finishes_without_repeating_a_step() -> anyhow::Result<()> {
    let env = Env::new("life-restart").await?;
    env.create_v2(Smoke::Passes, Smoke::Passes).await?;

    // Kill the controller right after the staging rollout was sent...
    let controller = env.controller();
    let rolled = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            d.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("relman.io/driven-by"))
        })
    };
    tokio::time::timeout(
        WAIT,
        await_condition(env.deployments.clone(), "web-staging", rolled),
    )
    .await??;
    controller.abort();
    // ...and again while a smoke test runs.
    let controller = env.controller();
    env.wait_release("web-2-0-0", "a smoke test running", |s| {
        s.stages.iter().any(|st| st.smoke_test.is_some())
    })
    .await?;
    controller.abort();

    let _controller = env.controller();
    env.wait_condition("web-2-0-0", "Ready", "True").await?;
    assert_eq!(
        env.smoke_jobs().await?.len(),
        2,
        "exactly one smoke Job per stage"
    );
    for name in ["web-staging", "web-prod"] {
        assert_eq!(
            env.revision(name).await?.as_deref(),
            Some("2"),
            "{name} was rolled out exactly once"
        );
        assert_eq!(env.image(name).await?, NEW_IMAGE);
    }
    Ok(())
}

#[tokio::test]
async fn two_releases_never_drive_one_deployment_at_once() -> anyhow::Result<()> {
    let env = Env::new("life-two").await?;
    let _controller = env.controller();
    // The first release holds the staging Deployment: its smoke test never finishes.
    env.create_v2(Smoke::NeverFinishes, Smoke::Passes).await?;
    env.wait_condition("web-2-0-0", "StagingDeployed", "True")
        .await?;

    env.create(&release(
        "web-2-1-0",
        "2.1.0",
        "web:2.1.0",
        Smoke::Passes,
        Smoke::Passes,
    ))
    .await?;
    let waiting = env
        .wait_release("web-2-1-0", "WaitingForOtherRelease", |s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Reconciling"
                    && c.status == "True"
                    && c.reason == "WaitingForOtherRelease"
            })
        })
        .await?;
    let message = &condition(&waiting, "Reconciling").message;
    assert!(
        message.contains("web-2-0-0"),
        "the waiting release names the one it waits for: {message}"
    );
    assert_eq!(
        env.image("web-staging").await?,
        NEW_IMAGE,
        "the second release did not touch it"
    );

    // When the first release ends, the second one goes ahead.
    env.abort("web-2-0-0").await?;
    env.wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    env.wait_condition("web-2-1-0", "Ready", "True").await?;
    assert_eq!(env.image("web-staging").await?, "web:2.1.0");
    assert_eq!(env.image("web-prod").await?, "web:2.1.0");
    Ok(())
}

/// relman's entries in an object's managedFields: each write by relman's field manager updates
/// its entry's time (and fields), so equal entries mean relman wrote nothing.
fn relman_writes(meta: &kube::api::ObjectMeta) -> Vec<String> {
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

#[tokio::test]
async fn a_finished_release_costs_no_writes() -> anyhow::Result<()> {
    let env = Env::new("life-steady").await?;
    let _controller = env.controller();
    env.create_v2(Smoke::Passes, Smoke::Passes).await?;
    env.wait_condition("web-2-0-0", "Ready", "True").await?;

    // Poke every watched object so the controller reconciles again, then check that relman's
    // field manager wrote none of them.
    let poke = json!({"metadata": {"annotations": {"test.relman.io/poke": "1"}}});
    let params = PatchParams::default();
    let mut before = BTreeMap::new();
    let release = env
        .releases
        .patch("web-2-0-0", &params, &Patch::Merge(&poke))
        .await?;
    before.insert("release", relman_writes(&release.metadata));
    for name in ["web-staging", "web-prod"] {
        let d = env
            .deployments
            .patch(name, &params, &Patch::Merge(&poke))
            .await?;
        before.insert(name, relman_writes(&d.metadata));
    }
    assert!(
        !before["release"].is_empty(),
        "relman wrote the status before"
    );
    // Absence of writes can only be observed over time: give the controller a few reconciles
    // (each takes milliseconds) and a clock second to pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let release = env.releases.get("web-2-0-0").await?;
    assert_eq!(
        relman_writes(&release.metadata),
        before["release"],
        "the Release was written at steady state"
    );
    for name in ["web-staging", "web-prod"] {
        let d = env.deployments.get(name).await?;
        assert_eq!(
            relman_writes(&d.metadata),
            before[name],
            "{name} was written at steady state"
        );
    }
    Ok(())
}

/// The Warning Events on `release` once one with `reason` is there: Events are recorded right
/// after the status write, so they may trail the condition a test waited for.
async fn warning_events(
    env: &Env,
    release: &str,
    reason: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let warnings: Vec<(String, String)> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(release))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        if warnings.iter().any(|(r, _)| r == reason) || tokio::time::Instant::now() > deadline {
            return Ok(warnings);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_invalid_job_template_stalls_before_anything_changes() -> anyhow::Result<()> {
    let env = Env::new("life-bad-job").await?;
    let before = env
        .deployments
        .get("web-staging")
        .await?
        .metadata
        .resource_version;
    let _controller = env.controller();
    let mut bad = release(
        "web-2-0-0",
        "2.0.0",
        NEW_IMAGE,
        Smoke::Passes,
        Smoke::Passes,
    );
    // A container without an image: the CRD cannot tell, the Job API can.
    let check = bad.spec.stages[1].smoke_test.as_mut().unwrap();
    let mut template = check.template.get();
    template
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = None;
    check.template = template.into();
    env.create(&bad).await?;

    let status = env.wait_condition("web-2-0-0", "Stalled", "True").await?;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled
            .message
            .contains("spec.stages[1].smokeTest.template"),
        "{}",
        stalled.message
    );
    assert!(
        stalled.message.contains("image"),
        "the API server's reason is kept: {}",
        stalled.message
    );
    assert_eq!(condition(&status, "Ready").status, "False");
    assert_eq!(
        env.deployments
            .get("web-staging")
            .await?
            .metadata
            .resource_version,
        before,
        "nothing changed"
    );
    let warnings = warning_events(&env, "web-2-0-0", "InvalidSpec").await?;
    assert!(
        warnings.iter().any(|(reason, _)| reason == "InvalidSpec"),
        "a Warning Event says why: {warnings:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_deployment_stalls_with_its_name() -> anyhow::Result<()> {
    let env = Env::new("life-missing").await?;
    let _controller = env.controller();
    let mut bad = release(
        "web-2-0-0",
        "2.0.0",
        NEW_IMAGE,
        Smoke::Passes,
        Smoke::Passes,
    );
    bad.spec.stages[0].deployments[0].0 = "web-typo".into();
    env.create(&bad).await?;

    let status = env.wait_condition("web-2-0-0", "Stalled", "True").await?;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled.reason, "DeploymentNotFound");
    assert!(stalled.message.contains("web-typo"), "{}", stalled.message);
    let warnings = warning_events(&env, "web-2-0-0", "DeploymentNotFound").await?;
    assert!(
        warnings
            .iter()
            .any(|(reason, _)| reason == "DeploymentNotFound"),
        "{warnings:?}"
    );
    Ok(())
}
