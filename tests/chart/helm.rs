//! helm and kubectl as the tests run them, and what `helm template` renders.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use relman_testenv::ControlPlane;
use serde_json::Value;

pub use crate::support::documents;

pub const CHART: &str = "charts/relman";

pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `helm` from the control plane's binary directory, run from the workspace root, with its
/// state under the target directory instead of the user's home.
pub fn helm(cp: &ControlPlane) -> anyhow::Result<Command> {
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
pub fn run(mut command: Command, stdin: Option<&str>) -> anyhow::Result<String> {
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
pub fn template_text(
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

/// `helm template`, parsed.
pub fn template(
    cp: &ControlPlane,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<Vec<Value>> {
    documents(&template_text(cp, release, namespace, args)?)
}

pub fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// `--set-json` limiting the chart's admission policy bindings to namespace `ns`: the bindings
/// are cluster-wide, and other test binaries share the API server (tests/api.rs creates
/// approvals as the admin on behalf of someone else).
pub fn policy_scoped_to(ns: &str) -> String {
    format!(
        r#"approvalPolicy.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{ns}"}}}}"#
    )
}

pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

/// Server-side applies `yaml` as the admin. Conflicts are forced: the harness installed the
/// same CRDs under its own field manager (from a typed round trip, so their field sets differ
/// slightly), and `chart_crds_are_the_generated_crds` shows the chart's copy is identical.
pub fn apply(cp: &ControlPlane, yaml: &str) -> anyhow::Result<String> {
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
