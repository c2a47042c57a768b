//! The contract with GitOps tools, checked on real objects: Releases are taken to each state on
//! the local control plane and captured as `kubectl get -o json` would print them (into
//! `target/gitops-fixtures/`), then judged by
//!
//! - the real kstatus library (`sigs.k8s.io/cli-utils/pkg/kstatus/status`, what Flux's `wait` and
//!   `healthChecks` use), through the Go module in `integrations/kstatus`, and
//! - relman's Argo CD health check (`integrations/argocd/health.lua`) run by gopher-lua, the
//!   interpreter Argo CD embeds, in Argo CD's sandbox, through the Go module in
//!   `integrations/argocd`.
//!
//! Each state gets its own namespace and its own namespace-scoped controller; they run at once.
//! Needs Go (the modules come from the Go module proxy on first use, like `integrations/test.sh`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::release::ReleasePhase;
use relman::api::{Release, ReleaseCalendar, ReleaseStatus};
use relman_testenv::ControlPlane;
use serde::Deserialize;
use serde_json::{Value, json};
use support::{ReleaseBuilder, Smoke, deployment_with, start_controller};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(120);
const RELEASE: &str = "web-2-0-0";

/// A captured state and what each tool must say about it.
struct Expectation {
    /// The fixture's name: `target/gitops-fixtures/<state>.json`.
    state: &'static str,
    /// kstatus: Current, InProgress or Failed.
    kstatus: &'static str,
    /// Argo CD: Healthy, Progressing, Suspended or Degraded.
    argocd: &'static str,
}

