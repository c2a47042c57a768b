//! The floor: the same Releases taken through the same steps by a minimal client, with relman
//! not running.
//!
//! One task per Release makes relman's writes in relman's order, with relman's own write
//! functions (`relman::k8s`): a status write before each step, the image rollout (server-side
//! apply, after one GET, as relman does it), the smoke Job, the known-good annotations, and the
//! final status. It reads nothing: it waits on the benchmark's watches for the rollout, the Job
//! and the sign-off. The difference between relman's figures and these is relman's own cost
//! (its reads, its planning, its queue); what remains is the API server, the Deployment and
//! Job controllers and kwok.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use relman::api::Release;
use relman::k8s::deployment::Driver;
use relman::plan::JobKind;
use relman::plan::jobs::build_job;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Args;
use crate::audit::{self, PerUnit};
use crate::cluster::Cluster;
use crate::process::round2;
use crate::stats::Percentiles;
use crate::tracker::{GateKind, Key, Progress, Tracker};
use crate::workload::{self, App, NEW_IMAGE, STAGES};
use relman::api::labels::FIELD_MANAGER;

/// The minimal client's user.
pub const USER: &str = "relman-floor";

/// The floor's figures.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct FloorResult {
    /// Releases driven.
    pub releases: usize,
    /// Seconds from the first create to the last Release Ready.
    pub all_ready_seconds: f64,
    /// The minimal client's reaction latency, every gate.
    pub reaction: Percentiles,
    /// By the kind of gate.
    pub reaction_by_gate: BTreeMap<GateKind, Percentiles>,
    /// Gate events seen only after the client had answered them.
    pub reaction_late: usize,
    /// The client's API requests per Release (audit log).
    pub requests_per_release: Option<PerUnit>,
    /// Load averages when the Releases were created and when the last was Ready.
    pub load: [Option<[f64; 3]>; 2],
}

/// Runs the floor with the first of `args.sizes` Releases.
pub async fn run(args: &Args) -> anyhow::Result<FloorResult> {
    let n = args.lifecycle_size();
    tracing::info!(releases = n, "floor: starting a control plane");
    let cluster = Cluster::start("floor", args.namespaces).await?;
    let apps: Vec<App> = (0..n)
        .map(|i| App::nth("app", i, &cluster.namespaces))
        .collect();
    workload::create_deployments(&cluster.admin, &apps, 1, args.concurrency).await?;
    workload::wait_deployments_available(&cluster.admin, 2 * n, args.timeout()).await?;
    let tracker = Arc::new(Tracker::start(&cluster.admin, true));
    let client = cluster
        .control_plane
        .user_client(USER, &["system:masters"])
        .await?;
    let load_start = crate::machine::load_average();

    tracing::info!(releases = n, "floor: creating and driving the Releases");
    let from = Utc::now();
    let started = Instant::now();
    workload::create_releases(&cluster.admin, &apps, false, args.concurrency).await?;
    let drivers = futures::future::try_join_all(apps.iter().cloned().map(|app| {
        let (client, tracker, timeout) = (client.clone(), tracker.clone(), args.timeout());
        let driver = tokio::spawn(async move { drive(&client, &tracker, &app, timeout).await });
        async move { driver.await? }
    }));
    // A driver that fails ends the phase at once, with its error.
    let ((), _) = tokio::try_join!(
        tracker.wait_ready(n, args.timeout(), |ready| {
            tracing::info!(ready, of = n, "floor: waiting for Ready");
        }),
        drivers
    )?;
    let all_ready_seconds = started.elapsed().as_secs_f64();
    let load_end = crate::machine::load_average();
    let to = Utc::now();
    let reactions = tracker.reactions();
    let every: Vec<Duration> = reactions.samples.values().flatten().copied().collect();
    let requests = audit::count(USER, from, to)?;
    Ok(FloorResult {
        releases: n,
        all_ready_seconds: round2(all_ready_seconds),
        reaction: Percentiles::of(&every),
        reaction_by_gate: reactions
            .samples
            .iter()
            .map(|(kind, s)| (*kind, Percentiles::of(s)))
            .collect(),
        reaction_late: reactions.late,
        requests_per_release: requests.map(|r| r.per(n as f64)),
        load: [load_start, load_end],
    })
}

