//! The Helm chart in `charts/relman`: it renders, it installs on the local control plane, and its
//! RBAC is enough for relman and no more — a controller running with the chart's ServiceAccount
//! token takes one release to Ready and reverts another, and the ServiceAccount holds exactly the
//! rules this file lists. Its sign-off admission policies are those of `config/` and are enforced.
//!
//! The policy bindings are cluster-wide and other test binaries share the API server, so every
//! test here that applies the chart binds them to its own namespace or switches them off.
//!
//! helm comes from the same cache as the control plane (`testenv/build.sh` builds it).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseApproval, ReleaseCalendar, ReleaseStatus};
use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::controller::{self, Context};
use relman::leader::{LeaderElectionConfig, LeaderElector, Leadership};
use relman::plan::PlanConfig;
use relman_testenv::{ControlPlane, FAIL_LABEL};
use serde_json::{Value, json};

const CHART: &str = "charts/relman";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// helm

/// `helm` from the control plane's binary directory, run from the workspace root, with its
/// state under the target directory instead of the user's home.
fn helm(cp: &ControlPlane) -> anyhow::Result<Command> {
    let path = cp.bin_dir().join("helm");
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run `bash testenv/build.sh` and point RELMAN_TESTENV_BIN_DIR at the \
         directory it prints last (or unset it)",
        path.display()
    );
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm");
    let mut command = Command::new(path);
    command
        .current_dir(workspace())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    Ok(command)
}

/// Runs `command`; its stdout on success, its stderr as the error otherwise.
fn run(mut command: Command, stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    Ok(stdout)
}

/// `helm template <release> charts/relman --namespace <namespace> <args>`, as YAML text.
fn template_text(
    cp: &ControlPlane,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut command = helm(cp)?;
    command
        .args(["template", release, CHART, "--namespace", namespace])
        .args(args);
    run(command, None)
}

