//! The release lifecycle on the local control plane. Each test runs its own controller, scoped
//! to the test's namespace, and drives Deployments that kwok runs.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use relman::api::release::{ReleasePhase, StagePhase};
use relman::api::{Release, ReleaseStatus};
use relman_testenv::NEVER_READY_IMAGE_SUFFIX;
use serde_json::{Value, json};
use support::{Env, OLD_IMAGE, Smoke, WAIT, condition, relman_writes};

const NEW_IMAGE: &str = "web:2.0.0";

/// The tests' namespace: [`Env`] with Deployments that give up on a rollout after 600 s, and
/// `extra_spec` merged into their spec.
async fn env(prefix: &str, extra_spec: Value) -> anyhow::Result<Env> {
    let mut spec = json!({"progressDeadlineSeconds": 600});
    support::merge(&mut spec, extra_spec);
    Env::with_deployment_spec(prefix, spec).await
}

/// Release `<name>` of `web` at `version` running `image`, with the given smoke tests.
fn release(name: &str, version: &str, image: &str, staging: Smoke, production: Smoke) -> Release {
    support::release("web", version)
        .named(name)
        .image(image)
        .staging(staging)
        .production(production)
        .build()
}

/// Creates release web-2-0-0 (version 2.0.0, image web:2.0.0) with the given smoke tests.
async fn create_v2(env: &Env, staging: Smoke, production: Smoke) -> anyhow::Result<()> {
    env.create(&release(
        "web-2-0-0",
        "2.0.0",
        NEW_IMAGE,
        staging,
        production,
    ))
    .await
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
    let env = env("life-happy", json!({})).await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::Passes, Smoke::Passes).await?;

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
    let env = env("life-staging-fail", json!({"revisionHistoryLimit": 0})).await?;
    let prod_before = env.deployments.get("web-prod").await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::Fails, Smoke::Passes).await?;

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
    assert!(
        matches!(
            stage_phase(&status, "production"),
            None | Some(StagePhase::Pending)
        ),
        "production never started: {status:#?}"
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
    let env = env("life-prod-fail", json!({})).await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::Passes, Smoke::Fails).await?;

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
    let env = env("life-deadline", json!({"progressDeadlineSeconds": 5})).await?;
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
    let env = env("life-abort-after", json!({})).await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::Passes, Smoke::Passes).await?;
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
    let env = env("life-abort-during", json!({})).await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::NeverFinishes, Smoke::Passes).await?;
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
    let env = env("life-restart", json!({})).await?;
    create_v2(&env, Smoke::Passes, Smoke::Passes).await?;

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
    env.wait_status("web-2-0-0", "a smoke test running", |s| {
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
    let env = env("life-two", json!({})).await?;
    let _controller = env.controller();
    // The first release holds the staging Deployment: its smoke test never finishes.
    create_v2(&env, Smoke::NeverFinishes, Smoke::Passes).await?;
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
        .wait_status("web-2-1-0", "WaitingForOtherRelease", |s| {
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

#[tokio::test]
async fn a_finished_release_costs_no_writes() -> anyhow::Result<()> {
    let env = env("life-steady", json!({})).await?;
    let _controller = env.controller();
    create_v2(&env, Smoke::Passes, Smoke::Passes).await?;
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

#[tokio::test]
async fn an_invalid_job_template_stalls_before_anything_changes() -> anyhow::Result<()> {
    let env = env("life-bad-job", json!({})).await?;
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
    let events = env.events("web-2-0-0", "InvalidSpec").await?;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "a Warning Event says why: {events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_deployment_stalls_with_its_name() -> anyhow::Result<()> {
    let env = env("life-missing", json!({})).await?;
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
    let events = env.events("web-2-0-0", "DeploymentNotFound").await?;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "{events:?}"
    );
    Ok(())
}
