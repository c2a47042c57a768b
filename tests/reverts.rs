//! Reverts that never lie and never destroy, on the local control plane: a superseded release
//! reverts nothing, a finished release reports what happened to its Deployments since, an
//! abort of the current release rolls production back on purpose, a Release created again
//! under the same name reuses no Job and no sign-off, and a revert never overwrites an edit
//! it did not see.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use relman::api::release::ReleasePhase;
use relman::api::{Release, ReleaseApproval};
use relman::error::Error;
use serde_json::json;
use support::{Env, OLD_IMAGE, condition, web};

/// A Minor release of `web` at `version` (image `web:<version>`), production signed off
/// when `approval` says so.
fn minor(version: &str, approval: bool) -> Release {
    let release = web(version).release_type("Minor");
    if approval {
        release.production_approval().build()
    } else {
        release.build()
    }
}

#[tokio::test]
async fn aborting_a_superseded_release_changes_nothing_and_says_why() -> anyhow::Result<()> {
    let env = Env::new("rev-superseded").await?;
    let _controller = env.controller();
    env.create(&minor("1.1.0", false)).await?;
    env.wait_condition("web-1-1-0", "Ready", "True").await?;
    env.create(&minor("1.2.0", false)).await?;
    env.wait_condition("web-1-2-0", "Ready", "True").await?;

    // 1.1.0 learns from the Deployment watch that 1.2.0 took its Deployments over.
    let old = env
        .wait_condition("web-1-1-0", "Superseded", "True")
        .await?;
    let superseded = condition(&old, "Superseded");
    assert!(
        superseded
            .message
            .contains(&format!("{}/web-1-2-0", env.ns)),
        "{}",
        superseded.message
    );
    assert_eq!(
        condition(&old, "Ready").status,
        "True",
        "a superseded release stays Ready"
    );

    // The stale object is aborted by a developer (who may change Releases, not Deployments),
    // as a GitOps re-sync of an old manifest might do.
    let developer = env.developer("dave").await?;
    let patch = json!({"spec": {"abort": true}});
    Api::<Release>::namespaced(developer, &env.ns)
        .patch("web-1-1-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let generation = env.releases.get("web-1-1-0").await?.metadata.generation;
    let aborted = env
        .wait_status("web-1-1-0", "the abort planned", |s| {
            s.observed_generation == generation
        })
        .await?;
    assert_eq!(condition(&aborted, "Superseded").status, "True");
    assert_eq!(aborted.phase, Some(ReleasePhase::Succeeded));
    assert!(
        aborted.incident.is_none(),
        "nothing was reverted: no incident"
    );
    let warnings = env.events("web-1-1-0", "AbortIgnored").await?;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    assert!(
        warnings[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("web-1-2-0"),
        "{:?}",
        warnings[0].message
    );
    for name in ["web-staging", "web-prod"] {
        assert_eq!(env.image(name).await?, "web:1.2.0", "{name} keeps 1.2.0");
    }
    let newer = env
        .releases
        .get("web-1-2-0")
        .await?
        .status
        .unwrap_or_default();
    assert_eq!(condition(&newer, "Ready").status, "True");
    Ok(())
}

#[tokio::test]
async fn aborting_the_current_release_after_success_rolls_production_back_and_records_who_asked()
-> anyhow::Result<()> {
    let env = Env::new("rev-current").await?;
    let _controller = env.controller();
    env.create(&minor("1.1.0", false)).await?;
    env.wait_condition("web-1-1-0", "Ready", "True").await?;
    env.create(&minor("1.2.0", false)).await?;
    env.wait_condition("web-1-2-0", "Ready", "True").await?;

    // The incident playbook: roll production back to the last known-good.
    env.kubectl(&[
        "patch",
        "release",
        "web-1-2-0",
        "--type=merge",
        "-p",
        r#"{"spec":{"abort":true}}"#,
    ])
    .await?;
    let status = env
        .wait_condition("web-1-2-0", "RolledBack", "True")
        .await?;
    for name in ["web-staging", "web-prod"] {
        env.wait_available(name).await?;
        assert_eq!(
            env.image(name).await?,
            "web:1.1.0",
            "{name} is back on 1.1.0"
        );
    }
    let incident = status
        .incident
        .expect("production was rolled back: an incident");
    assert!(
        incident
            .message
            .contains("set by field manager kubectl-patch"),
        "{}",
        incident.message
    );
    // 1.1.0 drives its Deployments again, and says so.
    let older = env
        .wait_condition("web-1-1-0", "Superseded", "False")
        .await?;
    assert_eq!(condition(&older, "Superseded").reason, "Current");
    let prod = env.deployments.get("web-prod").await?;
    assert_eq!(
        prod.metadata.annotations.unwrap_or_default()["relman.io/driven-by"],
        format!("{}/web-1-1-0", env.ns)
    );
    Ok(())
}

#[tokio::test]
async fn a_manual_set_image_after_success_is_reported_as_drift() -> anyhow::Result<()> {
    let env = Env::new("rev-drift").await?;
    let _controller = env.controller();
    env.create(&minor("1.1.0", false)).await?;
    env.wait_condition("web-1-1-0", "Ready", "True").await?;

    env.kubectl(&["set", "image", "deployment/web-prod", "api=web:hotfix"])
        .await?;
    let status = env.wait_condition("web-1-1-0", "Drifted", "True").await?;
    let drifted = condition(&status, "Drifted");
    assert!(
        drifted.message.contains(&format!(
            "{}/web-prod (container api runs web:hotfix)",
            env.ns
        )),
        "{}",
        drifted.message
    );
    assert_eq!(condition(&status, "Ready").status, "True");
    assert_eq!(env.events("web-1-1-0", "Drifted").await?.len(), 1);

    // Set back: the drift is over.
    env.kubectl(&["set", "image", "deployment/web-prod", "api=web:1.1.0"])
        .await?;
    env.wait_condition("web-1-1-0", "Drifted", "False").await?;
    Ok(())
}

#[tokio::test]
async fn a_release_created_again_under_the_same_name_reuses_no_job_and_no_sign_off()
-> anyhow::Result<()> {
    let env = Env::new("rev-recreate").await?;
    let _controller = env.controller();
    env.create(&minor("2.0.0", true)).await?;
    env.wait_condition("web-2-0-0", "StagingVerified", "True")
        .await?;
    let first = env.releases.get("web-2-0-0").await?;
    let first_uid = first.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), &env.ns);
    let smoke = jobs.get("web-2-0-0-staging-smoke-1").await?;
    let labels = smoke.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["relman.io/release-uid"], first_uid);
    assert_eq!(
        smoke.spec.as_ref().unwrap().active_deadline_seconds,
        Some(300),
        "a Job stops when its 5m timeout runs out"
    );
    // The first object goes away before its production sign-off, keeping its Jobs.
    env.releases
        .delete("web-2-0-0", &DeleteParams::orphan())
        .await?;
    tokio::time::timeout(support::WAIT, async {
        while env.releases.get_opt("web-2-0-0").await?.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    })
    .await??;
    // Sign-offs meant for the first object: one naming its uid (as the plugin writes it),
    // one naming none, made before the second object exists.
    for (name, uid) in [
        ("web-2-0-0-production-old", Some(first_uid.clone())),
        ("web-2-0-0-production-early", None),
    ] {
        let approval: ReleaseApproval = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1", "kind": "ReleaseApproval",
            "metadata": {"name": name},
            "spec": {"release": "web-2-0-0", "version": "2.0.0", "gate": "production",
                "decision": "Approved", "approver": relman_testenv::ADMIN_USER,
                "releaseUID": uid}
        }))?;
        Api::<ReleaseApproval>::namespaced(env.client.clone(), &env.ns)
            .create(&PostParams::default(), &approval)
            .await?;
    }
    // Creation times have whole seconds: the second object is created a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.create(&minor("2.0.0", true)).await?;
    let second = env.releases.get("web-2-0-0").await?;
    assert_ne!(second.metadata.uid.as_ref(), Some(&first_uid));

    let status = env
        .wait_status("web-2-0-0", "AwaitingApproval", |s| {
            s.phase == Some(ReleasePhase::AwaitingApproval)
        })
        .await?;
    assert!(
        status.approvals.is_empty(),
        "the first object's sign-off does not count: {:?}",
        status.approvals
    );
    // The waiting stage says why neither counts.
    let approved = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    for why in [
        format!("approval web-2-0-0-production-old is for an earlier Release of this name (uid {first_uid})"),
        "approval web-2-0-0-production-early names no releaseUID: create it with kubectl relman approve".to_owned(),
    ] {
        assert!(approved.contains(&why), "{why:?} in {approved:?}");
    }
    let staging = &status.stages[0];
    assert_eq!(
        staging.smoke_test.as_ref().map(|j| j.name.as_str()),
        Some("web-2-0-0-staging-smoke-2"),
        "the first object's Job is not counted; the stage ran its own"
    );
    let own = jobs.get("web-2-0-0-staging-smoke-2").await?;
    assert_eq!(
        own.metadata.labels.unwrap_or_default()["relman.io/release-uid"],
        second.metadata.uid.clone().unwrap()
    );
    Ok(())
}

