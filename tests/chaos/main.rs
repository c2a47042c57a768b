//! Chaos: relman keeps its promises while the world around it fails.
//!
//! Five tests, one per scenario, run one at a time, each on a control plane of its own (the API
//! server restarts would disturb other tests on a shared one), with the real `relman` binary
//! as a child process so it can be SIGKILLed:
//!
//! 1. **Controller kills**: a fleet of releases, some made to fail their staging or production
//!    smoke test, some waiting for a production sign-off that arrives at a random moment; the
//!    controller is SIGKILLed at random points and restarted, again and again.
//! 2. **API server and etcd restarts**: the same kind of fleet while etcd and kube-apiserver are
//!    SIGKILLed and started again; relman must reconnect and finish everything.
//! 3. **Leader kills**: two relman processes with leader election on one Lease; the leader is
//!    SIGKILLed again and again. Every Event relman writes must come from the instance that
//!    held the Lease at that moment (never two writers).
//! 4. **Leader pauses**: the same two processes, each as a user of its own; the leader is frozen
//!    with SIGSTOP until the other has taken the Lease, then resumed with SIGCONT. The API
//!    server's audit log must show no write of either that took effect outside its own terms.
//! 5. **Throttled API server**: kube-apiserver admits only a few requests at once
//!    (`--max-requests-inflight`, `--max-mutating-requests-inflight`) while a fleet runs; every
//!    release must still end right, in time.
//!
//! After each scenario every release is checked against what it must end as ([`Fate`]): its
//! phase and stage phases, each Deployment's image and revision (rolled out exactly once,
//! restored exactly once when reverted), the Deployment settled on one ReplicaSet, exactly one
//! smoke Job per stage attempt (every Job uid relman ever created is watched), every approval
//! still there and honoured (production never started before its sign-off). The summary table
//! is printed (`--nocapture` to see it) and the test fails if anything was lost or wrong.
//!
//! Sizes come from the environment (`make chaos` sets the large ones; the defaults are the
//! short run inside `make test`): `RELMAN_CHAOS_RELEASES`, `RELMAN_CHAOS_KILLS`,
//! `RELMAN_CHAOS_RESTART_RELEASES`, `RELMAN_CHAOS_RESTARTS`, `RELMAN_CHAOS_LEADER_RELEASES`,
//! `RELMAN_CHAOS_LEADER_KILLS`, `RELMAN_CHAOS_PAUSE_RELEASES`, `RELMAN_CHAOS_LEADER_PAUSES`,
//! `RELMAN_CHAOS_THROTTLED_RELEASES`,
//! `RELMAN_CHAOS_APPROVAL_WINDOW` (seconds). The
//! random choices come from `RELMAN_CHAOS_SEED` (printed at the start; set it to replay a run);
//! `RELMAN_CHAOS_LOG` sets the controllers' log filter (default `info`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod check;
mod fleet;
mod process;
mod scenarios;
mod sizes;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use relman_testenv::{ControlPlane, Options};

use scenarios::{apiserver_restarts, controller_kills, leader_kills, leader_pauses, throttled};
use sizes::{Rng, Sizes};
use summary::summary;

/// Where the controllers' logs go: `target/tmp/chaos-<seed>/`. The `relman` binary is copied
/// there too and run from there, so a build during the run cannot swap it.
fn log_dir(seed: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}"));
    std::fs::create_dir_all(&dir).expect("create the chaos log directory");
    std::fs::copy(env!("CARGO_BIN_EXE_relman"), dir.join("relman"))
        .expect("copy the relman binary");
    dir
}

/// The scenarios run one at a time, each on a control plane of its own: cargo runs the tests
/// of one binary in parallel, and two control planes and fleets at once would measure the
/// machine rather than relman.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which scenario a test runs.
#[derive(Clone, Copy)]
enum Scenario {
    ControllerKills,
    ApiserverRestarts,
    LeaderKills,
    LeaderPauses,
    Throttled,
}

/// The kube-apiserver flags of the throttled scenario: with API Priority and Fairness these are
/// the server's whole concurrency, shared by every client (relman, the fleet, kwok, the
/// controller manager).
const THROTTLE: [&str; 2] = [
    "--max-requests-inflight=6",
    "--max-mutating-requests-inflight=3",
];