/// Takes `app`'s Release through both stages.
async fn drive(
    client: &kube::Client,
    tracker: &Tracker,
    app: &App,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (ns, name) = (app.namespace.as_str(), app.release_name());
    let key: Key = (ns.to_owned(), name.clone());
    // The Release as relman would know it from its watch: with its namespace and uid (the
    // Jobs' labels and owner reference carry them).
    let mut release = app.release(false)?;
    let seen = tracker
        .wait_for(&key, timeout, "Release in the watch", |p| p.uid.is_some())
        .await?;
    release.metadata.namespace = Some(ns.to_owned());
    release.metadata.uid = seen.uid;
    let releases: Api<Release> = Api::namespaced(client.clone(), ns);
    let images = BTreeMap::from([("api".to_owned(), NEW_IMAGE.to_owned())]);
    let driver = Driver {
        namespace: ns,
        name: &name,
    };
    let mut stages = vec![json!({"name": "staging", "phase": "Pending"}); STAGES.len()];
    for (stage_status, (stage, _)) in stages.iter_mut().zip(STAGES) {
        stage_status["name"] = json!(stage);
    }
    for (index, (stage, suffix)) in STAGES.iter().enumerate() {
        let stage = *stage;
        let deployment = app.deployment_name(suffix);
        if index > 0 {
            write_status(&releases, &name, "AwaitingApproval", &stages, false).await?;
            let approved = |p: &Progress| p.approvals_seen.contains(stage);
            tracker
                .wait_for(&key, timeout, "sign-off", approved)
                .await?;
        }
        // Capture the known-good state, then roll out.
        stages[index]["phase"] = json!("RollingOut");
        write_status(&releases, &name, "Progressing", &stages, false).await?;
        relman::k8s::deployment::roll_out(client, ns, &deployment, &images, &driver)
            .await
            .map_err(|e| anyhow::anyhow!("roll out {ns}/{deployment}: {e}"))?;
        let rolled_out = |p: &Progress| p.rollouts_done.contains(stage);
        tracker
            .wait_for(&key, timeout, "complete rollout", rolled_out)
            .await?;
        // Deployed: run the smoke test.
        stages[index]["phase"] = json!("Verifying");
        write_status(&releases, &name, "Progressing", &stages, false).await?;
        let template = release.spec.stages[index]
            .smoke_test
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("stage {stage} has no smoke test"))?
            .template
            .get();
        let job = build_job(&release, stage, ns, JobKind::SmokeTest, 1, &template);
        relman::k8s::job::create_job(client, ns, &job).await?;
        let job_done = |p: &Progress| p.jobs_done.contains(stage);
        tracker
            .wait_for(&key, timeout, "completed smoke Job", job_done)
            .await?;
        // Passed: record it, mark the revision known-good, verified.
        stages[index]["smokeTest"] = json!({"name": job.metadata.name, "result": "Succeeded"});
        write_status(&releases, &name, "Progressing", &stages, false).await?;
        let annotations = BTreeMap::from([
            ("relman.io/known-good-release".to_owned(), name.clone()),
            ("relman.io/known-good-revision".to_owned(), "2".to_owned()),
        ]);
        relman::k8s::deployment::mark_known_good(client, ns, &deployment, &annotations).await?;
        stages[index]["phase"] = json!("Verified");
        let last = index + 1 == STAGES.len();
        let phase = if last { "Succeeded" } else { "Progressing" };
        write_status(&releases, &name, phase, &stages, last).await?;
    }
    Ok(())
}

/// Writes the Release's status with server-side apply, as relman does (without relman's
/// resourceVersion guard: the client is the only writer).
async fn write_status(
    api: &Api<Release>,
    name: &str,
    phase: &str,
    stages: &[Value],
    ready: bool,
) -> anyhow::Result<()> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let condition = |type_: &str, status: bool, reason: &str| {
        json!({"type": type_, "status": if status { "True" } else { "False" },
            "reason": reason, "message": reason, "lastTransitionTime": now})
    };
    let patch = json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "stages": stages,
            "conditions": [
                condition("Ready", ready, if ready { "Succeeded" } else { phase }),
                condition("Reconciling", !ready, phase),
            ],
        },
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| anyhow::anyhow!("write the status of {name} ({phase}): {e}"))?;
    Ok(())
}