/// The documents of a multi-document YAML stream, empty ones left out.
fn documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// `helm template`, parsed.
fn template(
    cp: &ControlPlane,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<Vec<Value>> {
    documents(&template_text(cp, release, namespace, args)?)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// `--set-json` limiting the chart's admission policy bindings to namespace `ns`: the bindings
/// are cluster-wide, and other test binaries share the API server (tests/api.rs creates
/// approvals as the admin on behalf of someone else).
fn policy_scoped_to(ns: &str) -> String {
    format!(
        r#"approvalPolicy.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{ns}"}}}}"#
    )
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

/// Server-side applies `yaml` as the admin. Conflicts are forced: the harness installed the
/// same CRDs under its own field manager (from a typed round trip, so their field sets differ
/// slightly), and `chart_crds_are_the_generated_crds` shows the chart's copy is identical.
fn apply(cp: &ControlPlane, yaml: &str) -> anyhow::Result<String> {
    let mut kubectl = cp.kubectl();
    kubectl.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=relman-chart-test",
        "-f",
        "-",
    ]);
    run(kubectl, Some(yaml))
}

// ---------------------------------------------------------------------------------------------
// Rendering

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
fn json_differences(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
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
    let objects = template(cp, "relman", "relman-system", &[])?;

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
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http-metrics");
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
            "{unset}: every namespace and calendar by default"
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

    // The options: a ServiceMonitor, one namespace, extra rules for condition gates.
    let objects = template(
        cp,
        "relman",
        "relman-system",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "watchNamespace=apps",
            "--set",
            "calendarSelector=team=apps",
            "--set",
            "rbac.stageNamespaces={apps-prod}",
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
        ("RELMAN_NAMESPACE", "apps"),
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
            "namespaces",
            "pipelineruns"
        ]),
        "with watchNamespace, only cluster-scoped kinds and gate kinds are cluster-wide"
    );
    let namespaces = cluster_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"] == json!(["namespaces"]))
        .unwrap();
    assert_eq!(
        (&namespaces["verbs"], &namespaces["resourceNames"]),
        (&json!(["get"]), &json!(["apps-prod"])),
        "with watchNamespace, relman reads only the stage namespaces' Namespace objects"
    );
    let role_namespaces: BTreeSet<&str> = find(&objects, "Role")
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(
        role_namespaces,
        BTreeSet::from(["apps", "apps-prod", "relman-system"]),
        "Roles in the watched and stage namespaces, the leader-election Role in the release's"
    );
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
    let objects = template(cp, "relman", "relman-system", &[])?;
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
            "--set",
            "approvalPolicy.signoff.group=release-managers",
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
            "approvalPolicy.enabled=false",
            "--set",
            "approvalPolicy.signoff.group=release-managers",
        ],
    )?;
    for kind in kinds.into_iter().chain(["ConfigMap"]) {
        assert!(find(&objects, kind).is_empty(), "{kind} with enabled=false");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Installing

#[tokio::test]
async fn chart_installs_on_the_control_plane() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("chart-install").await?.name().to_owned();
    // The release is named after the namespace so that its cluster-scoped objects are unique.
    let scope = policy_scoped_to(&ns);
    let manifests = template_text(cp, &ns, &ns, &["--include-crds", "--set-json", &scope])?;
    let objects = documents(&manifests)?;
    assert_eq!(
        find(&objects, "CustomResourceDefinition").len(),
        3,
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
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseApproval",
        "metadata": {"name": name},
        "spec": {
            "release": "web-2-0-0",
            "version": "2.0.0",
            "gate": gate,
            "decision": "Approved",
            "approver": approver,
            "comment": "Staging verified."
        }
    }))
    .expect("valid ReleaseApproval")
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
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for (probe, rejection) in [
        (
            approval("probe", "acceptance-criteria", "nobody"),
            "must be your own user name",
        ),
        (
            approval("probe", "production", relman_testenv::ADMIN_USER),
            "only members of group",
        ),
    ] {
        loop {
            match approvals.create(&dry_run, &probe).await {
                Err(kube::Error::Api(e)) if e.message.contains(rejection) => break,
                other => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the chart's admission policy is not enforced after 60s: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

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
    helm_on_cluster(&[
        "install",
        &ns,
        CHART,
        "--skip-crds",
        "--set",
        "approvalPolicy.enabled=false",
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

// ---------------------------------------------------------------------------------------------
// RBAC: enough and no more

/// Installs the chart's ServiceAccount and RBAC objects (release and namespace `ns`) and returns
/// a client authenticated as that ServiceAccount with a TokenRequest token.
async fn install_rbac(cp: &ControlPlane, ns: &str, args: &[&str]) -> anyhow::Result<kube::Client> {
    let mut all = vec![
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ];
    all.extend_from_slice(args);
    let manifests = template_text(cp, ns, ns, &all)?;
    apply(cp, &manifests)?;
    service_account_client(cp, ns, &format!("{ns}-relman")).await
}

/// A client for ServiceAccount `namespace/name`: a bearer token from the TokenRequest API, the
/// admin's server URL and CA, no client certificate.
async fn service_account_client(
    cp: &ControlPlane,
    namespace: &str,
    name: &str,
) -> anyhow::Result<kube::Client> {
    let admin = cp.client().await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    }))?;
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    let token = issued
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow::anyhow!("the TokenRequest for {namespace}/{name} has no status"))?;
    let mut config = cp.config().clone();
    config.auth_info = serde_json::from_value(json!({ "token": token }))?;
    Ok(kube::Client::try_from(config)?)
}

/// (API group, resource, verb, resource name) — an empty name means any object.
type Grant = (String, String, String, String);
type Grants = BTreeSet<Grant>;

fn grant(group: &str, resource: &str, verb: &str, name: &str) -> Grant {
    (group.into(), resource.into(), verb.into(), name.into())
}

/// Grants on any object of each resource.
fn grants(rules: &[(&str, &str, &[&str])]) -> Grants {
    rules
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.iter().map(|verb| grant(group, resource, verb, ""))
        })
        .collect()
}

