//! A namespace's ReleasePolicy binds the Releases that deploy there, on the real API server:
//! the Job privileges it allows, the Deployments it lets them drive and the sign-off it
//! demands, whatever the Release's author wrote; and the author cannot write the policy.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use relman::api::labels::LABEL_RELEASE;
use relman::api::release::ReleasePhase;
use relman::api::{ReleaseApproval, ReleasePolicy};
use relman_testenv::ControlPlane;
use serde_json::json;
use support::{Env, OLD_IMAGE, condition, web};

/// Creates (as the namespace's owner, the admin here) the ReleasePolicy `name` with `spec`.
async fn write_policy(env: &Env, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let policy: ReleasePolicy = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1", "kind": "ReleasePolicy",
        "metadata": {"name": name}, "spec": spec
    }))?;
    Api::<ReleasePolicy>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &policy)
        .await?;
    Ok(())
}

/// Waits until the Release's first stage has left Pending (`why` says on what).
async fn staging_started(env: &Env, name: &str, why: &str) -> anyhow::Result<()> {
    env.wait_status(name, &format!("staging started {why}"), |s| {
        s.stages
            .first()
            .and_then(|stage| stage.phase)
            .is_some_and(|phase| phase != relman::api::release::StagePhase::Pending)
    })
    .await?;
    Ok(())
}

async fn release_jobs(env: &Env) -> anyhow::Result<Vec<Job>> {
    Ok(Api::<Job>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels(LABEL_RELEASE))
        .await?
        .items)
}

#[tokio::test]
async fn a_privileged_job_runs_only_where_the_namespace_policy_allows_it() -> anyhow::Result<()> {
    let env = Env::new("policy-jobs").await.context("env")?;
    let dave = env.developer("dave").await.context("developer")?;
    let mut release = web("2.0.0").only_staging().json();
    release["spec"]["stages"][0]["smokeTest"]["template"]["spec"]["template"]["spec"] = json!({
        "restartPolicy": "Never",
        "serviceAccountName": "smoke-runner",
        "hostPID": true,
        "containers": [{"name": "smoke", "image": "smoke:1", "securityContext": {"privileged": true}}]
    });
    let name = env
        .create_as(dave, release.clone())
        .await
        .context("dave creates the Release")?;
    let _controller = env.controller();
    let status = env
        .wait_status(&name, "Stalled JobNotPermitted", |s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Stalled" && c.status == "True" && c.reason == "JobNotPermitted"
            })
        })
        .await?;
    let message = condition(&status, "Stalled").message.clone();
    for expected in [
        "serviceAccountName",
        "Restricted",
        "the built-in default policy",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
    assert_eq!(
        status.stages[0].policies,
        vec!["(built-in default)".to_owned()]
    );
    assert!(release_jobs(&env).await?.is_empty(), "no Job was created");
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);

    // The namespace's owner trusts this team with privileged smoke tests as smoke-runner.
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "smoke-runner"}}))?;
    Api::<ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &account)
        .await?;
    write_policy(
        &env,
        "trusted",
        json!({"jobs": {"podSecurity": "Privileged", "serviceAccounts": ["smoke-runner"]}}),
    )
    .await?;
    let status = env
        .wait_status(&name, "the smoke test Job", |s| {
            s.stages
                .first()
                .is_some_and(|stage| stage.smoke_test.is_some())
        })
        .await?;
    assert_eq!(
        status.stages[0].policies,
        vec![format!("{}/trusted", env.ns)]
    );
    // The status names the Job before it is created (status first, then the step): wait for it.
    let jobs = support::wait_for(support::WAIT, Duration::from_millis(200), || async {
        let jobs = release_jobs(&env).await?;
        Ok(if jobs.is_empty() {
            Err("no smoke-test Job yet".to_owned())
        } else {
            Ok(jobs)
        })
    })
    .await?;
    let accounts: Vec<Option<String>> = jobs
        .iter()
        .map(|j| {
            j.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.service_account_name.clone())
        })
        .collect();
    assert_eq!(accounts, vec![Some("smoke-runner".to_owned())]);
    Ok(())
}

