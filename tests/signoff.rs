//! Sign-offs are bound to one Release object and fail closed, on the local control plane and
//! played by the people who use relman (minted users holding only the shipped roles of
//! `config/user-roles.yaml`):
//!
//! - the API server records who created a Release (`config/release-creator.yaml`, installed
//!   on every test control plane by the harness), whatever the client sent, and nobody changes
//!   it afterwards;
//! - an approval counts only if it names the live Release's uid: one of a deleted Release of
//!   the same name, or one naming no uid, does not, and the waiting stage says why;
//! - approvals count only where the approval identity policy of `config/approval-policy.yaml`
//!   is bound: without its binding the gate stays closed and says how to install it; bound
//!   again, the same approval counts and the stage starts.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use relman::api::labels::ANNOTATION_CREATED_BY;
use relman::api::release::{ReleasePhase, StagePhase};
use relman::api::{Release, ReleaseApproval, ReleaseStatus};
use serde_json::json;
use support::{Env, WAIT, approval, condition, wait_for, web};

/// How long a new or deleted policy binding may take to be seen.
const POLICY_WAIT: Duration = Duration::from_secs(60);

/// The approval of Release `release` (2.0.0) at the production gate, signed by `approver`,
/// naming the Release object `uid` (`None`: none).
fn production(name: &str, release: &str, approver: &str, uid: Option<&str>) -> ReleaseApproval {
    let mut approval = approval(name, release, "2.0.0", "production", approver);
    approval.spec.release_uid = uid.map(str::to_owned);
    approval
}

/// Waits until the Release's status satisfies `holds`, describing it by `what`.
async fn wait_status(
    env: &Env,
    name: &str,
    what: &str,
    holds: impl Fn(&ReleaseStatus) -> bool,
) -> anyhow::Result<ReleaseStatus> {
    wait_for(WAIT, Duration::from_millis(200), || async {
        let status = env.releases.get(name).await?.status.unwrap_or_default();
        Ok(if holds(&status) {
            Ok(status)
        } else {
            Err(format!(
                "timed out waiting for {what} on {name}: {status:#?}"
            ))
        })
    })
    .await
}

/// The Approved condition's message.
fn approved_message(status: &ReleaseStatus) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Waits until Release `name` waits for its production sign-off.
async fn wait_awaiting_approval(env: &Env, name: &str) -> anyhow::Result<ReleaseStatus> {
    wait_status(env, name, "AwaitingApproval", |s| {
        s.phase == Some(ReleasePhase::AwaitingApproval)
    })
    .await
}

/// The production stage has started (its phase left Pending).
fn production_started(status: &ReleaseStatus) -> bool {
    status
        .stages
        .get(1)
        .and_then(|s| s.phase)
        .is_some_and(|p| p != StagePhase::Pending)
}

#[tokio::test]
async fn the_api_server_records_the_creator_and_the_developer_cannot_change_it()
-> anyhow::Result<()> {
    let began = Instant::now();
    let env = Env::new("signoff-creator").await?;
    let dave = env.developer("dave").await?;
    let releases: Api<Release> = Api::namespaced(dave, &env.ns);

    // dave claims mallory created it; the API server records dave.
    let mut release = web("2.0.0").build();
    release.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_CREATED_BY.to_owned(),
        "mallory".to_owned(),
    )]));
    let created = releases.create(&PostParams::default(), &release).await?;
    assert_eq!(created.creator(), Some("dave"), "{:?}", created.metadata);
    let stored = env.releases.get("web-2-0-0").await?;
    assert_eq!(stored.creator(), Some("dave"));

    // Neither changing nor removing it is allowed, and the refusal names the annotation.
    for (what, value) in [("change", json!("mallory")), ("remove", json!(null))] {
        let patch = json!({"metadata": {"annotations": {ANNOTATION_CREATED_BY: value}}});
        match releases
            .patch("web-2-0-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(refused)) => {
                assert_eq!(refused.code, 403, "{what}: {refused:?}");
                assert!(
                    refused.message.contains(
                        "the annotation relman.io/created-by records who created the Release (dave): it cannot be changed"
                    ),
                    "{what}: {}",
                    refused.message
                );
            }
            other => panic!("dave could {what} the creator annotation: {other:?}"),
        }
    }
    // Other metadata stays his to change.
    let patch = json!({"metadata": {"annotations": {"team.example/channel": "#web"}}});
    let changed = releases
        .patch("web-2-0-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    assert_eq!(changed.creator(), Some("dave"));
    eprintln!("creator test took {:?}", began.elapsed());
    Ok(())
}

