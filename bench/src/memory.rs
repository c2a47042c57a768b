//! The memory phase: relman's memory and CPU with 0 Releases and with each of `BENCH_SIZES`
//! Releases that wait for a staging sign-off (which never comes), so relman's watches and
//! caches hold every one of them.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::Args;
use crate::audit::{self, PerUnit};
use crate::cluster::Cluster;
use crate::process::{Relman, Usage, round2};
use crate::tracker::Tracker;
use crate::workload::{self, App};

/// relman's user in this phase.
pub const USER: &str = "relman-memory";

/// How long relman is left alone before memory is read, and over which its idle CPU is taken.
const SETTLE: Duration = Duration::from_secs(15);

/// The memory phase's figures.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct MemoryResult {
    /// Namespaces the Releases were spread over.
    pub namespaces: usize,
    /// One point per Release count, 0 first.
    pub points: Vec<MemoryPoint>,
}

/// relman with a number of waiting Releases.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct MemoryPoint {
    /// Releases in the cluster.
    pub releases: usize,
    /// Memory and CPU (since start) after the Releases were reconciled and relman settled.
    pub usage: Usage,
    /// CPU seconds relman spent taking the Releases added at this point to their waiting state.
    pub cpu_seconds_step: f64,
    /// Seconds from the first create of the step until every Release waited for its sign-off.
    pub settle_seconds: f64,
    /// CPU relman used while nothing happened, in percent of one core.
    pub idle_cpu_percent: f64,
    /// RSS growth per 1,000 Releases since the previous point, MiB.
    pub rss_mib_per_1000: Option<f64>,
    /// relman's API requests per added Release in this step (audit log).
    pub requests_per_release: Option<PerUnit>,
}

/// Runs the phase; `on_point` gets the figures so far after each point (a long run that fails
/// late keeps what it measured).
pub async fn run(
    args: &Args,
    mut on_point: impl FnMut(&MemoryResult) -> anyhow::Result<()>,
) -> anyhow::Result<MemoryResult> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let largest = sizes.last().copied().unwrap_or(0);
    tracing::info!(sizes = ?sizes, "memory: starting a control plane");
    let cluster = Cluster::start("memory", args.namespaces).await?;
    let apps: Vec<App> = (0..largest)
        .map(|i| App::nth("mem", i, &cluster.namespaces))
        .collect();
    // The Deployments exist (a missing one would stall the Release instead) but have no
    // replicas: nothing rolls out, the Releases wait before staging. (Releases sharing a
    // Deployment would wake each other on every status write, which is not the point here.)
    workload::create_deployments(&cluster.admin, &apps, 0, args.concurrency).await?;
    let tracker = Tracker::start(&cluster.admin, false);
    let log = args.work_dir.join("relman-memory.log");
    let mut relman = Relman::start(&args.relman, &cluster.kubeconfig_for(USER)?, &log).await?;

    let mut points = Vec::new();
    tokio::time::sleep(SETTLE).await;
    let (usage, idle) = settled_usage(&relman).await?;
    points.push(MemoryPoint {
        releases: 0,
        usage,
        idle_cpu_percent: idle,
        ..MemoryPoint::default()
    });
    let mut created = 0;
    for size in sizes.into_iter().filter(|s| *s > 0) {
        tracing::info!(releases = size, "memory: creating Releases");
        let before = relman.usage()?;
        let from = Utc::now();
        let started = Instant::now();
        workload::create_releases(&cluster.admin, &apps[created..size], true, args.concurrency)
            .await?;
        tracker
            .wait_awaiting_approval(size, args.timeout(), |waiting| {
                tracing::info!(waiting, of = size, phases = ?tracker.phases(), "memory: waiting");
            })
            .await?;
        let settle_seconds = started.elapsed().as_secs_f64();
        relman.check_running()?;
        let reconciled = relman.usage()?;
        tokio::time::sleep(SETTLE).await;
        let to = Utc::now();
        let (usage, idle) = settled_usage(&relman).await?;
        let added = size - created;
        let previous = points
            .last()
            .map(|p: &MemoryPoint| (p.releases, p.usage.rss_mib));
        points.push(MemoryPoint {
            releases: size,
            usage,
            cpu_seconds_step: round2(reconciled.cpu_seconds - before.cpu_seconds),
            settle_seconds: round2(settle_seconds),
            idle_cpu_percent: idle,
            rss_mib_per_1000: previous
                .map(|(count, rss)| round2((usage.rss_mib - rss) / (size - count) as f64 * 1000.0)),
            requests_per_release: audit::count(USER, from, to)?.map(|r| r.per(added as f64)),
        });
        created = size;
        on_point(&MemoryResult {
            namespaces: args.namespaces,
            points: points.clone(),
        })?;
    }
    relman.stop().await?;
    Ok(MemoryResult {
        namespaces: args.namespaces,
        points,
    })
}

/// relman's usage now, and its CPU over the following [`SETTLE`] in percent of one core.
async fn settled_usage(relman: &Relman) -> anyhow::Result<(Usage, f64)> {
    let first = relman.usage()?;
    let began = Instant::now();
    tokio::time::sleep(SETTLE).await;
    let second = relman.usage()?;
    let idle = (second.cpu_seconds - first.cpu_seconds) / began.elapsed().as_secs_f64() * 100.0;
    Ok((second, round2(idle)))
}