/// What every authenticated user may do: ask what it may do (system:basic-user) and read
/// ClusterTrustBundles (system:cluster-trust-bundle-discovery).
fn default_grants() -> Grants {
    grants(&[
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            &["create"],
        ),
        (
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            &["create"],
        ),
        ("authentication.k8s.io", "selfsubjectreviews", &["create"]),
        (
            "certificates.k8s.io",
            "clustertrustbundles",
            &["get", "list", "watch"],
        ),
    ])
}

/// What relman needs where it reconciles Releases — each line is an API call in src/.
fn release_grants() -> Grants {
    grants(&[
        ("relman.io", "releases", &["get", "list", "watch"]),
        ("relman.io", "releases/status", &["patch"]),
        ("relman.io", "releaseapprovals", &["list", "watch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "configmaps", &["get", "create", "patch"]),
        ("", "secrets", &["get"]),
    ])
}

/// What relman needs where a stage deploys.
fn workload_grants() -> Grants {
    grants(&[
        ("apps", "deployments", &["get", "list", "watch", "patch"]),
        ("batch", "jobs", &["list", "watch", "create"]),
        ("", "pods", &["list"]),
    ])
}

/// Cluster-scoped, without watchNamespace: read any Namespace, for the consent of a stage
/// namespace other than its Release's (`relman.io/accept-releases-from`).
fn namespace_grants() -> Grants {
    grants(&[("", "namespaces", &["get"])])
}

/// Cluster-scoped: the calendars, and their status.
fn cluster_grants() -> Grants {
    grants(&[
        ("relman.io", "releasecalendars", &["get", "list", "watch"]),
        ("relman.io", "releasecalendars/status", &["patch"]),
    ])
}

/// Leader election, in the namespace relman runs in: create a Lease, then only its own, `lease`.
fn lease_grants(lease: &str) -> Grants {
    let group = "coordination.k8s.io";
    Grants::from([
        grant(group, "leases", "create", ""),
        grant(group, "leases", "get", lease),
        grant(group, "leases", "update", lease),
    ])
}

/// Fails, naming the differences, unless `actual` equals `expected`.
fn assert_grants(actual: &Grants, expected: &Grants, context: &str) {
    let extra: Vec<_> = actual.difference(expected).collect();
    let missing: Vec<_> = expected.difference(actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{context}: granted but not expected: {extra:?}; expected but not granted: {missing:?}"
    );
}

/// Everything `client` may do in `namespace`, per SelfSubjectRulesReview.
async fn granted(client: &kube::Client, namespace: &str) -> anyhow::Result<Grants> {
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review: SelfSubjectRulesReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace}
    }))?;
    let status = api
        .create(&PostParams::default(), &review)
        .await?
        .status
        .ok_or_else(|| anyhow::anyhow!("SelfSubjectRulesReview without status"))?;
    anyhow::ensure!(!status.incomplete, "incomplete rules: {status:?}");
    let mut out = Grants::new();
    for rule in status.resource_rules {
        let names = match rule.resource_names {
            Some(names) if !names.is_empty() => names,
            _ => vec![String::new()],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        out.insert(grant(group, resource, verb, name));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Asks the API server whether `client` may `verb` `resource` (of `group`) in `namespace`
/// (`None`: in every namespace, or a cluster-scoped resource), on the object `name` if given.
async fn allowed(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "namespace": namespace, "name": name
        }}
    }))?;
    let created = api.create(&PostParams::default(), &review).await?;
    Ok(created.status.is_some_and(|s| s.allowed))
}

/// Denied API calls (403) that the code running on one test's thread logged: a controller
/// that lacks a permission retries and logs, so an empty list shows the RBAC was enough.
/// `#[tokio::test]` runs each test's tasks on its own thread.
#[derive(Clone, Default)]
struct Denials(Arc<Mutex<Vec<(ThreadId, String)>>>);

static DENIALS: std::sync::OnceLock<Denials> = std::sync::OnceLock::new();

