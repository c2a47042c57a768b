//! `kubectl relman` on the local control plane: the real binary, run as a person would, against
//! releases that an in-process controller drives.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Output;

use kube::api::Api;
use relman::api::{Decision, Release, ReleaseApproval};
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{
    Env, approval, file_documents, start_controller, stdout_of, wait_until_rejected, web,
};

/// Runs `kubectl-relman ARGS -n NS --kubeconfig KUBECONFIG` off the async runtime.
async fn plugin(kubeconfig: &Path, ns: &str, args: &[&str]) -> anyhow::Result<Output> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-relman"));
    command
        .args(args)
        .args(["-n", ns, "--kubeconfig"])
        .arg(kubeconfig);
    Ok(tokio::task::spawn_blocking(move || command.output()).await??)
}

/// Runs the plugin as the administrator and returns its stdout; fails when it fails.
async fn ok(env: &Env, args: &[&str]) -> anyhow::Result<String> {
    let cp = ControlPlane::shared().await?;
    let out = plugin(&cp.kubeconfig_path(), &env.ns, args).await?;
    stdout_of(out, &format!("kubectl relman {}", args.join(" ")))
}

/// Asserts the run failed with one line on stderr, and returns that line.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_signs_off_as_the_api_servers_user_and_the_release_reaches_ready()
-> anyhow::Result<()> {
    let env = Env::new("plugin-approve").await?;
    let spec = web("2.0.0").production_approval();
    let name = spec.name().to_owned();
    env.create(&spec.build()).await?;
    let running = start_controller(&env.client, &env.ns, "plugin-test");

    let list = ok(&env, &["list"]).await?;
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.contains(&name) && list.contains("2.0.0"), "{list}");

    env.wait_condition(&name, "Approved", "False").await?;
    let notes = ok(&env, &["notes", &name]).await?;
    assert!(notes.contains("web 2.0.0"), "{notes}");

    let said = ok(&env, &["approve", &name, "--comment", "Staging verified."]).await?;
    assert!(said.contains("approved gate production"), "{said}");
    let approvals: Api<ReleaseApproval> = Api::namespaced(env.client.clone(), &env.ns);
    let approval = approvals
        .get(&format!("{name}-production-{}", relman_testenv::ADMIN_USER).replace(':', "-"))
        .await?;
    assert_eq!(approval.spec.approver, relman_testenv::ADMIN_USER);
    assert_eq!(approval.spec.version, "2.0.0");
    assert_eq!(approval.spec.decision, Decision::Approved);
    assert_eq!(approval.spec.comment.as_deref(), Some("Staging verified."));

    env.wait_condition(&name, "Ready", "True").await?;
    let status = ok(&env, &["status", &name]).await?;
    for expected in [
        "Phase: Succeeded",
        "Stages:",
        "production",
        "Timeline:",
        "Approvals:",
    ] {
        assert!(status.contains(expected), "{expected} in {status}");
    }
    let json: Value = serde_json::from_str(&ok(&env, &["status", &name, "-o", "json"]).await?)?;
    assert_eq!(json["status"]["phase"], "Succeeded");
    let yaml = ok(&env, &["status", &name, "-o", "yaml"]).await?;
    assert!(yaml.contains("kind: Release"), "{yaml}");

    let again = plugin(
        &ControlPlane::shared().await?.kubeconfig_path(),
        &env.ns,
        &["approve", &name, "--gate", "production"],
    )
    .await?;
    assert!(one_line_error(&again).contains("already exists"));
    running.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_incident_and_errors() -> anyhow::Result<()> {
    let env = Env::new("plugin-abort").await?;
    let cp = ControlPlane::shared().await?;
    let spec = web("3.0.0").production_approval();
    let name = spec.name().to_owned();
    env.create(&spec.build()).await?;

    let said = ok(&env, &["abort", &name]).await?;
    assert!(said.contains("reverts"), "{said}");
    let said = ok(
        &env,
        &[
            "incident",
            &name,
            "--root-cause",
            "bad config",
            "--action",
            "lint it",
            "--action",
            "test it",
        ],
    )
    .await?;
    assert!(said.contains("2 action item"), "{said}");
    let releases: Api<Release> = Api::namespaced(env.client.clone(), &env.ns);
    let release = releases.get(&name).await?;
    assert!(release.spec.abort);
    let incident = release.spec.incident.unwrap();
    assert_eq!(incident.root_cause.as_deref(), Some("bad config"));
    assert_eq!(incident.action_items, ["lint it", "test it"]);

    let missing = plugin(&cp.kubeconfig_path(), &env.ns, &["status", "nope"]).await?;
    assert!(one_line_error(&missing).contains("not found"));
    let rejected = plugin(&cp.kubeconfig_path(), &env.ns, &["reject", &name]).await?;
    assert!(!rejected.status.success(), "--comment is required");
    let said = ok(&env, &["reject", &name, "--comment", "Errors in staging."]).await?;
    assert!(said.contains("rejected gate production"), "{said}");
    let approvals: Api<ReleaseApproval> = Api::namespaced(env.client.clone(), &env.ns);
    let rejection = approvals
        .get(
            &format!("{name}-production-{}-rejected", relman_testenv::ADMIN_USER).replace(':', "-"),
        )
        .await?;
    assert_eq!(rejection.spec.decision, Decision::Rejected);
    assert_eq!(
        rejection.spec.comment.as_deref(),
        Some("Errors in staging.")
    );
    let everywhere = ok(&env, &["list", "-A"]).await?;
    assert!(everywhere.starts_with("NAMESPACE"), "{everywhere}");
    assert!(everywhere.contains(&env.ns), "{everywhere}");

    // dave has no Role here: RBAC refuses, and the plugin says so in one line.
    let dave = cp.user_kubeconfig("dave", &["developers"])?;
    let denied = plugin(&dave, &env.ns, &["approve", &name, "--gate", "production"]).await?;
    let line = one_line_error(&denied);
    assert!(line.contains("forbidden"), "{line}");
    Ok(())
}

