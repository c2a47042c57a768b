//! The chart as `helm template` renders it, and its CRDs.

use std::collections::BTreeSet;
use std::path::Path;

use relman_testenv::ControlPlane;
use serde_json::{Value, json};

use crate::helm::{
    CHART, documents, find, one, policy_scoped_to, run, template, template_text, workspace,
};

#[test]
fn chart_crds_are_the_generated_crds() {
    let read = |dir: &Path| -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let generated = read(&workspace().join("crds"));
    let chart = read(&workspace().join(CHART).join("crds"));
    assert!(!generated.is_empty());
    assert!(
        generated == chart,
        "{CHART}/crds differs from crds/: run `make crds` (it copies crds/ into the chart)"
    );
}

/// kubectl and helm read YAML with Go's YAML 1.1 rules, where an unquoted `on`, `off`, `yes`,
/// `no`, `y` or `n` is a boolean: a CRD property named `on` would be installed as `true`. The
/// CRDs must mean the same to Go as they do to serde_yaml (and the harness) that wrote them.
#[tokio::test]
async fn chart_crds_read_the_same_in_go_yaml() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let dir = workspace().join(CHART).join("crds");
    let mut differences = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let ours: Value = serde_yaml::from_str(&text)?;
        let mut kubectl = cp.kubectl();
        kubectl
            .args(["create", "--dry-run=client", "-o", "json", "-f"])
            .arg(&path);
        let go: Value = serde_json::from_str(&run(kubectl, None)?)?;
        let mut here = Vec::new();
        json_differences(&ours, &go, &mut String::new(), &mut here);
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        differences.extend(here.into_iter().map(|d| format!("{file}: {d}")));
    }
    assert!(
        differences.is_empty(),
        "Go's YAML reads the chart's CRDs differently (quote these keys in crdgen's output):\n{}",
        differences.join("\n")
    );
    Ok(())
}

/// The paths at which `a` and `b` differ (keys only one of them has, or different scalars).
pub fn json_differences(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let len = path.len();
                path.push('/');
                path.push_str(key);
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => json_differences(p, q, path, out),
                    (Some(_), None) => out.push(format!("{path} is missing in Go's reading")),
                    (None, _) => out.push(format!("{path} appears only in Go's reading")),
                }
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                json_differences(p, q, path, out);
                path.truncate(len);
            }
        }
        // 10.0 and 10 are the same number to the API server.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!("{path}: {a} in the file, {b} in Go's reading")),
        _ => {}
    }
}