impl Denials {
    /// The process-wide recorder, installed as the global tracing subscriber on first use.
    fn install() -> Denials {
        static INSTALL: Once = Once::new();
        let denials = DENIALS.get_or_init(Denials::default).clone();
        INSTALL.call_once(|| {
            use tracing_subscriber::prelude::*;
            let verbose = std::env::var("RELMAN_LOG").ok().map(|filter| {
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(tracing_subscriber::EnvFilter::new(filter))
            });
            let _ = tracing_subscriber::registry()
                .with(denials.clone())
                .with(verbose)
                .try_init();
        });
        denials
    }

    /// `result`, with the denials logged on this thread added to its error: a controller that
    /// lacks a permission usually shows as a release that never finishes.
    fn explain<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| {
            let denied = self.on_this_thread();
            if denied.is_empty() {
                e
            } else {
                e.context(format!("API calls were denied:\n{}", denied.join("\n")))
            }
        })
    }

    /// The distinct denials logged on the current thread.
    fn on_this_thread(&self) -> Vec<String> {
        let me = std::thread::current().id();
        let distinct: BTreeSet<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(thread, _)| *thread == me)
            .map(|(_, text)| text.clone())
            .collect();
        distinct.into_iter().collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Denials {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let lower = text.0.to_ascii_lowercase();
        if lower.contains("forbidden") || lower.contains("403") {
            self.0
                .lock()
                .unwrap()
                .push((std::thread::current().id(), text.0));
        }
    }
}

/// The label that ties a test's calendar to the test's calendar controller.
const CALENDAR_LABEL: &str = "relman.io/test-namespace";

/// Starts what `relman` runs — the Release controller and the calendar controller — for
/// `namespace` with `client` (the ServiceAccount's). They stop when the test ends.
fn start_relman(client: kube::Client, namespace: &str) {
    let calendars = CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespace: Some(namespace.to_owned()),
            calendar_selector: Some(format!("{CALENDAR_LABEL}={namespace}")),
        },
    );
    tokio::spawn(calendars.run(std::future::pending()));
    let ctx = Arc::new(Context::new(
        client,
        Some("chart-test".into()),
        PlanConfig::default(),
    ));
    tokio::spawn(controller::run(
        ctx,
        Some(namespace.to_owned()),
        std::future::pending(),
    ));
}

/// Creates the test's ReleaseCalendar (named after the namespace), with a window open now.
async fn create_open_calendar(admin: &kube::Client, ns: &str) -> anyhow::Result<()> {
    let start = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let calendar: ReleaseCalendar = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseCalendar",
        "metadata": {"name": ns, "labels": {CALENDAR_LABEL: ns}},
        "spec": {"timeZone": "UTC", "windows": [
            {"name": "today", "rrule": "FREQ=DAILY;COUNT=1", "start": start.to_string(), "duration": "24h"}
        ]}
    }))?;
    Api::<ReleaseCalendar>::all(admin.clone())
        .create(&PostParams::default(), &calendar)
        .await?;
    Ok(())
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

fn smoke(fail: bool) -> Value {
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

/// A Release of `application` 2.0.0 (Major) through `<application>-staging` and
/// `<application>-prod`; production waits for the window of `calendar`.
fn release(application: &str, calendar: &str, production_smoke_fails: bool) -> Release {
    release_version(
        application,
        "2.0.0",
        "Major",
        calendar,
        production_smoke_fails,
    )
}

/// [`release`] of another version.
fn release_version(
    application: &str,
    version: &str,
    release_type: &str,
    calendar: &str,
    production_smoke_fails: bool,
) -> Release {
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": format!("{application}-{}", version.replace('.', "-"))},
        "spec": {
            "application": application,
            "version": version,
            "type": release_type,
            "owner": "team-web",
            "calendar": calendar,
            "rollbackPlan": "revert to 1.0.0",
            "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
            "images": [{"container": "api", "image": format!("{application}:{version}")}],
            "stages": [
                {"name": "staging", "deployments": [format!("{application}-staging")], "smokeTest": smoke(false)},
                {"name": "production", "deployments": [format!("{application}-prod")], "window": true,
                 "smokeTest": smoke(production_smoke_fails)}
            ]
        }
    }))
    .expect("valid Release")
}