#[tokio::test]
async fn a_deployment_outside_the_policys_selector_is_left_untouched() -> anyhow::Result<()> {
    let env = Env::new("policy-deploy").await.context("env")?;
    write_policy(
        &env,
        "web-only",
        json!({"deployments": {"selector": {"matchLabels": {"tier": "web"}}}}),
    )
    .await?;
    env.deployments
        .patch(
            "web-staging",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}})),
        )
        .await?;
    let release = web("2.0.0").build();
    let name = release.metadata.name.clone().unwrap();
    env.create(&release).await?;
    let _controller = env.controller();
    let message = env.wait_stalled(&name, "PolicyViolation").await?;
    for expected in [
        "spec.stages[1].deployments[0]",
        "web-prod",
        &format!("ReleasePolicy {}/web-only", env.ns),
        "tier=web",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
    assert!(
        !env.events(&name, "PolicyViolation").await?.is_empty(),
        "a Warning Event"
    );
    // Found before staging changed anything.
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);
    assert!(release_jobs(&env).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_image_from_outside_the_allowed_registry_is_never_rolled_out() -> anyhow::Result<()> {
    let env = Env::new("policy-image").await.context("env")?;
    write_policy(
        &env,
        "registry",
        json!({"images": {"allowedPrefixes": ["registry.example/shop/"]}}),
    )
    .await?;
    let dave = env.developer("dave").await.context("developer")?;
    let name = env
        .create_as(dave, web("2.0.0").json())
        .await
        .context("dave creates the Release")?;
    let _controller = env.controller();
    let message = env.wait_stalled(&name, "PolicyViolation").await?;
    for expected in [
        "spec.images[0].image",
        "registry.example/shop/",
        &format!("ReleasePolicy {}/registry", env.ns),
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);
    Ok(())
}

#[tokio::test]
async fn the_policys_sign_off_holds_though_the_release_asks_for_none() -> anyhow::Result<()> {
    let env = Env::new("policy-gate").await.context("env")?;
    write_policy(
        &env,
        "signed",
        json!({"gates": {"approval": {"approvers": 1, "independent": false}}}),
    )
    .await?;
    // The author asks for no sign-off anywhere.
    let release = web("2.0.0").build();
    assert!(release.spec.stages.iter().all(|s| s.approval.is_none()));
    let name = release.metadata.name.clone().unwrap();
    env.create(&release).await?;
    let _controller = env.controller();
    let status = env
        .wait_status(&name, "AwaitingApproval", |s| {
            s.phase == Some(ReleasePhase::AwaitingApproval)
        })
        .await?;
    let ready = condition(&status, "Ready").message.clone();
    assert!(
        ready.contains("stage staging needs 1 approval(s)"),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("ReleasePolicy {}/signed demands it", env.ns)),
        "{ready}"
    );
    assert_eq!(
        env.image("web-staging").await?,
        OLD_IMAGE,
        "nothing rolled out"
    );
    Ok(())
}

#[tokio::test]
async fn a_developer_cannot_write_the_namespace_policy() -> anyhow::Result<()> {
    let env = Env::new("policy-dev").await.context("env")?;
    write_policy(
        &env,
        "strict",
        json!({"gates": {"approval": {"approvers": 2}}}),
    )
    .await?;
    let dave = env.developer("dave").await.context("developer")?;
    let policies = Api::<ReleasePolicy>::namespaced(dave, &env.ns);
    // May read what binds them ...
    assert!(policies.get("strict").await.is_ok());
    // ... and may neither loosen, delete nor add to it.
    let forbidden = |result: Result<_, kube::Error>| matches!(result, Err(kube::Error::Api(ref e)) if e.code == 403);
    assert!(forbidden(
        policies
            .patch(
                "strict",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"gates": {"approval": {"approvers": 1}}}})),
            )
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        policies
            .delete("strict", &Default::default())
            .await
            .map(|_| ())
    ));
    let loose: ReleasePolicy = serde_json::from_value(json!({
        "metadata": {"name": "loose"}, "spec": {"jobs": {"podSecurity": "Privileged"}}
    }))?;
    assert!(forbidden(
        policies
            .create(&PostParams::default(), &loose)
            .await
            .map(|_| ())
    ));
    Ok(())
}