#[tokio::test]
async fn values_schema_rejects_unknown_and_invalid_values() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    for (args, complaint) in [
        (&["--set", "replicas=3"][..], "replicas"),
        (&["--set", "image.tga=1.0"][..], "tga"),
        (&["--set", "log.format=xml"][..], "format"),
        (&["--set", "replicaCount=two"][..], "replicaCount"),
        (
            &["--set", "watchNamespace=Not_A_Namespace"][..],
            "watchNamespace",
        ),
        (
            &["--set", "managedNamespaces={apps,Not_A_Namespace}"][..],
            "managedNamespaces",
        ),
        (&["--set", "clusterWide=maybe"][..], "clusterWide"),
        (
            &["--set", "rbac.notificationSecretNames={Bad_Name}"][..],
            "notificationSecretNames",
        ),
        (
            &[
                "--set",
                "rbac.conditionGateRules[0].resources={pipelineruns}",
            ][..],
            "conditionGateRules",
        ),
        (
            &["--set", "approvalPolicy.signof.group=release-managers"][..],
            "signof",
        ),
        (
            &["--set", "approvalPolicy.signoff.gates={production,qa a}"][..],
            "gates",
        ),
    ] {
        let error = template_text(cp, "relman", "relman-system", args)
            .expect_err(&format!("{args:?} must be rejected by values.schema.json"));
        let message = error.to_string();
        assert!(
            message.contains("schema") && message.contains(complaint),
            "{args:?}: the error should name the schema and {complaint}: {message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn rendered_chart_runs_two_hardened_replicas_with_probes() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &["--set", "clusterWide=true"],
    )?;

    let deployment = one(&objects, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(spec["serviceAccountName"], "relman");
    let pod_security = &spec["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let container = &spec["containers"][0];
    assert_eq!(container["image"], "relman:0.1.0", "the tag is appVersion");
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        container["ports"],
        json!([
            {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "probes", "containerPort": 8081, "protocol": "TCP"}
        ])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"], "probes",
            "the probes have a port of their own"
        );
    }
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let env = container["env"].as_array().unwrap();
    let pod_name = env.iter().find(|e| e["name"] == "POD_NAME").unwrap();
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    for unset in ["RELMAN_NAMESPACE", "RELMAN_CALENDAR_SELECTOR"] {
        assert!(
            !env.iter().any(|e| e["name"] == unset),
            "{unset}: every namespace with clusterWide, and every calendar by default"
        );
    }

    let service = one(&objects, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}])
    );
    assert!(
        find(&objects, "ServiceMonitor").is_empty(),
        "off by default"
    );
    assert!(
        find(&objects, "CustomResourceDefinition").is_empty(),
        "CRDs live in crds/, installed by helm install, not rendered as templates"
    );

    // The options: a ServiceMonitor, managed namespaces (listed twice, out of order), extra
    // rules for condition gates.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "managedNamespaces={apps-prod,apps,apps}",
            "--set",
            "calendarSelector=team=apps",
            "--set",
            "rbac.conditionGateRules[0].apiGroups={tekton.dev}",
            "--set",
            "rbac.conditionGateRules[0].resources={pipelineruns}",
            "--set",
            "rbac.conditionGateRules[0].verbs={get}",
        ],
    )?;
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let env = &one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    for (name, value) in [
        ("RELMAN_NAMESPACE", "apps,apps-prod"),
        ("RELMAN_CALENDAR_SELECTOR", "team=apps"),
    ] {
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == name && e["value"] == value),
            "{name}={value} in {env}"
        );
    }
    let cluster_role = one(&objects, "ClusterRole");
    let cluster_resources: BTreeSet<&str> = cluster_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        cluster_resources,
        BTreeSet::from([
            "releasecalendars",
            "releasecalendars/status",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "namespaces",
            "pipelineruns"
        ]),
        "with managedNamespaces, only cluster-scoped kinds and gate kinds are cluster-wide"
    );
    let namespaces = cluster_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == json!(["namespaces"]))
        .unwrap();
    assert_eq!(
        (&namespaces["verbs"], &namespaces["resourceNames"]),
        (&json!(["get"]), &json!(["apps", "apps-prod"])),
        "with managedNamespaces, relman reads only their Namespace objects"
    );
    let role_namespaces: BTreeSet<&str> = find(&objects, "Role")
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(
        role_namespaces,
        BTreeSet::from(["apps", "apps-prod", "relman-system"]),
        "Roles in the managed namespaces, the leader-election Role in the release's"
    );
    Ok(())
}

