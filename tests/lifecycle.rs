//! The release lifecycle on the local control plane: a controller (scoped to the test's
//! namespace) takes a Release through staging and production, and reverts to the last
//! known-good revision when a smoke test fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseStatus};
use relman::controller::{self, Context};
use relman::plan::PlanConfig;
use relman_testenv::{ControlPlane, FAIL_LABEL};
use serde_json::json;

/// Starts a controller for `namespace` on this test's runtime; it stops when the test ends.
fn start_controller(client: kube::Client, namespace: &str) {
    let ctx = Arc::new(Context::new(
        client,
        Some("test".into()),
        PlanConfig::default(),
    ));
    tokio::spawn(controller::run(
        ctx,
        Some(namespace.to_owned()),
        std::future::pending(),
    ));
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 30,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": image}]}
            }
        }
    }))
    .expect("valid Deployment")
}

fn smoke(fail: bool) -> serde_json::Value {
    let labels = if fail {
        json!({FAIL_LABEL: "true"})
    } else {
        json!({})
    };
    json!({"timeout": "2m", "template": {"spec": {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "smoke:1"}]}
    }}}})
}

fn release(name: &str, staging_smoke_fails: bool, production_smoke_fails: bool) -> Release {
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "application": "web",
            "version": "2.0.0",
            "type": "Major",
            "owner": "team-web",
            "rollbackPlan": "revert to 1.0.0",
            "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
            "images": [{"container": "api", "image": "web:2.0.0"}],
            "stages": [
                {"name": "staging", "deployments": ["web-staging"], "smokeTest": smoke(staging_smoke_fails)},
                {"name": "production", "deployments": ["web-prod"], "smokeTest": smoke(production_smoke_fails)}
            ]
        }
    }))
    .expect("valid Release")
}

async fn setup(cp: &ControlPlane, prefix: &str) -> anyhow::Result<(kube::Client, String)> {
    let client = cp.client().await?;
    let ns = cp.test_namespace(prefix).await?.name().to_owned();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for name in ["web-staging", "web-prod"] {
        deployments
            .create(&PostParams::default(), &deployment(name, "web:1.0.0"))
            .await?;
        wait_available(&deployments, name).await?;
    }
    start_controller(client.clone(), &ns);
    Ok((client, ns))
}

async fn wait_available(api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
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

/// Waits until the Release's condition `type_` has `status`, and returns the status then.
async fn wait_condition(
    api: &Api<Release>,
    name: &str,
    type_: &str,
    status: &str,
) -> anyhow::Result<ReleaseStatus> {
    let holds = |r: Option<&Release>| {
        r.and_then(|r| r.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status)
        })
    };
    let found = tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(api.clone(), name, holds),
    )
    .await
    .map_err(|_| anyhow::anyhow!("timed out waiting for {type_}={status} on {name}"))??;
    Ok(found.and_then(|r| r.status).unwrap_or_default())
}

fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

async fn smoke_jobs(client: &kube::Client, ns: &str) -> anyhow::Result<Vec<Job>> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    Ok(jobs
        .list(&ListParams::default().labels("relman.io/job-kind=smoke"))
        .await?
        .items)
}

#[tokio::test]
async fn release_goes_through_staging_and_production() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let (client, ns) = setup(cp, "life-happy").await?;
    let releases: Api<Release> = Api::namespaced(client.clone(), &ns);
    releases
        .create(&PostParams::default(), &release("web-2-0-0", false, false))
        .await?;

    let status = wait_condition(&releases, "web-2-0-0", "Ready", "True").await?;
    for gate in [
        "RequirementsMet",
        "StagingDeployed",
        "StagingVerified",
        "ProductionDeployed",
        "ProductionVerified",
    ] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == gate && c.status == "True"),
            "{gate} not True: {status:#?}"
        );
    }
    let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled");
    assert!(stalled.is_none_or(|c| c.status == "False"), "{status:#?}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for name in ["web-staging", "web-prod"] {
        let d = deployments.get(name).await?;
        assert_eq!(image_of(&d), "web:2.0.0", "{name} runs the release's image");
        let annotations = d.metadata.annotations.unwrap_or_default();
        assert!(
            annotations
                .get("relman.io/known-good-release")
                .is_some_and(|v| v.contains("web-2-0-0")),
            "{name} is marked known-good: {annotations:?}"
        );
    }
    // Exactly one smoke Job per stage, each succeeded.
    let jobs = smoke_jobs(&client, &ns).await?;
    assert_eq!(
        jobs.len(),
        2,
        "one smoke Job per stage: {:?}",
        jobs.iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn failed_smoke_test_reverts_to_last_known_good() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let (client, ns) = setup(cp, "life-revert").await?;
    let releases: Api<Release> = Api::namespaced(client.clone(), &ns);
    // Staging passes, production's verification fails: both stages are reverted.
    releases
        .create(&PostParams::default(), &release("web-2-0-0", false, true))
        .await?;

    let status = wait_condition(&releases, "web-2-0-0", "RolledBack", "True").await?;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "False", "{status:#?}");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled condition");
    assert_eq!(stalled.status, "True", "{status:#?}");
    assert_eq!(
        status.phase,
        Some(relman::api::release::ReleasePhase::RolledBack),
        "{status:#?}"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for name in ["web-staging", "web-prod"] {
        wait_available(&deployments, name).await?;
        let d = deployments.get(name).await?;
        assert_eq!(
            image_of(&d),
            "web:1.0.0",
            "{name} is back on the known-good image"
        );
    }
    Ok(())
}