/// Runs `scenario` with the sizes and seed of the environment, prints its summary, and fails
/// when anything was lost or wrong.
async fn run(scenario: Scenario) -> anyhow::Result<()> {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let sizes = Sizes::from_env();
    let logs = log_dir(sizes.seed);
    println!(
        "relman chaos: {sizes:?}; replay with RELMAN_CHAOS_SEED={}; controller logs in {}",
        sizes.seed,
        logs.display()
    );
    let began = Instant::now();
    // The API server's audit log shows who wrote what when (the leader-pause check reads it).
    let audit_log = logs.join(format!("audit-{}.log", scenario_name(scenario)));
    let _ = std::fs::remove_file(&audit_log);
    let mut cp = ControlPlane::start_with(Options {
        audit_log: Some(audit_log.clone()),
        apiserver_args: match scenario {
            // Few requests at once: the API server queues and refuses (429) under load.
            Scenario::Throttled => THROTTLE.iter().map(|a| (*a).to_owned()).collect(),
            _ => Vec::new(),
        },
    })
    .await?;
    // Each scenario draws from its own stream, so one seed replays any of them alone.
    let mut rng = Rng(sizes.seed);
    let (mut kill_rng, mut restart_rng, mut leader_rng, mut pause_rng, mut throttle_rng) =
        (rng.fork(), rng.fork(), rng.fork(), rng.fork(), rng.fork());
    let outcome = match scenario {
        Scenario::ControllerKills => controller_kills(&cp, &sizes, &mut kill_rng, &logs).await?,
        Scenario::ApiserverRestarts => {
            apiserver_restarts(&mut cp, &sizes, &mut restart_rng, &logs).await?
        }
        Scenario::LeaderKills => leader_kills(&cp, &sizes, &mut leader_rng, &logs).await?,
        Scenario::LeaderPauses => {
            leader_pauses(&cp, &audit_log, &sizes, &mut pause_rng, &logs).await?
        }
        Scenario::Throttled => throttled(&cp, &audit_log, &sizes, &mut throttle_rng, &logs).await?,
    };
    let report = summary(&sizes, std::slice::from_ref(&outcome), began.elapsed());
    println!("{report}");
    assert_eq!(
        outcome.lost + outcome.wrong + outcome.foreign_writes,
        0,
        "chaos found lost or wrong releases:{report}"
    );
    assert_eq!(
        outcome.succeeded + outcome.rolled_back,
        outcome.releases,
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_controller_kills() -> anyhow::Result<()> {
    run(Scenario::ControllerKills).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_leader_kills() -> anyhow::Result<()> {
    run(Scenario::LeaderKills).await
}

/// Freezes the leader (SIGSTOP) until the other replica took over, then lets it go on: no write
/// of a replica may take effect outside its terms, as the API server's audit log records them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_leader_pauses() -> anyhow::Result<()> {
    run(Scenario::LeaderPauses).await
}

/// The API server admits a handful of requests at once (`THROTTLE`) while a fleet of releases
/// runs: every release must end as its fate says, within the deadline, so no reconcile held its
/// slot for good (writes are bounded by the fence, reconciles by `RECONCILE_BUDGET`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_throttled_api_server() -> anyhow::Result<()> {
    run(Scenario::Throttled).await
}

/// A file-name word for `scenario`.
fn scenario_name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::ControllerKills => "controller-kills",
        Scenario::ApiserverRestarts => "apiserver-restarts",
        Scenario::LeaderKills => "leader-kills",
        Scenario::LeaderPauses => "leader-pauses",
        Scenario::Throttled => "throttled",
    }
}

/// Restarts etcd and kube-apiserver under running releases. It found two controller bugs: a
/// Release watch retrying a resourceVersion the restarted API server no longer had (fixed by
/// `k8s::watch`), and watch errors pausing every trigger of the controller behind kube's
/// shared backoff for minutes (fixed by `k8s::watch::NoTriggerPause`): before that fix this
/// scenario ran into its deadline, after it the releases finish about 20 s after the restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_apiserver_and_etcd_restarts() -> anyhow::Result<()> {
    run(Scenario::ApiserverRestarts).await
}