/// The chart renders only when told where relman may act, and the values it replaced fail
/// with the new value's name instead of silently granting more or less than before.
#[tokio::test]
async fn the_chart_renders_only_when_told_where_relman_may_act() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    for (args, needles) in [
        (
            &[][..],
            &["set managedNamespaces", "or clusterWide=true"][..],
        ),
        // Without the RBAC objects too: the Deployment's RELMAN_NAMESPACE needs the list.
        (
            &["--set", "rbac.create=false"][..],
            &["set managedNamespaces"][..],
        ),
        (
            &[
                "--set",
                "watchNamespace=apps",
                "--set",
                "rbac.stageNamespaces={apps-prod}",
            ][..],
            &[
                "watchNamespace was replaced by managedNamespaces",
                "managedNamespaces={apps,apps-prod}",
            ][..],
        ),
        (
            &[
                "--set",
                "clusterWide=true",
                "--set",
                "rbac.stageNamespaces={apps-prod}",
            ][..],
            &["rbac.stageNamespaces was replaced by managedNamespaces"][..],
        ),
        (
            &[
                "--set",
                "clusterWide=true",
                "--set",
                "managedNamespaces={apps}",
            ][..],
            &["managedNamespaces is set together with clusterWide=true"][..],
        ),
    ] {
        let error = template_text(cp, "relman", "relman-system", args)
            .expect_err(&format!("{args:?} must not render"))
            .to_string();
        for needle in needles {
            assert!(
                error.contains(needle),
                "{args:?}: {needle:?} not in {error}"
            );
        }
    }

    // One managed namespace, notification Secrets by name: everything namespaced is in its
    // Role; the ClusterRole has no namespaced kind, no Secret and no Namespace to read (a stage
    // cannot leave the one namespace relman manages).
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "managedNamespaces={apps}",
            "--set",
            "rbac.notificationSecretNames={releases-channel}",
        ],
    )?;
    let resources = |rules: &Value| -> BTreeSet<String> {
        rules
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap().clone())
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    };
    let cluster = resources(&one(&objects, "ClusterRole")["rules"]);
    assert_eq!(
        cluster,
        [
            "releasecalendars",
            "releasecalendars/status",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings"
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    );
    let role = find(&objects, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "apps")
        .expect("a Role in apps");
    assert!(resources(&role["rules"]).contains("releasepolicies"));
    let secrets = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == json!(["secrets"]))
        .unwrap();
    assert_eq!(
        (&secrets["verbs"], &secrets["resourceNames"]),
        (&json!(["get"]), &json!(["releases-channel"]))
    );
    let env = &one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "RELMAN_NAMESPACE" && e["value"] == "apps"),
        "{env}"
    );

    // clusterWide: the namespaced kinds in the ClusterRole, no Role but the Lease's, and no
    // RELMAN_NAMESPACE.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &["--set", "clusterWide=true"],
    )?;
    let cluster = resources(&one(&objects, "ClusterRole")["rules"]);
    for kind in [
        "releases",
        "deployments",
        "jobs",
        "secrets",
        "releasepolicies",
        "namespaces",
    ] {
        assert!(
            cluster.contains(kind),
            "clusterWide grants {kind}: {cluster:?}"
        );
    }
    let roles: Vec<&str> = find(&objects, "Role")
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .collect();
    assert_eq!(roles, ["relman-leader-election"]);
    Ok(())
}