const EXPECTATIONS: &[Expectation] = &[
    // kstatus has no way to tell that a custom resource without any status will get one: such
    // an object is Current. Flux's `wait` can therefore pass on a Release applied while relman
    // is not running; docs/gitops.md says how to close that gap (healthCheckExprs). The Argo CD
    // health check knows better.
    Expectation {
        state: "not-yet-seen",
        kstatus: "Current",
        argocd: "Progressing",
    },
    Expectation {
        state: "progressing",
        kstatus: "InProgress",
        argocd: "Progressing",
    },
    Expectation {
        state: "awaiting-approval",
        kstatus: "InProgress",
        argocd: "Suspended",
    },
    Expectation {
        state: "awaiting-window",
        kstatus: "InProgress",
        argocd: "Suspended",
    },
    Expectation {
        state: "succeeded",
        kstatus: "Current",
        argocd: "Healthy",
    },
    Expectation {
        state: "spec-not-observed",
        kstatus: "InProgress",
        argocd: "Progressing",
    },
    Expectation {
        state: "rolled-back",
        kstatus: "Failed",
        argocd: "Degraded",
    },
    Expectation {
        state: "stalled",
        kstatus: "Failed",
        argocd: "Degraded",
    },
];

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/gitops-fixtures`, next to the test's own temporary directory.
fn fixtures_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("gitops-fixtures")
}

// ---------------------------------------------------------------------------------------------
// The world each state is captured in

/// Release web-2-0-0 with a staging and a production stage, both smoke tests passing.
fn release() -> ReleaseBuilder {
    support::release("web", "2.0.0")
}

/// One state's namespace: web-staging and web-prod running web:1.0.0, and (once started) a
/// controller scoped to the namespace.
struct World {
    client: kube::Client,
    ns: String,
    releases: Api<Release>,
    controller: Option<JoinHandle<()>>,
}

impl World {
    async fn new(prefix: &str) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        let client = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for name in ["web-staging", "web-prod"] {
            let deployment = deployment_with(
                name,
                "web:1.0.0",
                1,
                json!({"progressDeadlineSeconds": 600}),
            );
            deployments
                .create(&PostParams::default(), &deployment)
                .await?;
        }
        for name in ["web-staging", "web-prod"] {
            wait_available(&deployments, name).await?;
        }
        Ok(Self {
            releases: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            controller: None,
        })
    }

    fn start_controller(&mut self) {
        self.controller = Some(start_controller(&self.client, &self.ns, "test"));
    }

    /// Stops the controller and waits until it is gone: nothing writes the Release after this.
    async fn stop_controller(&mut self) {
        if let Some(handle) = self.controller.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    async fn create(&self, release: &Release) -> anyhow::Result<()> {
        self.releases
            .create(&PostParams::default(), release)
            .await?;
        Ok(())
    }

    /// Waits until the Release's status satisfies `holds` (`what` names it for the error).
    async fn wait(&self, what: &str, holds: impl Fn(&ReleaseStatus) -> bool) -> anyhow::Result<()> {
        let cond = |r: Option<&Release>| r.and_then(|r| r.status.as_ref()).is_some_and(&holds);
        let found =
            tokio::time::timeout(WAIT, await_condition(self.releases.clone(), RELEASE, cond)).await;
        match found {
            Ok(found) => {
                found?;
                Ok(())
            }
            Err(_) => {
                let now = self.releases.get(RELEASE).await?.status;
                anyhow::bail!(
                    "{}: timed out waiting for {what}; status: {now:#?}",
                    self.ns
                )
            }
        }
    }

    async fn wait_phase(&self, phase: ReleasePhase) -> anyhow::Result<()> {
        self.wait(&format!("phase {phase:?}"), |s| s.phase == Some(phase))
            .await
    }

    /// The Release exactly as the API server serves it (what Argo CD and Flux read).
    async fn capture(&self) -> anyhow::Result<Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &ApiResource::erase::<Release>(&()),
        );
        Ok(serde_json::to_value(api.get(RELEASE).await?)?)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(handle) = self.controller.take() {
            handle.abort();
        }
    }
}

async fn wait_available(api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    let available = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let status = d.status.clone().unwrap_or_default();
            d.metadata.generation == status.observed_generation
                && status.available_replicas == d.spec.replicas
                && status.updated_replicas == status.replicas
        })
    };
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, available))
        .await
        .map_err(|_| anyhow::anyhow!("Deployment {name} did not become available"))??;
    Ok(())
}

fn is(status: &ReleaseStatus, type_: &str, value: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == value)
}

// ---------------------------------------------------------------------------------------------
// The states

/// Applied while relman is not running: no status at all.
async fn not_yet_seen() -> anyhow::Result<Value> {
    let world = World::new("gitops-unseen").await?;
    world.create(&release().build()).await?;
    world.capture().await
}

/// Staging's smoke test runs (and never finishes).
async fn progressing() -> anyhow::Result<Value> {
    let mut world = World::new("gitops-progressing").await?;
    world.start_controller();
    world
        .create(&release().staging(Smoke::NeverFinishes).build())
        .await?;
    world
        .wait("staging deployed, smoke test running", |s| {
            s.phase == Some(ReleasePhase::Progressing)
                && is(s, "StagingDeployed", "True")
                && s.stages.iter().any(|st| st.smoke_test.is_some())
        })
        .await?;
    world.capture().await
}

/// Staging verified; production waits for the Release Manager's sign-off.
async fn awaiting_approval() -> anyhow::Result<Value> {
    let mut world = World::new("gitops-approval").await?;
    world.start_controller();
    world
        .create(&release().production_approval().build())
        .await?;
    world.wait_phase(ReleasePhase::AwaitingApproval).await?;
    world.capture().await
}

/// Staging verified; production waits for a deployment window, closed by an emergency stop.
async fn awaiting_window() -> anyhow::Result<Value> {
    let mut world = World::new("gitops-window").await?;
    // Calendars are cluster-scoped: this one is named after the namespace.
    let calendars: Api<ReleaseCalendar> = Api::all(world.client.clone());
    let calendar: ReleaseCalendar = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseCalendar",
        "metadata": {"name": world.ns},
        "spec": {"timeZone": "UTC", "freezes": [
            {"name": "emergency-stop", "reason": "Incident in progress.", "start": "2000-01-01"}
        ]}
    }))?;
    calendars.create(&PostParams::default(), &calendar).await?;
    world.start_controller();
    world
        .create(&release().production_window().calendar(&world.ns).build())
        .await?;
    let waited = world.wait_phase(ReleasePhase::AwaitingWindow).await;
    let captured = world.capture().await;
    calendars
        .delete(&world.ns, &DeleteParams::default())
        .await?;
    waited?;
    captured
}

/// Both stages verified (`Ready=True`); then, with relman stopped, the spec changes: the status
/// describes an older generation.
async fn succeeded_then_changed() -> anyhow::Result<(Value, Value)> {
    let mut world = World::new("gitops-succeeded").await?;
    world.start_controller();
    world.create(&release().build()).await?;
    world.wait("Ready=True", |s| is(s, "Ready", "True")).await?;
    let succeeded = world.capture().await?;

    world.stop_controller().await;
    let patch = json!({"spec": {"notes": {"knownIssues": ["Found after the release."]}}});
    world
        .releases
        .patch(RELEASE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let changed = world.capture().await?;
    anyhow::ensure!(
        changed["metadata"]["generation"] != changed["status"]["observedGeneration"],
        "the spec change is not yet observed: {changed:#}"
    );
    Ok((succeeded, changed))
}

/// Staging's smoke test failed and staging was reverted to its known-good revision.
async fn rolled_back() -> anyhow::Result<Value> {
    let mut world = World::new("gitops-rolledback").await?;
    world.start_controller();
    world
        .create(&release().staging(Smoke::Fails).build())
        .await?;
    world
        .wait("RolledBack=True", |s| {
            s.phase == Some(ReleasePhase::RolledBack) && is(s, "RolledBack", "True")
        })
        .await?;
    world.capture().await
}

/// A stage names a Deployment that does not exist: nothing can happen without a person.
async fn stalled() -> anyhow::Result<Value> {
    let mut world = World::new("gitops-stalled").await?;
    world.start_controller();
    let mut bad = release().build();
    bad.spec.stages[0].deployments[0].0 = "web-typo".into();
    world.create(&bad).await?;
    world
        .wait("Stalled=True", |s| is(s, "Stalled", "True"))
        .await?;
    world.capture().await
}

// ---------------------------------------------------------------------------------------------
// The checkers

/// One line of `go run . -json` in integrations/kstatus or integrations/argocd.
#[derive(Deserialize, Debug)]
struct Verdict {
    file: String,
    status: String,
    #[serde(default)]
    message: String,
}

/// Runs `go run . -json <fixtures>` in `integrations/<module>`; verdicts by state.
async fn go_verdicts(module: &str, fixtures: &Path) -> anyhow::Result<BTreeMap<String, Verdict>> {
    let dir = workspace().join("integrations").join(module);
    let mut command = Command::new("go");
    command
        .current_dir(&dir)
        .args(["run", ".", "-json"])
        .arg(fixtures);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run `go` ({e}): the GitOps checks need a Go toolchain (>= 1.26) on PATH"
            )
        })?;
    anyhow::ensure!(
        output.status.success(),
        "`go run . -json {}` in {} failed:\n{}",
        fixtures.display(),
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut verdicts = BTreeMap::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let verdict: Verdict = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{module}: unexpected output line {line:?}: {e}"))?;
        let state = Path::new(&verdict.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        verdicts.insert(state, verdict);
    }
    Ok(verdicts)
}

#[tokio::test]
async fn kstatus_and_argocd_judge_captured_releases() -> anyhow::Result<()> {
    let states = tokio::try_join!(
        not_yet_seen(),
        progressing(),
        awaiting_approval(),
        awaiting_window(),
        succeeded_then_changed(),
        rolled_back(),
        stalled(),
    )?;
    let (unseen, progressing, approval, window, (released, changed), reverted, stalled) = states;
    let captured = BTreeMap::from([
        ("not-yet-seen", unseen),
        ("progressing", progressing),
        ("awaiting-approval", approval),
        ("awaiting-window", window),
        ("succeeded", released),
        ("spec-not-observed", changed),
        ("rolled-back", reverted),
        ("stalled", stalled),
    ]);
    assert_eq!(captured.len(), EXPECTATIONS.len());

    let dir = fixtures_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for (state, object) in &captured {
        std::fs::write(
            dir.join(format!("{state}.json")),
            serde_json::to_string_pretty(object)? + "\n",
        )?;
    }

    let (kstatus, argocd) =
        tokio::try_join!(go_verdicts("kstatus", &dir), go_verdicts("argocd", &dir))?;

    let mut table = String::new();
    let mut wrong = Vec::new();
    for expected in EXPECTATIONS {
        let state = expected.state;
        let k = kstatus
            .get(state)
            .ok_or_else(|| anyhow::anyhow!("kstatus printed nothing for {state}"))?;
        let a = argocd
            .get(state)
            .ok_or_else(|| anyhow::anyhow!("the Argo CD check printed nothing for {state}"))?;
        writeln!(
            table,
            "{state:<18} kstatus {:<10} {:<60.60} argocd {:<11} {:.60}",
            k.status, k.message, a.status, a.message
        )?;
        if k.status != expected.kstatus {
            wrong.push(format!(
                "{state}: kstatus says {} ({:?}), the contract is {}",
                k.status, k.message, expected.kstatus
            ));
        }
        if a.status != expected.argocd {
            wrong.push(format!(
                "{state}: the Argo CD health check says {} ({:?}), the contract is {}",
                a.status, a.message, expected.argocd
            ));
        }
        if a.message.is_empty() {
            wrong.push(format!(
                "{state}: the Argo CD health check gives no message"
            ));
        }
    }
    println!("{table}");
    for state in ["not-yet-seen", "spec-not-observed"] {
        assert_eq!(
            argocd[state].message, "Waiting for relman",
            "{state}: {:?}",
            argocd[state]
        );
    }
    assert!(
        wrong.is_empty(),
        "verdicts differ from the contract (fixtures in {}):\n{}\n\n{table}",
        dir.display(),
        wrong.join("\n")
    );
    Ok(())
}
