//! The chart installed on the control plane: with kubectl, with helm, and its admission
//! policies enforced.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::ReleaseApproval;
use relman_testenv::ControlPlane;
use serde_json::json;

use crate::helm::{CHART, apply, documents, find, helm, policy_scoped_to, run, template_text};
use crate::support::{self, wait_until_rejected};

#[tokio::test]
async fn chart_installs_on_the_control_plane() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("chart-install").await?.name().to_owned();
    // The release is named after the namespace so that its cluster-scoped objects are unique.
    let scope = policy_scoped_to(&ns);
    let managed = format!("managedNamespaces={{{ns}}}");
    let manifests = template_text(
        cp,
        &ns,
        &ns,
        &["--include-crds", "--set-json", &scope, "--set", &managed],
    )?;
    let objects = documents(&manifests)?;
    assert_eq!(
        find(&objects, "CustomResourceDefinition").len(),
        4,
        "--include-crds renders the chart's CRDs"
    );
    apply(cp, &manifests)?;

    // Every rendered object exists.
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let mut kubectl = cp.kubectl();
        kubectl.args(["get", kind, name, "-o", "name"]);
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            kubectl.args(["--namespace", namespace]);
        }
        run(kubectl, None).map_err(|e| anyhow::anyhow!("{kind} {name} was not created: {e}"))?;
    }
    // The Deployment's two replicas run (kwok plays the kubelet).
    let fullname = format!("{ns}-relman");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(2) && s.updated_replicas == Some(2))
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(deployments.clone(), &fullname, available),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{fullname} did not get 2 ready replicas"))??;
    let deployment = deployments.get(&fullname).await?;
    let pod_spec = deployment.spec.template.spec.unwrap();
    assert_eq!(pod_spec.service_account_name.as_deref(), Some(&*fullname));
    Ok(())
}

/// An approval of release `web-2-0-0` at `gate`, signed `approver`.
fn approval(name: &str, gate: &str, approver: &str) -> ReleaseApproval {
    support::approval(name, "web-2-0-0", "2.0.0", gate, approver)
}

#[tokio::test]
async fn chart_approval_policy_is_enforced_in_its_namespaces() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-policy").await?.name().to_owned();
    // Bound to this namespace only, with the production gate restricted to release-managers.
    let scope = policy_scoped_to(&ns);
    let manifests = template_text(
        cp,
        &ns,
        &ns,
        &[
            "--show-only",
            "templates/approval-policy.yaml",
            "--set-json",
            &scope,
            "--set",
            "approvalPolicy.signoff.group=release-managers",
            "--set",
            "clusterWide=true",
        ],
    )?;
    assert_eq!(find(&documents(&manifests)?, "ConfigMap").len(), 1);
    apply(cp, &manifests)?;

    // alice may create approvals here (RBAC); the policies decide which.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "approver"},
        "rules": [{"apiGroups": ["relman.io"], "resources": ["releaseapprovals"], "verbs": ["create"]}]
    }))?;
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "approver-alice"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approver"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await?;

    // Bindings take effect asynchronously: probe with dry runs as the admin until both
    // policies reject what they must.
    let approvals: Api<ReleaseApproval> = Api::namespaced(admin.clone(), &ns);
    let probes = [
        (
            approval("probe", "acceptance-criteria", "nobody"),
            "must be your own user name",
        ),
        (
            approval("probe", "production", relman_testenv::ADMIN_USER),
            "only members of group",
        ),
    ];
    wait_until_rejected(&approvals, &probes, Duration::from_secs(60)).await?;

    let create_as = |user: &'static str, groups: &'static [&'static str], a: ReleaseApproval| {
        let ns = ns.clone();
        async move {
            let client = cp.user_client(user, groups).await?;
            Api::<ReleaseApproval>::namespaced(client, &ns)
                .create(&PostParams::default(), &a)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let rejected = |result: anyhow::Result<ReleaseApproval>, needle: &str| match result {
        Err(e) => match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403, "{status:?}");
                assert!(status.message.contains(needle), "{status:?}");
            }
            _ => panic!("expected the API server to reject the request, got {e:?}"),
        },
        Ok(a) => panic!("expected a rejection ({needle}), but {a:?} was created"),
    };
    // alice cannot sign as bob ...
    rejected(
        create_as("alice", &[], approval("as-bob", "staging", "bob")).await,
        "spec.approver must be your own user name, alice",
    );
    // ... nor decide the production gate outside release-managers ...
    rejected(
        create_as("alice", &[], approval("prod", "production", "alice")).await,
        "only members of group release-managers may decide gate production",
    );
    // ... but signs as herself, and production as a release manager.
    create_as("alice", &[], approval("as-alice", "staging", "alice")).await?;
    create_as(
        "alice",
        &["release-managers"],
        approval("prod", "production", "alice"),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_on_the_control_plane() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("chart-helm").await?.name().to_owned();
    let kubeconfig = cp.kubeconfig_path();
    let helm_on_cluster = |args: &[&str]| -> anyhow::Result<String> {
        let mut command = helm(cp)?;
        command
            .args(args)
            .args(["--namespace", &ns, "--kubeconfig"])
            .arg(&kubeconfig);
        run(command, None)
    };
    let env_of = |d: &Deployment| -> Vec<(String, String)> {
        d.spec.template.spec.as_ref().unwrap().containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let fullname = format!("{ns}-relman");

    // The harness installed the CRDs already; `chart_crds_read_the_same_in_go_yaml` covers
    // what helm would install.
    let managed = format!("managedNamespaces={{{ns}}}");
    helm_on_cluster(&[
        "install",
        &ns,
        CHART,
        "--skip-crds",
        "--set",
        &managed,
        "--set",
        "approvalPolicy.enabled=false",
        "--set",
        "releaseFreeze.enabled=false",
        "--wait",
        "--timeout",
        "90s",
    ])?;
    let installed = deployments.get(&fullname).await?;
    assert!(env_of(&installed).contains(&("RELMAN_LOG".into(), "info".into())));

    helm_on_cluster(&[
        "upgrade",
        &ns,
        CHART,
        "--reuse-values",
        "--set",
        "log.level=debug",
        "--wait",
        "--timeout",
        "90s",
    ])?;
    let upgraded = deployments.get(&fullname).await?;
    assert!(
        env_of(&upgraded).contains(&("RELMAN_LOG".into(), "debug".into())),
        "the upgrade changed the Deployment"
    );

    // An upgrade that would leave relman without a scope (the chart's defaults, as an upgrade
    // from a chart before clusterWide would have) fails, naming the values, and changes nothing.
    let refused = helm_on_cluster(&["upgrade", &ns, CHART, "--reset-values"])
        .expect_err("an upgrade without managedNamespaces or clusterWide must fail");
    assert!(
        refused.to_string().contains("managedNamespaces")
            && refused.to_string().contains("clusterWide=true"),
        "{refused}"
    );
    let kept = deployments.get(&fullname).await?;
    assert!(
        env_of(&kept).contains(&("RELMAN_NAMESPACE".into(), ns.clone())),
        "the refused upgrade kept relman's scope: {:?}",
        env_of(&kept)
    );

    helm_on_cluster(&["uninstall", &ns, "--wait", "--timeout", "90s"])?;
    assert!(
        deployments.get_opt(&fullname).await?.is_none(),
        "uninstall removes the Deployment"
    );
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    assert!(
        crds.get_opt("releases.relman.io").await?.is_some(),
        "uninstall keeps the CRDs, and with them every Release"
    );
    Ok(())
}