#[tokio::test]
async fn approval_policy_renders_its_config_map_only_with_a_group() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let kinds = [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];

    // On by default, in every namespace, without a group restriction (no ConfigMap).
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--show-only",
            "templates/approval-policy.yaml",
            "--set",
            "clusterWide=true",
        ],
    )?;
    for kind in kinds {
        let names: BTreeSet<&str> = find(&objects, kind)
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["relman-approval-identity", "relman-production-signoff"]),
            "{kind}: the names of config/approval-policy.yaml for the release relman"
        );
    }
    for binding in find(&objects, "ValidatingAdmissionPolicyBinding") {
        assert!(
            binding["spec"]["matchResources"].is_null(),
            "every namespace by default: {binding}"
        );
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    }
    let signoff = find(&objects, "ValidatingAdmissionPolicyBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "relman-production-signoff")
        .unwrap();
    assert_eq!(
        signoff["spec"]["paramRef"],
        json!({"name": "relman-signoff", "namespace": "relman-system", "parameterNotFoundAction": "Allow"})
    );
    assert!(
        find(&objects, "ConfigMap").is_empty(),
        "no ConfigMap without signoff.group"
    );

    // A group, gates and a namespace selector; another release's names.
    let objects = template(
        cp,
        "payments",
        "payments-system",
        &[
            "--show-only",
            "templates/approval-policy.yaml",
            "--set",
            "approvalPolicy.signoff.group=release-managers",
            "--set",
            "clusterWide=true",
            "--set",
            "approvalPolicy.signoff.gates={production,qa}",
            "--set-json",
            &policy_scoped_to("apps"),
        ],
    )?;
    let config_map = one(&objects, "ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "payments-relman-signoff");
    assert_eq!(config_map["metadata"]["namespace"], "payments-system");
    assert_eq!(
        config_map["data"],
        json!({"group": "release-managers", "gates": "production,qa"})
    );
    for binding in find(&objects, "ValidatingAdmissionPolicyBinding") {
        let name = binding["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("payments-relman-"), "{name}");
        assert_eq!(binding["spec"]["policyName"], name);
        assert_eq!(
            binding["spec"]["matchResources"],
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}})
        );
    }
    let signoff = find(&objects, "ValidatingAdmissionPolicyBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "payments-relman-production-signoff")
        .unwrap();
    assert_eq!(
        signoff["spec"]["paramRef"]["name"],
        "payments-relman-signoff"
    );
    assert_eq!(signoff["spec"]["paramRef"]["namespace"], "payments-system");

    // The same policies as config/approval-policy.yaml, the non-Helm option: with the release
    // relman in relman-system and the shipped group, the chart renders the same five objects.
    let shipped = documents(&std::fs::read_to_string(
        workspace().join("config/approval-policy.yaml"),
    )?)?;
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--show-only",
            "templates/approval-policy.yaml",
            "--set",
            "approvalPolicy.signoff.group=release-managers",
            "--set",
            "clusterWide=true",
        ],
    )?;
    assert_eq!(objects.len(), shipped.len());
    for expected in &shipped {
        let kind = expected["kind"].as_str().unwrap();
        let name = &expected["metadata"]["name"];
        let rendered = find(&objects, kind)
            .into_iter()
            .find(|o| &o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"));
        let body = if kind == "ConfigMap" { "data" } else { "spec" };
        assert_eq!(
            rendered[body], expected[body],
            "{kind} {name}: the chart and config/approval-policy.yaml differ"
        );
        assert_eq!(
            rendered["metadata"]["namespace"],
            expected["metadata"]["namespace"]
        );
    }

    // Off: none of it.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "clusterWide=true",
            "--set",
            "approvalPolicy.enabled=false",
            "--set",
            "releaseFreeze.enabled=false",
            "--set",
            "releaseCreator.enabled=false",
            "--set",
            "approvalPolicy.signoff.group=release-managers",
        ],
    )?;
    for kind in kinds.into_iter().chain(["ConfigMap"]) {
        assert!(find(&objects, kind).is_empty(), "{kind} with enabled=false");
    }
    Ok(())
}

/// With the release relman (cluster-wide), `templates/<file>.yaml` renders exactly the objects
/// of `config/<file>.yaml`, spec for spec.
fn renders_config(cp: &ControlPlane, file: &str) -> anyhow::Result<()> {
    let shipped = documents(&std::fs::read_to_string(
        workspace().join(format!("config/{file}.yaml")),
    )?)?;
    let show = format!("templates/{file}.yaml");
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &["--show-only", &show, "--set", "clusterWide=true"],
    )?;
    assert_eq!(objects.len(), shipped.len(), "{file}");
    for expected in &shipped {
        let kind = expected["kind"].as_str().unwrap();
        let name = &expected["metadata"]["name"];
        let rendered = find(&objects, kind)
            .into_iter()
            .find(|o| &o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"));
        assert_eq!(
            rendered["spec"], expected["spec"],
            "{kind} {name}: the chart and config/{file}.yaml differ"
        );
    }
    Ok(())
}