const POLICY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/approval-policy.yaml");
const ROLES_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/user-roles.yaml");

/// Server-side applies `object` (cluster-scoped, or in the namespace its metadata names).
async fn apply(client: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let object: kube::api::DynamicObject = serde_json::from_value(object.clone())?;
    let gvk = kube::api::GroupVersionKind::try_from(object.types.as_ref().unwrap())?;
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<kube::api::DynamicObject> = match &object.metadata.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let params = kube::api::PatchParams::apply("relman-plugin-tests").force();
    let name = object.metadata.name.clone().unwrap();
    api.patch(&name, &params, &kube::api::Patch::Apply(&object))
        .await?;
    Ok(())
}

/// The shipped admission policies bound to the test's namespace, the sign-off ConfigMap there,
/// and the user roles: alice is an approver, the group release-managers are release managers.
async fn install_identity(env: &Env) -> anyhow::Result<()> {
    for mut document in file_documents(POLICY_FILE)?
        .into_iter()
        .chain(file_documents(ROLES_FILE)?)
    {
        match document["kind"].as_str().unwrap_or_default() {
            "ValidatingAdmissionPolicyBinding" => {
                let name = format!(
                    "{}-{}",
                    document["metadata"]["name"].as_str().unwrap(),
                    env.ns
                );
                document["metadata"]["name"] = json!(name);
                document["spec"]["matchResources"] = json!({"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": env.ns}}});
                if document["spec"]["paramRef"].is_object() {
                    document["spec"]["paramRef"]["namespace"] = json!(env.ns);
                }
            }
            "ConfigMap" => document["metadata"]["namespace"] = json!(env.ns),
            "ValidatingAdmissionPolicy" | "ClusterRole" => {}
            _ => continue,
        }
        apply(&env.client, &document).await?;
    }
    for (kind, subject, role) in [
        ("User", "alice", "relman-approver"),
        ("Group", "release-managers", "relman-release-manager"),
    ] {
        apply(&env.client, &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{role}-{subject}"), "namespace": env.ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]
        }))
        .await?;
    }
    Ok(())
}

/// Waits until the production sign-off policy refuses the administrator (not a release
/// manager) for `release` at 4.0.0.
async fn wait_until_enforced(env: &Env, release: &str) -> anyhow::Result<()> {
    let probe = approval(
        "probe",
        release,
        "4.0.0",
        "production",
        relman_testenv::ADMIN_USER,
    );
    wait_until_rejected(
        &Api::namespaced(env.client.clone(), &env.ns),
        &[(probe, "only members of group")],
        std::time::Duration::from_secs(60),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_policy_decides_who_signs_off_production() -> anyhow::Result<()> {
    let env = Env::new("plugin-policy").await?;
    let cp = ControlPlane::shared().await?;
    let spec = web("4.0.0").production_approval();
    let name = spec.name().to_owned();
    env.create(&spec.build()).await?;
    install_identity(&env).await?;
    wait_until_enforced(&env, &name).await?;

    let alice = cp.user_kubeconfig("alice", &["qa"])?;
    let denied = plugin(&alice, &env.ns, &["approve", &name, "--gate", "production"]).await?;
    let line = one_line_error(&denied);
    assert!(
        line.contains("only members of group release-managers may decide gate production; alice is not a member"),
        "{line}"
    );

    let bob = cp.user_kubeconfig("bob", &["release-managers"])?;
    let signed = plugin(&bob, &env.ns, &["approve", &name, "--comment", "LGTM"]).await?;
    assert!(signed.status.success(), "{signed:?}");
    let approvals: Api<ReleaseApproval> = Api::namespaced(env.client.clone(), &env.ns);
    let approval = approvals.get(&format!("{name}-production-bob")).await?;
    assert_eq!(approval.spec.approver, "bob");
    Ok(())
}