#[tokio::test]
async fn a_revert_never_overwrites_an_edit_it_did_not_see() -> anyhow::Result<()> {
    let env = Env::new("rev-race").await?;
    let seen = env.deployments.get("web-prod").await?;
    let known_good = seen.spec.template.clone();
    let seen_generation = seen.metadata.generation.unwrap();
    // Someone changes the Deployment after relman read it.
    env.kubectl(&["set", "image", "deployment/web-prod", "api=web:by-hand"])
        .await?;

    let raced = relman::k8s::deployment::revert_to_known_good(
        &env.client,
        &env.ns,
        "web-prod",
        &known_good,
        seen_generation,
        None,
        "someone/else",
    )
    .await;
    assert!(
        matches!(raced, Err(Error::DeploymentChanged { .. })),
        "{raced:?}"
    );
    assert_eq!(
        env.image("web-prod").await?,
        "web:by-hand",
        "the edit is kept"
    );

    // Read again, the revert applies.
    let fresh: Deployment = env.deployments.get("web-prod").await?;
    relman::k8s::deployment::revert_to_known_good(
        &env.client,
        &env.ns,
        "web-prod",
        &known_good,
        fresh.metadata.generation.unwrap(),
        None,
        "someone/else",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);
    Ok(())
}

#[tokio::test]
async fn one_deployment_in_two_stages_stalls_before_anything_changes() -> anyhow::Result<()> {
    // The schema refuses two stages that spell the same namespace (tests/api.rs); a stage
    // that names the Release's own namespace beside one that defaults to it is caught here.
    let env = Env::new("rev-shared").await?;
    let _controller = env.controller();
    let mut release = minor("2.0.0", false);
    release.spec.stages[1].deployments = release.spec.stages[0].deployments.clone();
    release.spec.stages[1].namespace = Some(env.ns.clone());
    env.create(&release).await?;
    let status = env.wait_condition("web-2-0-0", "Stalled", "True").await?;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("spec.stages[1].deployments")
            && stalled.message.contains("stage staging"),
        "{}",
        stalled.message
    );
    assert_eq!(
        env.image("web-staging").await?,
        OLD_IMAGE,
        "nothing changed"
    );
    Ok(())
}