#[tokio::test]
async fn release_freeze_renders_the_policy_of_config() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    // With the release relman, the chart renders exactly config/release-freeze.yaml.
    renders_config(cp, "release-freeze")?;

    // Another release's names, bound to the selected namespaces.
    let objects = template(
        cp,
        "payments",
        "payments-system",
        &[
            "--show-only",
            "templates/release-freeze.yaml",
            "--set",
            "releaseFreeze.namespaceSelector.matchLabels.team=payments",
            "--set",
            "clusterWide=true",
        ],
    )?;
    let binding = one(&objects, "ValidatingAdmissionPolicyBinding");
    assert_eq!(
        binding["metadata"]["name"],
        "payments-relman-release-freeze"
    );
    assert_eq!(
        binding["spec"]["policyName"],
        "payments-relman-release-freeze"
    );
    assert_eq!(
        binding["spec"]["matchResources"],
        json!({"namespaceSelector": {"matchLabels": {"team": "payments"}}})
    );
    assert_eq!(
        one(&objects, "ValidatingAdmissionPolicy")["metadata"]["name"],
        "payments-relman-release-freeze"
    );

    // Off: none of it.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "releaseFreeze.enabled=false",
            "--set",
            "clusterWide=true",
        ],
    )?;
    assert!(find(&objects, "ValidatingAdmissionPolicy").iter().all(|p| {
        !p["metadata"]["name"]
            .as_str()
            .unwrap()
            .contains("release-freeze")
    }));
    Ok(())
}

#[tokio::test]
async fn release_creator_renders_the_policies_of_config() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    // With the release relman, the chart renders exactly config/release-creator.yaml.
    renders_config(cp, "release-creator")?;

    // Another release's names, both bindings limited to the selected namespaces.
    let objects = template(
        cp,
        "payments",
        "payments-system",
        &[
            "--show-only",
            "templates/release-creator.yaml",
            "--set",
            "releaseCreator.namespaceSelector.matchLabels.team=payments",
            "--set",
            "clusterWide=true",
        ],
    )?;
    for kind in [
        "MutatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicyBinding",
    ] {
        let bindings = find(&objects, kind);
        let expected: &[&str] = if kind == "MutatingAdmissionPolicyBinding" {
            &[
                "payments-relman-release-creator",
                "payments-relman-approver-groups",
            ]
        } else {
            &["payments-relman-release-creator"]
        };
        assert_eq!(bindings.len(), expected.len(), "{kind}");
        for (binding, name) in bindings.iter().zip(expected) {
            assert_eq!(binding["metadata"]["name"], *name);
            assert_eq!(binding["spec"]["policyName"], *name);
            assert_eq!(
                binding["spec"]["matchResources"],
                json!({"namespaceSelector": {"matchLabels": {"team": "payments"}}}),
                "{kind}"
            );
        }
    }

    // Off: none of it.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "releaseCreator.enabled=false",
            "--set",
            "clusterWide=true",
        ],
    )?;
    assert!(find(&objects, "MutatingAdmissionPolicy").is_empty());
    assert!(find(&objects, "ValidatingAdmissionPolicy").iter().all(|p| {
        !p["metadata"]["name"]
            .as_str()
            .unwrap()
            .contains("release-creator")
    }));
    Ok(())
}

#[tokio::test]
async fn the_controller_is_told_the_name_of_the_charts_approval_policy() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let objects = template(
        cp,
        "payments",
        "payments-system",
        &["--set", "clusterWide=true"],
    )?;
    let deployment = one(&objects, "Deployment");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let policy = env
        .iter()
        .find(|e| e["name"] == "RELMAN_APPROVAL_POLICY")
        .expect("RELMAN_APPROVAL_POLICY is set");
    assert_eq!(policy["value"], "payments-relman-approval-identity");
    let identity = find(&objects, "ValidatingAdmissionPolicy")
        .into_iter()
        .any(|p| p["metadata"]["name"] == "payments-relman-approval-identity");
    assert!(
        identity,
        "the policy it names is the one the chart installs"
    );
    Ok(())
}