#[tokio::test]
async fn only_an_approval_naming_the_live_release_counts_and_the_others_say_why()
-> anyhow::Result<()> {
    let began = Instant::now();
    let env = Env::new("signoff-bound").await?;
    let dave = env.developer("dave").await?;
    let alice = env.user_with_role("alice", "relman-approver").await?;
    let _controller = env.controller();
    let releases: Api<Release> = Api::namespaced(dave, &env.ns);
    let approvals: Api<ReleaseApproval> = Api::namespaced(alice, &env.ns);
    let release = web("2.0.0").production_approval().build();

    // dave's first Release of web 2.0.0 goes away and he creates it again.
    let first = releases.create(&PostParams::default(), &release).await?;
    let first_uid = first.metadata.uid.clone().unwrap();
    releases
        .delete("web-2-0-0", &DeleteParams::background())
        .await?;
    wait_for(WAIT, Duration::from_millis(100), || async {
        Ok(match env.releases.get_opt("web-2-0-0").await? {
            None => Ok(()),
            Some(_) => Err("the first web-2-0-0 is still there".to_owned()),
        })
    })
    .await?;
    let second = releases.create(&PostParams::default(), &release).await?;
    let second_uid = second.metadata.uid.clone().unwrap();
    assert_ne!(first_uid, second_uid);
    wait_awaiting_approval(&env, "web-2-0-0").await?;

    // alice signs off the first object, and once without naming any.
    for approval in [
        production("for-the-first", "web-2-0-0", "alice", Some(&first_uid)),
        production("for-no-object", "web-2-0-0", "alice", None),
    ] {
        approvals.create(&PostParams::default(), &approval).await?;
    }
    let status = wait_status(&env, "web-2-0-0", "both reasons in Approved", |s| {
        let message = approved_message(s);
        message.contains("for-the-first") && message.contains("for-no-object")
    })
    .await?;
    let message = approved_message(&status);
    for why in [
        format!(
            "approval for-the-first is for an earlier Release of this name (uid {first_uid}), not this one"
        ),
        "approval for-no-object names no releaseUID: create it with kubectl relman approve"
            .to_owned(),
    ] {
        assert!(message.contains(&why), "{why:?} in {message:?}");
    }
    assert!(message.contains("0 so far"), "{message}");
    assert_eq!(status.phase, Some(ReleasePhase::AwaitingApproval));
    assert!(status.approvals.is_empty(), "{:?}", status.approvals);
    assert!(!production_started(&status), "{status:#?}");

    // Naming the live object, it counts.
    approvals
        .create(
            &PostParams::default(),
            &production("for-the-live-one", "web-2-0-0", "alice", Some(&second_uid)),
        )
        .await?;
    let started = wait_status(&env, "web-2-0-0", "production started", production_started).await?;
    let names: Vec<&str> = started.approvals.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["for-the-live-one"]);
    eprintln!("bound test took {:?}", began.elapsed());
    Ok(())
}

#[tokio::test]
async fn approvals_do_not_count_while_the_identity_policy_is_not_bound_to_the_namespace()
-> anyhow::Result<()> {
    let began = Instant::now();
    let env = Env::new("signoff-unbound").await?;
    // The namespace steps out of the harness's binding and binds the shipped policy itself.
    let unbound = json!({"metadata": {"labels": {relman_testenv::UNBOUND_LABEL: "unbound"}}});
    Api::<Namespace>::all(env.client.clone())
        .patch(&env.ns, &PatchParams::default(), &Patch::Merge(&unbound))
        .await?;
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(env.client.clone());
    let name = format!("relman-approval-identity-{}", env.ns);
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "policyName": "relman-approval-identity",
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": env.ns}
            }}
        }
    }))?;
    bindings.create(&PostParams::default(), &binding).await?;

    let dave = env.developer("dave").await?;
    let alice = env.user_with_role("alice", "relman-approver").await?;
    let _controller = env.controller();
    let releases: Api<Release> = Api::namespaced(dave, &env.ns);
    let created = releases
        .create(
            &PostParams::default(),
            &web("2.0.0").production_approval().build(),
        )
        .await?;
    let uid = created.metadata.uid.unwrap();
    let waiting = wait_awaiting_approval(&env, "web-2-0-0").await?;
    assert!(
        !approved_message(&waiting).contains("not trusted"),
        "bound, approvals are trusted: {}",
        approved_message(&waiting)
    );

    // The binding goes: alice's approval, bound to the live Release, does not open the gate.
    bindings.delete(&name, &DeleteParams::default()).await?;
    Api::<ReleaseApproval>::namespaced(alice, &env.ns)
        .create(
            &PostParams::default(),
            &production("alice-prod", "web-2-0-0", "alice", Some(&uid)),
        )
        .await?;
    let closed = wait_status(&env, "web-2-0-0", "not trusted", |s| {
        approved_message(s).contains("not trusted")
    })
    .await?;
    let message = approved_message(&closed);
    for part in [
        "0 so far",
        &format!(
            "approvals in namespace {ns} are not trusted and open no gate, because no ValidatingAdmissionPolicyBinding with validationActions Deny binds the ValidatingAdmissionPolicy relman-approval-identity to namespace {ns}",
            ns = env.ns
        ),
        "kubectl apply -f config/approval-policy.yaml",
        "approvalPolicy.enabled=true",
    ] {
        assert!(message.contains(part), "{part:?} in {message:?}");
    }
    // It stays closed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = env
        .releases
        .get("web-2-0-0")
        .await?
        .status
        .unwrap_or_default();
    assert_eq!(still.phase, Some(ReleasePhase::AwaitingApproval));
    assert!(still.approvals.is_empty(), "{:?}", still.approvals);
    assert!(!production_started(&still), "{still:#?}");
    assert_eq!(condition(&still, "Approved").status, "False");

    // Bound again, the same approval counts and production starts, woken by the binding.
    let rebound = Instant::now();
    bindings.create(&PostParams::default(), &binding).await?;
    let started = wait_for(POLICY_WAIT, Duration::from_millis(100), || async {
        let status = env
            .releases
            .get("web-2-0-0")
            .await?
            .status
            .unwrap_or_default();
        Ok(if production_started(&status) {
            Ok(status)
        } else {
            Err(format!("production did not start: {status:#?}"))
        })
    })
    .await?;
    let reaction = rebound.elapsed();
    eprintln!("production started {reaction:?} after the binding came back");
    assert!(
        reaction < Duration::from_secs(10),
        "the binding's watch must wake the release: {reaction:?}"
    );
    assert_eq!(started.approvals.len(), 1);
    assert_eq!(started.approvals[0].approver, "alice");
    eprintln!("unbound test took {:?}", began.elapsed());
    Ok(())
}
