//! A started release cannot be re-scoped: `config/release-freeze.yaml`, enforced by the real
//! API server, refuses a developer's change to a started Release's spec (removing the
//! sign-off, retyping it a Patch, dropping the calendar, ...) and lets through what may still
//! change: `spec.abort`, `spec.incident`, metadata, and any change before the first stage.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::api::{Api, Patch, PatchParams};
use relman::api::Release;
use serde_json::{Value, json};
use support::{Env, web};

const FREEZE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/release-freeze.yaml");

/// Installs the shipped policy, its binding limited to the test's namespace.
async fn install_freeze(env: &Env) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(FREEZE_FILE)?;
    let apply = PatchParams::apply("relman-tests").force();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut value: Value = serde::Deserialize::deserialize(document)?;
        match value["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => {
                let name = value["metadata"]["name"].as_str().unwrap().to_owned();
                Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
                    .patch(&name, &apply, &Patch::Apply(&value))
                    .await?;
            }
            Some("ValidatingAdmissionPolicyBinding") => {
                let name = format!("{}-{}", value["metadata"]["name"].as_str().unwrap(), env.ns);
                value["metadata"]["name"] = json!(name);
                value["spec"]["matchResources"] = json!({"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": env.ns}
                }});
                Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
                    .patch(&name, &apply, &Patch::Apply(&value))
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Merge-patches Release `name` as `client`; the API server's refusal message, if any.
async fn change(client: &kube::Client, env: &Env, name: &str, patch: Value) -> Option<String> {
    patch_release(client, env, name, patch, false).await
}

async fn patch_release(
    client: &kube::Client,
    env: &Env,
    name: &str,
    patch: Value,
    dry_run: bool,
) -> Option<String> {
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    match Api::<Release>::namespaced(client.clone(), &env.ns)
        .patch(name, &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(format!("{} {}", status.code, status.message)),
        Err(other) => Some(other.to_string()),
    }
}

#[tokio::test]
async fn a_started_release_cannot_be_rescoped_by_its_author() -> anyhow::Result<()> {
    let env = Env::new("freeze").await?;
    install_freeze(&env).await?;
    let _controller = env.controller();
    // web-2-0-0 starts and waits for its production sign-off; web-3-0-0 never starts (its
    // named requirement is not met).
    let started = web("2.0.0").production_approval();
    env.create(&started.build()).await?;
    let mut waiting = web("3.0.0").production_approval().build();
    waiting.spec.requirements = serde_json::from_value(json!([{"name": "qa-signoff"}]))?;
    env.create(&waiting).await?;
    env.wait_condition("web-2-0-0", "StagingVerified", "True")
        .await?;
    let dave = env.developer("dave").await?;

    // The policy's binding takes effect a moment after it is created: probe with dry runs.
    let remove_sign_off = json!({"spec": {"stages": [
        started.build().spec.stages[0].clone(),
        {"name": "production", "deployments": ["web-prod"],
         "smokeTest": serde_json::to_value(&started.build().spec.stages[1].smoke_test)?}
    ]}});
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let probe = remove_sign_off.clone();
            if patch_release(&dave, &env, "web-2-0-0", probe, true)
                .await
                .is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the freeze policy never refused removing the sign-off"))?;
    let refused = change(&dave, &env, "web-2-0-0", remove_sign_off)
        .await
        .expect("removing the sign-off of a started release is refused");
    assert!(
        refused.contains("spec.stages cannot change once the release has started"),
        "{refused}"
    );
    for (patch, field) in [
        (json!({"spec": {"type": "Patch"}}), "spec.type"),
        (
            json!({"spec": {"calendar": "always-open"}}),
            "spec.calendar",
        ),
        (
            json!({"spec": {"rollbackPlan": "none"}}),
            "spec.rollbackPlan",
        ),
    ] {
        let refused = change(&dave, &env, "web-2-0-0", patch.clone())
            .await
            .unwrap_or_else(|| panic!("{patch} was accepted on a started release"));
        assert!(
            refused.contains(&format!("{field} cannot change")),
            "{refused}"
        );
    }
    let release = env.releases.get("web-2-0-0").await?;
    assert!(
        release.spec.stages[1].approval.is_some(),
        "the sign-off is still asked for"
    );
    // Turning production's window gate around and renaming a stage are changes of spec.stages.
    let stages = serde_json::to_value(&release.spec.stages)?;
    let mut window = stages.clone();
    window[1]["window"] = json!(!release.spec.stages[1].window);
    let mut renamed = stages.clone();
    renamed[1]["name"] = json!("prod");
    for (what, stages) in [("the window gate", window), ("a stage's name", renamed)] {
        let refused = change(
            &dave,
            &env,
            "web-2-0-0",
            json!({"spec": {"stages": stages}}),
        )
        .await
        .unwrap_or_else(|| panic!("changing {what} was accepted on a started release"));
        assert!(
            refused.contains("spec.stages cannot change once the release has started"),
            "{what}: {refused}"
        );
    }

    // The freeze (and the bake's baseline) read the status, which only relman writes: the
    // developer cannot reset it to "not started" to unfreeze the spec.
    let unstart = json!({"status": {"stages": [], "phase": "Pending"}});
    let refused = Api::<Release>::namespaced(dave.clone(), &env.ns)
        .patch_status(
            "web-2-0-0",
            &PatchParams::default(),
            &Patch::Merge(&unstart),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 403),
        "a developer may not write a Release's status: {refused:?}"
    );

    // What may still change.
    for patch in [
        json!({"metadata": {"annotations": {"team.example/ticket": "OPS-1"}}}),
        json!({"spec": {"incident": {"actionItems": ["add a canary"]}}}),
    ] {
        assert_eq!(change(&dave, &env, "web-2-0-0", patch).await, None);
    }
    assert_eq!(
        change(
            &dave,
            &env,
            "web-3-0-0",
            json!({"spec": {"owner": "team-other"}})
        )
        .await,
        None,
        "a release that has not started may still change"
    );
    assert_eq!(
        change(&dave, &env, "web-2-0-0", json!({"spec": {"abort": true}})).await,
        None,
        "abort is always possible"
    );
    env.wait_condition("web-2-0-0", "RolledBack", "True")
        .await?;
    Ok(())
}
