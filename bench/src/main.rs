//! `relman-bench`: measures relman on the local control plane (kwok plays the kubelet).
//!
//! Three phases, each on a fresh control plane, with relman run as its own process
//! (`target/release/relman`) so its memory and CPU are its own:
//!
//! - `lifecycle`: Releases applied at once (staging and production, one Deployment per stage,
//!   smoke Jobs, a production sign-off the benchmark gives when asked); time to all Ready,
//!   the reaction latency from each gate-opening event to relman's write that answers it, the
//!   API requests per release by verb, and the writes per reconcile at steady state.
//! - `floor`: the same Releases driven by a minimal client that makes the same writes without
//!   reading anything but its watches: what the API server, kube-controller-manager and kwok
//!   cost on their own.
//! - `memory`: relman's RSS and CPU seconds with 0 and each of `BENCH_SIZES` Releases that wait
//!   for a sign-off (so relman's watches hold them all).
//!
//! The figures are printed as a table and merged into `bench/results.json` (a phase that did
//! not run keeps its earlier figures). See `docs/performance.md`.

mod audit;
mod cluster;
mod floor;
mod lifecycle;
mod machine;
mod memory;
mod process;
mod report;
mod stats;
mod tracker;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

/// The benchmark's options; every one can also be set from the environment.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "relman-bench",
    about = "relman's benchmark on the local control plane"
)]
pub struct Args {
    /// Release counts: the lifecycle and floor phases use the first, the memory phase each.
    #[arg(
        long,
        env = "BENCH_SIZES",
        value_delimiter = ',',
        default_value = "1000,10000"
    )]
    pub sizes: Vec<usize>,
    /// The phases to run.
    #[arg(
        long,
        env = "BENCH_PHASES",
        value_delimiter = ',',
        default_value = "lifecycle,floor,memory"
    )]
    pub phases: Vec<Phase>,
    /// How many namespaces the Releases are spread over.
    #[arg(long, env = "BENCH_NAMESPACES", default_value_t = 10)]
    pub namespaces: usize,
    /// The relman binary to measure (build it with `cargo build --release --bin relman`).
    #[arg(long, env = "BENCH_RELMAN", default_value = "target/release/relman")]
    pub relman: PathBuf,
    /// Where the results are merged.
    #[arg(long, env = "BENCH_OUT", default_value = "bench/results.json")]
    pub out: PathBuf,
    /// Where relman's logs go.
    #[arg(long, env = "BENCH_WORK_DIR", default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// How long one phase may wait for the Releases, in seconds.
    #[arg(long, env = "BENCH_TIMEOUT_SECS", default_value_t = 3600)]
    pub timeout_secs: u64,
    /// How many API requests the benchmark itself keeps in flight when it creates objects.
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
}

impl Args {
    /// How long one phase may wait for the Releases.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The Release count of the lifecycle and floor phases.
    pub fn lifecycle_size(&self) -> usize {
        self.sizes.first().copied().unwrap_or(1000)
    }
}

/// A part of the benchmark.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Releases through their whole lifecycle with relman.
    Lifecycle,
    /// The same writes made by a minimal client.
    Floor,
    /// Memory and CPU with many waiting Releases.
    Memory,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,relman_bench=info,kube_client::client::builder=off",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(!args.sizes.is_empty(), "BENCH_SIZES names no size");
    anyhow::ensure!(args.namespaces > 0, "BENCH_NAMESPACES must be at least 1");
    anyhow::ensure!(
        args.relman.is_file(),
        "{} does not exist: build it with `cargo build --release --bin relman` (make bench does)",
        args.relman.display()
    );
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("create {}", args.work_dir.display()))?;
    audit::reset()?;

    let mut results = report::Results::load(&args.out)?;
    results.machine = Some(machine::Machine::describe());
    if args.phases.contains(&Phase::Lifecycle) {
        results.lifecycle = Some(lifecycle::run(&args).await.context("lifecycle phase")?);
        results.save(&args.out)?;
    }
    if args.phases.contains(&Phase::Floor) {
        results.floor = Some(floor::run(&args).await.context("floor phase")?);
        results.save(&args.out)?;
    }
    if args.phases.contains(&Phase::Memory) {
        let out = args.out.clone();
        let mut partial = results.clone();
        let memory = memory::run(&args, |so_far| {
            partial.memory = Some(so_far.clone());
            partial.save(&out)
        })
        .await
        .context("memory phase")?;
        results.memory = Some(memory);
        results.save(&args.out)?;
    }
    if let Some(machine) = results.machine.as_mut() {
        machine.load_after = machine::load_average();
    }
    results.save(&args.out)?;
    println!("{}", results.table());
    println!("results written to {}", args.out.display());
    Ok(())
}
