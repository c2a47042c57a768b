//! The lifecycle phase: Releases applied at once and taken to Ready by relman, then touched
//! once more to see what a reconcile of a finished Release costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Args;
use crate::audit::{self, PerUnit, RequestCounts};
use crate::cluster::Cluster;
use crate::process::{Counters, Relman, Usage, round2};
use crate::stats::Percentiles;
use crate::tracker::{GateKind, Reactions, Tracker};
use crate::workload::{self, App};

/// relman's user in this phase (its requests are counted in the audit log by it).
pub const USER: &str = "relman-lifecycle";

/// How long the Releases are left alone after the last one is Ready, so the requests that
/// follow their last status write (Events) count toward the lifecycle.
const QUIET: Duration = Duration::from_secs(5);

/// How long relman's reconcile counter must stand still for steady state to count as done.
const SETTLED: Duration = Duration::from_secs(3);

/// The lifecycle phase's figures.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct LifecycleResult {
    /// Releases applied.
    pub releases: usize,
    /// Namespaces they were spread over.
    pub namespaces: usize,
    /// Seconds to create every Release.
    pub create_seconds: f64,
    /// Seconds from the first create to the last Release Ready.
    pub all_ready_seconds: f64,
    /// Reaction latency, every gate.
    pub reaction: Percentiles,
    /// Reaction latency by the kind of gate.
    pub reaction_by_gate: BTreeMap<GateKind, Percentiles>,
    /// Gate events seen only after relman had already answered them (no sample).
    pub reaction_late: usize,
    /// relman's API requests per Release over the lifecycle (audit log).
    pub requests_per_release: Option<PerUnit>,
    /// The same, in total.
    pub requests: Option<RequestCounts>,
    /// relman's own count of its writes per Release (`relman_api_writes_total`).
    pub writes_per_release_metrics: f64,
    /// relman's reconciles per Release (`relman_reconciles_total`).
    pub reconciles_per_release: f64,
    /// How long a reconcile took on average, in milliseconds
    /// (`relman_reconcile_duration_seconds`).
    pub reconcile_mean_ms: f64,
    /// relman before the Releases (watches listed, nothing to do).
    pub usage_idle: Usage,
    /// relman when the last Release was Ready.
    pub usage_all_ready: Usage,
    /// CPU seconds relman used from the first create to the last Ready.
    pub cpu_seconds_lifecycle: f64,
    /// Reconciling every finished Release once more.
    pub steady_state: SteadyState,
    /// Load averages when the Releases were created and when the last was Ready.
    pub load: [Option<[f64; 3]>; 2],
}

/// What reconciling finished Releases costs.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct SteadyState {
    /// Releases whose metadata was touched (each change is one watch event for relman).
    pub touched: usize,
    /// Reconciles relman ran meanwhile.
    pub reconciles: u64,
    /// Writes relman counted meanwhile (`relman_api_writes_total`).
    pub writes_metrics: u64,
    /// Writes in the audit log (dry runs excluded).
    pub writes_audit: Option<u64>,
    /// Writes per reconcile (audit log when there is one, else relman's count).
    pub writes_per_reconcile: f64,
    /// relman's API requests per reconcile, by verb (audit log).
    pub requests_per_reconcile: Option<PerUnit>,
    /// Seconds from the first touch until the reconciles stopped.
    pub seconds: f64,
}