#[tokio::test]
async fn a_deployment_that_goes_unready_during_its_bake_time_is_reverted() -> anyhow::Result<()> {
    let env = Env::new("rev-bake").await?;
    let _controller = env.controller();
    let mut release = minor("1.1.0", false);
    release.spec.stages[1].bake = Some("5m".into());
    env.create(&release).await?;
    // The verification Job passed; production is watched for its bake time.
    env.wait_status("web-1-1-0", "Baking", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Reconciling" && c.reason == "Baking")
    })
    .await?;
    assert_eq!(env.image("web-prod").await?, "web:1.1.0");

    // One of the new pods starts crash-looping and is no longer Ready.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let pod = pods
        .list(&ListParams::default().labels("app=web-prod"))
        .await?
        .items
        .into_iter()
        .find(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .any(|c| c.image.as_deref() == Some("web:1.1.0"))
            })
        })
        .expect("a pod of the new version");
    let name = pod.metadata.name.clone().unwrap();
    env.kubectl(&[
        "label",
        "pod",
        &name,
        &format!("{}=true", relman_testenv::CRASH_LABEL),
    ])
    .await?;

    let status = env
        .wait_condition("web-1-1-0", "RolledBack", "True")
        .await?;
    let rolled_back = condition(&status, "RolledBack");
    assert_eq!(rolled_back.reason, "BakeFailed", "{}", rolled_back.message);
    assert!(
        rolled_back
            .message
            .contains("web-prod has 1 of 2 replicas available"),
        "{}",
        rolled_back.message
    );
    env.wait_available("web-prod").await?;
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);
    assert!(
        status.incident.is_some(),
        "production was reverted: an incident"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_squatting_on_a_smoke_test_name_is_never_counted() -> anyhow::Result<()> {
    let env = Env::new("rev-squat").await?;
    let _controller = env.controller();
    // Someone who may create Jobs takes the deterministic name first, without relman's labels.
    let squatter: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "web-1-1-0-staging-smoke-1"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": "not-the-smoke-test:1"}]}}}
    }))?;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), &env.ns);
    jobs.create(&PostParams::default(), &squatter).await?;

    env.create(&minor("1.1.0", false)).await?;
    let status = env.wait_condition("web-1-1-0", "Ready", "True").await?;
    assert_eq!(
        status.stages[0]
            .smoke_test
            .as_ref()
            .map(|j| j.name.as_str()),
        Some("web-1-1-0-staging-smoke-2"),
        "the stage ran its own smoke test under the next attempt's name"
    );
    let squatted = jobs.get("web-1-1-0-staging-smoke-1").await?;
    assert_eq!(
        squatted.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("not-the-smoke-test:1"),
        "relman neither counted nor changed the other Job"
    );
    assert_eq!(
        env.events("web-1-1-0", "JobOfAnotherRelease").await?.len(),
        1
    );
    Ok(())
}