#[tokio::test]
async fn a_release_manager_cannot_sign_off_their_own_release_where_the_policy_says_so()
-> anyhow::Result<()> {
    let env = Env::new("policy-self").await.context("env")?;
    write_policy(
        &env,
        "independent",
        json!({"gates": {"approval": {"approvers": 1}}}),
    )
    .await?;
    let rita = env.user_with_role("rita", "relman-release-manager").await?;
    let sam = env.user_with_role("sam", "relman-release-manager").await?;
    let name = env
        .create_as(rita.clone(), web("2.0.0").json())
        .await
        .context("rita creates the Release")?;
    let release = env.releases.get(&name).await?;
    assert_eq!(
        release.creator(),
        Some("rita"),
        "the API server recorded the creator"
    );
    let uid = release.metadata.uid.clone().unwrap();
    let _controller = env.controller();
    let sign = |client: kube::Client, who: &'static str| {
        let (ns, name, uid) = (env.ns.clone(), name.clone(), uid.clone());
        async move {
            let mut approval =
                support::approval(&format!("{name}-{who}"), &name, "2.0.0", "staging", who);
            approval.spec.release_uid = Some(uid);
            Api::<ReleaseApproval>::namespaced(client, &ns)
                .create(&PostParams::default(), &approval)
                .await
        }
    };
    sign(rita, "rita")
        .await
        .context("rita signs her own release")?;
    let status = env
        .wait_status(&name, "rita's own sign-off not counted", |s| {
            s.phase == Some(ReleasePhase::AwaitingApproval)
                && condition(s, "Ready")
                    .message
                    .contains("rita's own do not count")
        })
        .await?;
    assert!(
        condition(&status, "Ready")
            .message
            .contains(&format!("ReleasePolicy {}/independent", env.ns)),
        "the message names the policy"
    );
    assert_eq!(
        env.image("web-staging").await?,
        OLD_IMAGE,
        "nothing rolled out"
    );
    sign(sam, "sam").await.context("sam signs")?;
    staging_started(&env, &name, "on sam's sign-off").await?;
    Ok(())
}

#[tokio::test]
async fn only_sign_offs_of_the_policys_group_count_as_the_api_server_records_them()
-> anyhow::Result<()> {
    let env = Env::new("policy-group").await.context("env")?;
    write_policy(
        &env,
        "managers",
        json!({"gates": {"approval": {"independent": false, "group": "release-managers"}}}),
    )
    .await?;
    let name = web("2.0.0").name().to_owned();
    env.create(&web("2.0.0").build()).await?;
    let uid = env.releases.get(&name).await?.metadata.uid.clone().unwrap();
    let _controller = env.controller();
    // dave signs as an approver outside the group, and writes the group in himself.
    env.user_with_role("dave", "relman-approver").await?;
    let dave = ControlPlane::shared()
        .await?
        .user_client("dave", &["developers"])
        .await?;
    let mut forged = support::approval(&format!("{name}-dave"), &name, "2.0.0", "staging", "dave");
    forged.spec.release_uid = Some(uid.clone());
    forged.metadata.annotations = Some(
        [(
            "relman.io/approver-groups".to_owned(),
            "release-managers".to_owned(),
        )]
        .into(),
    );
    // The API server records his real groups over what he wrote.
    let created = Api::<ReleaseApproval>::namespaced(dave, &env.ns)
        .create(&PostParams::default(), &forged)
        .await?;
    let recorded = created.metadata.annotations.unwrap_or_default();
    assert!(
        recorded
            .get("relman.io/approver-groups")
            .is_some_and(|g| g.split(',').any(|g| g == "developers")
                && !g.split(',').any(|g| g == "release-managers")),
        "the API server recorded dave's own groups over the forged one: {recorded:?}"
    );
    env.wait_status(&name, "dave's sign-off not counted", |s| {
        s.phase == Some(ReleasePhase::AwaitingApproval)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.message.contains("members of release-managers"))
    })
    .await?;
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    // A member of the group signs: staging starts.
    env.user_with_role("rita", "relman-approver").await?;
    let rita = ControlPlane::shared()
        .await?
        .user_client("rita", &["release-managers"])
        .await?;
    let mut signed = support::approval(&format!("{name}-rita"), &name, "2.0.0", "staging", "rita");
    signed.spec.release_uid = Some(uid);
    Api::<ReleaseApproval>::namespaced(rita, &env.ns)
        .create(&PostParams::default(), &signed)
        .await?;
    staging_started(&env, &name, "on rita's sign-off").await?;
    Ok(())
}