/// Creates web 3.0.0 whose staging deploys to `elsewhere`, a namespace that has not accepted
/// Releases of the test's namespace, and waits until it is Stalled with NamespaceNotPermitted.
async fn stage_elsewhere_stalls(releases: &Api<Release>, elsewhere: &str) -> anyhow::Result<()> {
    let ns = releases.namespace().unwrap_or_default().to_owned();
    let mut release = release_version("web", "3.0.0", "Major", &ns, false);
    release.spec.stages[0].namespace = Some(elsewhere.to_owned());
    releases.create(&PostParams::default(), &release).await?;
    let status = wait_condition(releases, "web-3-0-0", "Stalled", "True").await?;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .ok_or_else(|| anyhow::anyhow!("no Stalled condition"))?;
    anyhow::ensure!(
        stalled.reason == "NamespaceNotPermitted"
            && stalled.message.contains("spec.stages[0].namespace"),
        "{stalled:?}"
    );
    Ok(())
}

/// Creates `<application>-staging` and `<application>-prod` on 1.0.0 (as the admin) and waits
/// until they are available.
async fn create_deployments(
    admin: &kube::Client,
    ns: &str,
    application: &str,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    for stage in ["staging", "prod"] {
        let name = format!("{application}-{stage}");
        deployments
            .create(
                &PostParams::default(),
                &deployment(&name, &format!("{application}:1.0.0")),
            )
            .await?;
        let available = |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.conditions.iter().flatten().any(|c| {
                    c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
                }) && s.updated_replicas == s.replicas
            })
        };
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(deployments.clone(), &name, available),
        )
        .await??;
    }
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
    let waited = tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(api.clone(), name, holds),
    )
    .await;
    let Ok(found) = waited else {
        // Say where the release stopped.
        let last = api.get_opt(name).await?.and_then(|r| r.status);
        let summary: Vec<String> = last
            .iter()
            .flat_map(|s| &s.conditions)
            .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
            .collect();
        anyhow::bail!(
            "timed out waiting for {type_}={status} on {name}; phase {:?}, conditions:\n{}",
            last.as_ref().and_then(|s| s.phase),
            summary.join("\n")
        );
    };
    Ok(found?.and_then(|r| r.status).unwrap_or_default())
}

fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Events relman recorded about the Release `name`.
async fn events_about(admin: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reporting_controller.as_deref() == Some("relman")
        })
        .collect())
}