/// Runs the phase with the first of `args.sizes` Releases.
pub async fn run(args: &Args) -> anyhow::Result<LifecycleResult> {
    let n = args.lifecycle_size();
    tracing::info!(releases = n, "lifecycle: starting a control plane");
    let cluster = Cluster::start("bench", args.namespaces).await?;
    let apps: Vec<App> = (0..n)
        .map(|i| App::nth("app", i, &cluster.namespaces))
        .collect();
    workload::create_deployments(&cluster.admin, &apps, 1, args.concurrency).await?;
    workload::wait_deployments_available(&cluster.admin, 2 * n, args.timeout()).await?;
    let tracker = Tracker::start(&cluster.admin, true);
    let log = args.work_dir.join("relman-lifecycle.log");
    let mut relman = Relman::start(&args.relman, &cluster.kubeconfig_for(USER)?, &log).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let usage_idle = relman.usage()?;
    let counters_before = relman.counters().await?;
    let load_start = crate::machine::load_average();

    tracing::info!(releases = n, "lifecycle: creating the Releases");
    let from = Utc::now();
    let started = Instant::now();
    workload::create_releases(&cluster.admin, &apps, false, args.concurrency).await?;
    let create_seconds = started.elapsed().as_secs_f64();
    tracker
        .wait_ready(n, args.timeout(), |ready| {
            tracing::info!(ready, of = n, phases = ?tracker.phases(), "lifecycle: waiting for Ready");
        })
        .await?;
    let all_ready_seconds = started.elapsed().as_secs_f64();
    let usage_all_ready = relman.usage()?;
    let load_end = crate::machine::load_average();
    relman.check_running()?;
    tracing::info!(
        seconds = all_ready_seconds,
        "lifecycle: every Release is Ready"
    );
    tokio::time::sleep(QUIET).await;
    let counters_ready = relman.counters().await?;
    let to = Utc::now();

    let steady_state = steady_state(&cluster, &relman, &apps, args).await?;
    relman.check_running()?;
    relman.stop().await?;
    let Reactions { samples, late } = tracker.reactions();
    drop(tracker);

    let requests = audit::count(USER, from, to)?;
    let every: Vec<Duration> = samples.values().flatten().copied().collect();
    Ok(LifecycleResult {
        releases: n,
        namespaces: args.namespaces,
        create_seconds: round2(create_seconds),
        all_ready_seconds: round2(all_ready_seconds),
        reaction: Percentiles::of(&every),
        reaction_by_gate: samples
            .iter()
            .map(|(kind, s)| (*kind, Percentiles::of(s)))
            .collect(),
        reaction_late: late,
        requests_per_release: requests.as_ref().map(|r| r.per(n as f64)),
        requests,
        writes_per_release_metrics: round2(
            counters_ready.writes.saturating_sub(counters_before.writes) as f64 / n as f64,
        ),
        reconciles_per_release: round2(
            counters_ready
                .reconciles
                .saturating_sub(counters_before.reconciles) as f64
                / n as f64,
        ),
        reconcile_mean_ms: {
            let count = counters_ready
                .reconciles
                .saturating_sub(counters_before.reconciles);
            let seconds = counters_ready.reconcile_seconds - counters_before.reconcile_seconds;
            if count > 0 {
                round2(seconds * 1000.0 / count as f64)
            } else {
                0.0
            }
        },
        cpu_seconds_lifecycle: round2(usage_all_ready.cpu_seconds - usage_idle.cpu_seconds),
        usage_idle,
        usage_all_ready,
        steady_state,
        load: [load_start, load_end],
    })
}

/// Touches the staging Deployment of every finished Release (an annotation: relman watches the
/// Deployments it drove, so each touch reconciles one Release; an annotation on the Release
/// itself would not, since only a new generation wakes a Release) and counts what relman does
/// about it.
async fn steady_state(
    cluster: &Cluster,
    relman: &Relman,
    apps: &[App],
    args: &Args,
) -> anyhow::Result<SteadyState> {
    tracing::info!("steady state: touching every Release's staging Deployment");
    let before = relman.counters().await?;
    let from = Utc::now();
    let started = Instant::now();
    let patch = json!({"metadata": {"annotations": {"bench.relman.io/touched": "1"}}});
    let work = apps.iter().map(|app| {
        let api: Api<Deployment> = Api::namespaced(cluster.admin.clone(), &app.namespace);
        let (name, patch) = (app.deployment_name("staging"), &patch);
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            anyhow::Ok(())
        }
    });
    workload::run_all(work, args.concurrency).await?;
    let after = wait_settled(relman, before, apps.len() as u64, args.timeout()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let to = Utc::now();
    let reconciles = after.reconciles.saturating_sub(before.reconciles);
    let writes_metrics = after.writes.saturating_sub(before.writes);
    let requests = audit::count(USER, from, to)?;
    let writes_audit = requests.as_ref().map(RequestCounts::writes);
    let writes = writes_audit.unwrap_or(writes_metrics);
    Ok(SteadyState {
        touched: apps.len(),
        reconciles,
        writes_metrics,
        writes_audit,
        writes_per_reconcile: if reconciles > 0 {
            (writes as f64 / reconciles as f64 * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        requests_per_reconcile: requests.map(|r| r.per(reconciles as f64)),
        seconds: round2(seconds),
    })
}

/// Waits until relman has run at least `expected` more reconciles than `before` and its
/// counters have stood still for [`SETTLED`].
async fn wait_settled(
    relman: &Relman,
    before: Counters,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Counters> {
    let began = Instant::now();
    let mut last = relman.counters().await?;
    let mut still_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = relman.counters().await?;
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if now.reconciles >= before.reconciles + expected && still_since.elapsed() >= SETTLED
        {
            return Ok(now);
        }
        anyhow::ensure!(
            began.elapsed() < timeout,
            "relman ran {} of {expected} reconciles within {timeout:?}",
            now.reconciles.saturating_sub(before.reconciles)
        );
    }
}
