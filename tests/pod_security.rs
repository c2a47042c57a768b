//! A Release's Jobs are held to the Pod Security baseline level and the namespace's `default`
//! ServiceAccount, because relman creates them with its own identity. Two things are checked
//! on the real API server: relman's rules agree with the API server's own Pod Security
//! admission, case by case; and a developer who may create Releases but not pods cannot use a
//! Release to run a privileged, host-mounting Job as another ServiceAccount.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use relman::api::labels::LABEL_RELEASE;
use relman::api::policy::PodSecurityLevel;
use relman::plan::pod_security::{JobLimits, violations};
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{Env, OLD_IMAGE, web};

/// Pod specs on both sides of the baseline line (the ServiceAccount rule is relman's own and
/// is not part of Pod Security, so it is not compared here).
fn cases() -> Vec<(&'static str, Value)> {
    let container =
        |security: Value| json!([{"name": "s", "image": "s:1", "securityContext": security}]);
    vec![
        ("plain", json!({})),
        (
            "restricted",
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": container(json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}))
            }),
        ),
        (
            "allowed capability",
            json!({"containers": container(json!({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}}))}),
        ),
        (
            "safe sysctl",
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}),
        ),
        (
            "container_t",
            json!({"securityContext": {"seLinuxOptions": {"type": "container_t"}}}),
        ),
        (
            "emptyDir",
            json!({"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        ),
        ("hostPID", json!({"hostPID": true})),
        ("hostNetwork", json!({"hostNetwork": true})),
        ("hostIPC", json!({"hostIPC": true})),
        (
            "hostPath",
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
        ),
        (
            "privileged",
            json!({"containers": container(json!({"privileged": true}))}),
        ),
        (
            "SYS_ADMIN",
            json!({"containers": container(json!({"capabilities": {"add": ["SYS_ADMIN"]}}))}),
        ),
        (
            "hostPort",
            json!({"containers": [{"name": "s", "image": "s:1", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        ),
        (
            "unconfined seccomp",
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        ),
        (
            "unconfined seccomp in a container",
            json!({"containers": container(json!({"seccompProfile": {"type": "Unconfined"}}))}),
        ),
        (
            "unsafe sysctl",
            json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}}),
        ),
        (
            "SELinux user",
            json!({"securityContext": {"seLinuxOptions": {"user": "system_u"}}}),
        ),
        (
            "SELinux type",
            json!({"containers": container(json!({"seLinuxOptions": {"type": "spc_t"}}))}),
        ),
        (
            "unmasked /proc in a user namespace",
            json!({"hostUsers": false, "containers": container(json!({"procMount": "Unmasked"}))}),
        ),
        (
            "probe to another host",
            json!({"containers": [{"name": "s", "image": "s:1",
                "livenessProbe": {"httpGet": {"host": "169.254.169.254", "port": 80, "path": "/"}}}]}),
        ),
        (
            "hook to another host",
            json!({"containers": [{"name": "s", "image": "s:1",
                "lifecycle": {"postStart": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}}]}),
        ),
        (
            "newer safe sysctls",
            json!({"securityContext": {"sysctls": [
                {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
                {"name": "net.ipv4.tcp_wmem", "value": "4096 16384 4194304"}
            ]}}),
        ),
        (
            "AppArmor annotation unconfined",
            json!({ANNOTATIONS: {"container.apparmor.security.beta.kubernetes.io/s": "unconfined"}}),
        ),
        (
            "AppArmor annotation runtime/default",
            json!({ANNOTATIONS: {"container.apparmor.security.beta.kubernetes.io/s": "runtime/default"}}),
        ),
        (
            "unconfined AppArmor",
            json!({"containers": container(json!({"appArmorProfile": {"type": "Unconfined"}}))}),
        ),
        (
            "restricted with NET_BIND_SERVICE",
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": container(json!({"allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))
            }),
        ),
        (
            "restricted per container",
            json!({"containers": container(json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                "capabilities": {"drop": ["ALL"]}}))}),
        ),
        (
            "restricted but root",
            json!({
                "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": container(json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}))
            }),
        ),
        (
            "restricted but an nfs volume",
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumes": [{"name": "n", "nfs": {"server": "nfs.example", "path": "/"}}],
                "containers": container(json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}))
            }),
        ),
        (
            "restricted but keeps CHOWN",
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": container(json!({"allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}))
            }),
        ),
        (
            "restricted but escalates",
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": container(json!({"capabilities": {"drop": ["ALL"]}}))
            }),
        ),
        (
            "privileged init container",
            json!({
                "initContainers": container(json!({"privileged": true})),
                "containers": [{"name": "t", "image": "t:1"}]
            }),
        ),
    ]
}

/// The cases the restricted level allows; every other case is refused.
const ALLOWED_RESTRICTED: &[&str] = &[
    "restricted",
    "restricted with NET_BIND_SERVICE",
    "restricted per container",
];

/// The cases the baseline level allows; every other case is refused.
const ALLOWED_BASELINE: &[&str] = &[
    "plain",
    "restricted",
    "restricted with NET_BIND_SERVICE",
    "restricted per container",
    "restricted but root",
    "restricted but an nfs volume",
    "restricted but keeps CHOWN",
    "restricted but escalates",
    "allowed capability",
    "safe sysctl",
    "container_t",
    "emptyDir",
    "newer safe sysctls",
    "AppArmor annotation runtime/default",
    "unmasked /proc in a user namespace",
];