#[tokio::test]
async fn chart_rbac_is_enough_for_a_release_and_a_revert() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-rbac").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;
    create_deployments(&admin, &ns, "web").await?;
    create_deployments(&admin, &ns, "api").await?;
    create_open_calendar(&admin, &ns).await?;
    start_relman(relman, &ns);

    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    releases
        .create(&PostParams::default(), &release("web", &ns, false))
        .await?;
    releases
        .create(&PostParams::default(), &release("api", &ns, true))
        .await?;

    // The good release reaches Ready through both stages.
    let status = denials.explain(wait_condition(&releases, "web-2-0-0", "Ready", "True").await)?;
    for gate in [
        "RequirementsMet",
        "StagingDeployed",
        "StagingVerified",
        "WindowOpen",
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
    // The bad one (production verification fails) is rolled back.
    let status =
        denials.explain(wait_condition(&releases, "api-2-0-0", "RolledBack", "True").await)?;
    assert_eq!(
        status.phase,
        Some(relman::api::release::ReleasePhase::RolledBack),
        "{status:#?}"
    );

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    // (A verified staging keeps the release it verified; production is reverted.)
    for (name, image) in [
        ("web-staging", "web:2.0.0"),
        ("web-prod", "web:2.0.0"),
        ("api-prod", "api:1.0.0"),
    ] {
        let ok = |d: Option<&Deployment>| d.is_some_and(|d| image_of(d) == image);
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(deployments.clone(), name, ok),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{name} does not run {image}"))??;
    }
    for name in ["web-2-0-0", "api-2-0-0"] {
        assert!(
            !events_about(&admin, &ns, name).await?.is_empty(),
            "relman recorded Events on {name} with the chart's RBAC"
        );
    }
    // The next release of web takes over Deployments that web-2-0-0 drove: relman reads that
    // Release to see it has finished.
    releases
        .create(
            &PostParams::default(),
            &release_version("web", "2.1.0", "Minor", &ns, false),
        )
        .await?;
    denials.explain(wait_condition(&releases, "web-2-1-0", "Ready", "True").await)?;
    // The calendar controller wrote the calendar's status, listing both releases' outcomes.
    let calendars: Api<ReleaseCalendar> = Api::all(admin.clone());
    let listed = |c: Option<&ReleaseCalendar>| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.open == Some(true)
                && ["web-2-0-0", "api-2-0-0"].iter().all(|name| {
                    s.releases.iter().any(|r| {
                        r.release.as_deref().is_some_and(|r| r.ends_with(name))
                            && r.phase
                                .as_deref()
                                .is_some_and(|p| p == "Succeeded" || p == "RolledBack")
                    })
                })
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(calendars, &ns, listed),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the calendar's status does not list both finished releases"))??;
    // A stage in another namespace: relman reads that Namespace (get) and, without its consent,
    // stalls the release.
    let elsewhere = cp
        .test_namespace("chart-rbac-stage")
        .await?
        .name()
        .to_owned();
    denials.explain(stage_elsewhere_stalls(&releases, &elsewhere).await)?;
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "the controller was denied API calls with the chart's RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn chart_rbac_grants_nothing_more() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-least").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;

    // Exactly these rules, in its own namespace (cluster-wide ones plus the lease Role) ...
    let mut expected = default_grants();
    expected.extend(release_grants());
    expected.extend(workload_grants());
    expected.extend(cluster_grants());
    expected.extend(namespace_grants());
    let lease = format!("{ns}-relman");
    expected.extend(lease_grants(&lease));
    assert_grants(&granted(&relman, &ns).await?, &expected, "in its namespace");
    // ... and in any other namespace, the same without leases.
    let other = cp.test_namespace("chart-other").await?.name().to_owned();
    let mut elsewhere = expected.clone();
    for grant in lease_grants(&lease) {
        elsewhere.remove(&grant);
    }
    assert_grants(&granted(&relman, &other).await?, &elsewhere, "elsewhere");

    // Spelled out, the things relman must never be able to do.
    let someone_elses_lease = allowed(
        &relman,
        "update",
        "coordination.k8s.io",
        "leases",
        Some(&ns),
        Some("kube-scheduler"),
    );
    assert!(
        !someone_elses_lease.await?,
        "relman may update another Lease"
    );
    for (verb, group, resource, namespace) in [
        ("delete", "apps", "deployments", Some(ns.as_str())),
        ("update", "apps", "deployments", Some(ns.as_str())),
        ("create", "apps", "deployments", Some(ns.as_str())),
        ("list", "", "secrets", None),
        ("list", "", "secrets", Some(ns.as_str())),
        ("watch", "", "secrets", Some(ns.as_str())),
        ("create", "relman.io", "releases", Some(ns.as_str())),
        ("patch", "relman.io", "releases", Some(ns.as_str())),
        ("delete", "relman.io", "releases", Some(ns.as_str())),
        ("create", "relman.io", "releaseapprovals", Some(ns.as_str())),
        ("patch", "relman.io", "releasecalendars", None),
        ("create", "relman.io", "releasecalendars", None),
        ("delete", "batch", "jobs", Some(ns.as_str())),
        ("list", "", "configmaps", Some(ns.as_str())),
        ("delete", "", "configmaps", Some(ns.as_str())),
        ("create", "", "pods", Some(ns.as_str())),
        ("delete", "", "pods", Some(ns.as_str())),
        (
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some(ns.as_str()),
        ),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
        ),
        ("impersonate", "", "serviceaccounts", None),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some(other.as_str()),
        ),
        // relman must never give itself a namespace's consent, nor list namespaces.
        ("patch", "", "namespaces", None),
        ("update", "", "namespaces", None),
        ("list", "", "namespaces", None),
        ("watch", "", "namespaces", None),
    ] {
        assert!(
            !allowed(&relman, verb, group, resource, namespace, None).await?,
            "relman's ServiceAccount may {verb} {group}/{resource} in {namespace:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn namespaced_chart_rbac_is_enough_in_the_watched_namespace_only() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-ns").await?.name().to_owned();
    let stage_ns = cp.test_namespace("chart-ns-stage").await?.name().to_owned();
    let relman = install_rbac(
        cp,
        &ns,
        &[
            "--set",
            &format!("watchNamespace={ns}"),
            "--set",
            &format!("rbac.stageNamespaces={{{stage_ns}}}"),
        ],
    )
    .await?;

    // The Releases' namespace has the namespaced rules, the stage namespace the workload rules;
    // any other only the cluster-scoped ones, which read only the stage namespace's Namespace.
    let stage_namespace = Grants::from([grant("", "namespaces", "get", &stage_ns)]);
    let mut expected = default_grants();
    expected.extend(release_grants());
    expected.extend(workload_grants());
    expected.extend(cluster_grants());
    expected.extend(stage_namespace.clone());
    expected.extend(lease_grants(&format!("{ns}-relman")));
    assert_grants(
        &granted(&relman, &ns).await?,
        &expected,
        "in the watched namespace",
    );
    let mut in_stage = default_grants();
    in_stage.extend(workload_grants());
    in_stage.extend(cluster_grants());
    in_stage.extend(stage_namespace.clone());
    assert_grants(
        &granted(&relman, &stage_ns).await?,
        &in_stage,
        "in the stage namespace",
    );
    let other = cp.test_namespace("chart-ns-other").await?.name().to_owned();
    let mut elsewhere = default_grants();
    elsewhere.extend(cluster_grants());
    elsewhere.extend(stage_namespace);
    assert_grants(&granted(&relman, &other).await?, &elsewhere, "elsewhere");
    assert!(
        !allowed(&relman, "get", "", "namespaces", None, Some(&other)).await?,
        "relman may read Namespace {other}, which no stage names"
    );

    create_deployments(&admin, &ns, "web").await?;
    create_open_calendar(&admin, &ns).await?;
    start_relman(relman, &ns);
    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    releases
        .create(&PostParams::default(), &release("web", &ns, false))
        .await?;
    denials.explain(wait_condition(&releases, "web-2-0-0", "Ready", "True").await)?;
    // The stage namespace's Namespace is readable by name: a release there without its consent
    // stalls (a refused read would fail the reconcile instead).
    denials.explain(stage_elsewhere_stalls(&releases, &stage_ns).await)?;
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "the controller was denied API calls with the namespaced RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn chart_rbac_is_enough_for_leader_election() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-lease").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;
    // The chart's Lease name (RELMAN_LEADER_ELECTION_LEASE is the full name), short timings.
    let elector = |identity: &str| -> anyhow::Result<(LeaderElector, Leadership)> {
        let config = LeaderElectionConfig::new(format!("{ns}-relman"), &ns, identity)
            .with_timings(
                Duration::from_secs(4),
                Duration::from_secs(3),
                Duration::from_millis(500),
                Duration::from_millis(250),
            )?;
        Ok(LeaderElector::new(relman.clone(), config))
    };

    // The first replica creates the Lease and keeps renewing it (update) ...
    let (first, first_leads) = elector("replica-a")?;
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(first.run(async {
        let _ = first_stopped.await;
    }));
    denials.explain(
        tokio::time::timeout(Duration::from_secs(20), first_leads.wait_until_leader())
            .await
            .map_err(|_| anyhow::anyhow!("the first replica did not become the leader")),
    )?;
    let (second, second_leads) = elector("replica-b")?;
    let second = tokio::spawn(second.run(std::future::pending()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first_leads.is_leader(), "the holder renewed the Lease");
    assert!(!second_leads.is_leader(), "one leader at a time");

    // ... and when it stops, it frees the Lease and the second replica takes it (get, update).
    let _ = stop_first.send(());
    first.await?;
    denials.explain(
        tokio::time::timeout(Duration::from_secs(20), second_leads.wait_until_leader())
            .await
            .map_err(|_| anyhow::anyhow!("the second replica did not take over")),
    )?;
    second.abort();
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "leader election was denied API calls with the chart's RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_stage_namespace_where_relman_may_not_create_jobs_stalls_as_forbidden_until_granted()
-> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-403").await?.name().to_owned();
    let stage_ns = cp
        .test_namespace("chart-403-stage")
        .await?
        .name()
        .to_owned();
    let relman = install_rbac(
        cp,
        &ns,
        &[
            "--set",
            &format!("watchNamespace={ns}"),
            "--set",
            &format!("rbac.stageNamespaces={{{stage_ns}}}"),
        ],
    )
    .await?;
    create_deployments(&admin, &stage_ns, "web").await?;
    create_open_calendar(&admin, &ns).await?;
    let consent = json!({"metadata": {"annotations": {"relman.io/accept-releases-from": ns}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .patch(
            &stage_ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&consent),
        )
        .await?;
    // The stage namespace's owner (or a slip in the RBAC) takes away relman's create on Jobs.
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(admin.clone(), &stage_ns);
    let set_job_verbs = |verbs: &'static [&'static str]| {
        let roles = roles.clone();
        async move {
            for mut role in roles.list(&Default::default()).await?.items {
                let mut changed = false;
                for rule in role.rules.iter_mut().flatten() {
                    if rule.resources.iter().flatten().any(|r| r == "jobs") {
                        rule.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
                        changed = true;
                    }
                }
                if changed {
                    let name = role.metadata.name.clone().unwrap_or_default();
                    role.metadata.managed_fields = None;
                    roles.replace(&name, &PostParams::default(), &role).await?;
                }
            }
            anyhow::Ok(())
        }
    };
    set_job_verbs(&["list", "watch"]).await?;
    start_relman(relman, &ns);

    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    let mut release = release_version("web", "2.0.0", "Major", &ns, false);
    for stage in &mut release.spec.stages {
        stage.namespace = Some(stage_ns.clone());
    }
    releases.create(&PostParams::default(), &release).await?;
    let status = wait_condition(&releases, "web-2-0-0", "Stalled", "True").await?;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .ok_or_else(|| anyhow::anyhow!("no Stalled condition"))?;
    assert_eq!(stalled.reason, "Forbidden", "{stalled:?}");
    assert!(
        stalled.message.contains("cannot create resource \"jobs\"")
            && stalled.message.contains(&stage_ns),
        "the refusal names the verb, the resource and the namespace: {}",
        stalled.message
    );
    // The Event is recorded just after the status it goes with.
    let warned = |events: &[Event]| {
        events.iter().any(|e| {
            e.reason.as_deref() == Some("Forbidden") && e.type_.as_deref() == Some("Warning")
        })
    };
    let mut events = Vec::new();
    for _ in 0..50 {
        events = events_about(&admin, &ns, "web-2-0-0").await?;
        if warned(&events) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(warned(&events), "a Warning Event says why: {events:#?}");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &stage_ns);
    assert_eq!(
        image_of(&deployments.get("web-staging").await?),
        "web:1.0.0",
        "nothing changed"
    );

    // Granted again: the release goes on by itself (it looks again every minute). (A
    // controller limited to its own namespace does not watch the stage namespace, so this test
    // stops at the first step after the stall.)
    set_job_verbs(&["list", "watch", "create"]).await?;
    let status = wait_condition(&releases, "web-2-0-0", "Stalled", "False").await?;
    assert!(
        status.stages[0]
            .phase
            .is_some_and(|p| p != relman::api::release::StagePhase::Pending),
        "staging started: {status:#?}"
    );
    Ok(())
}