/// The key under which a case carries its pod annotations (taken out of the spec).
const ANNOTATIONS: &str = "__annotations";

fn pod_spec(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(object) = spec.as_object_mut() {
        object.remove(ANNOTATIONS);
    }
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "s", "image": "s:1"}]);
    }
    spec["restartPolicy"] = json!("Never");
    spec
}

#[tokio::test]
async fn relman_refuses_exactly_what_pod_security_baseline_refuses() -> anyhow::Result<()> {
    compare_with_pod_security("baseline", PodSecurityLevel::Baseline, ALLOWED_BASELINE).await
}

#[tokio::test]
async fn relman_refuses_exactly_what_pod_security_restricted_refuses() -> anyhow::Result<()> {
    compare_with_pod_security(
        "restricted",
        PodSecurityLevel::Restricted,
        ALLOWED_RESTRICTED,
    )
    .await
}

/// Every case, created (dry run) in a namespace that enforces `label`, and checked by relman at
/// `level`: both must agree, and agree with `allowed`.
async fn compare_with_pod_security(
    label: &str,
    level: PodSecurityLevel,
    allowed: &[&str],
) -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp
        .test_namespace(&format!("psa-{label}"))
        .await?
        .name()
        .to_owned();
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": label,
                "pod-security.kubernetes.io/enforce-version": "latest"
            }}})),
        )
        .await?;
    let accounts = vec!["default".to_owned()];
    let limits = JobLimits {
        level,
        service_accounts: &accounts,
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut disagreements = Vec::new();
    for (name, spec) in cases() {
        let annotations = spec.get(ANNOTATIONS).cloned().unwrap_or(json!({}));
        let spec = pod_spec(&spec);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": format!("case-{}", name.replace([' ', '/', '_'], "-").to_lowercase()),
                "annotations": annotations.clone()
            },
            "spec": spec.clone()
        }))?;
        let admitted = match pods
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &pod,
            )
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status))
                if status.code == 403 && status.message.contains("PodSecurity") =>
            {
                false
            }
            Err(other) => anyhow::bail!("case {name}: unexpected answer {other}"),
        };
        let typed: PodSpec = serde_json::from_value(spec)?;
        let annotations: std::collections::BTreeMap<String, String> =
            serde_json::from_value(annotations)?;
        let found = violations(&typed, Some(&annotations), limits);
        // Both must also say what the case is named for: the comparison cannot pass by both
        // sides seeing nothing.
        if admitted != allowed.contains(&name) {
            disagreements.push(format!(
                "{name}: API server admitted={admitted}, expected the opposite"
            ));
        }
        if admitted != found.is_empty() {
            disagreements.push(format!(
                "{name}: API server admitted={admitted}, relman found {found:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "relman and Pod Security {label} disagree:\n{}",
        disagreements.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_developer_cannot_run_a_privileged_job_through_a_release() -> anyhow::Result<()> {
    let env = Env::new("psa-dev").await.context("env")?;
    let dave = env.developer("dave").await.context("developer")?;
    let mut release = web("2.0.0").json();
    release["spec"]["stages"][0]["smokeTest"]["template"]["spec"]["template"]["spec"] = json!({
        "restartPolicy": "Never",
        "serviceAccountName": "relman",
        "hostPID": true,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "smoke", "image": "busybox", "securityContext": {"privileged": true},
            "volumeMounts": [{"name": "root", "mountPath": "/host"}]}]
    });
    let name = env
        .create_as(dave, release.clone())
        .await
        .context("dave creates the Release")?;
    let _controller = env.controller();
    let stalled = env.wait_stalled(&name, "JobNotPermitted").await?;
    for expected in [
        "spec.stages[0].smokeTest.template.spec.template.spec.serviceAccountName",
        "hostPID",
        "volumes[0].hostPath",
        "containers[0].securityContext.privileged",
        "Restricted",
    ] {
        assert!(
            stalled.contains(expected),
            "{expected} missing from: {stalled}"
        );
    }
    let warnings = env.events(&name, "JobNotPermitted").await?;
    assert!(!warnings.is_empty(), "a Warning Event says why");
    // Nothing was created or changed: no Job of the release, the Deployments as they were.
    let jobs = Api::<Job>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels(LABEL_RELEASE))
        .await?;
    assert!(
        jobs.items.is_empty(),
        "no Job may exist: {:?}",
        jobs.items
            .iter()
            .map(|j| &j.metadata.name)
            .collect::<Vec<_>>()
    );
    assert_eq!(env.image("web-staging").await?, OLD_IMAGE);
    assert_eq!(env.image("web-prod").await?, OLD_IMAGE);

    // The author fixes the template before anything started: the release goes on.
    let mut fixed = json!({"spec": {"stages": release["spec"]["stages"].clone()}});
    fixed["spec"]["stages"][0]["smokeTest"]["template"]["spec"]["template"]["spec"] =
        support::hardened(json!([{"name": "smoke", "image": "busybox"}]));
    env.releases
        .patch(&name, &PatchParams::default(), &Patch::Merge(&fixed))
        .await?;
    env.wait_status(&name, "no longer Stalled", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "False")
    })
    .await?;
    Ok(())
}
