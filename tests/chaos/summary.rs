//! What a scenario found, and the table that sums it up.

use std::fmt::Write as _;
use std::time::Duration;

use crate::sizes::Sizes;

/// What a scenario found, for the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    pub scenario: &'static str,
    /// Controller processes started.
    pub runs: usize,
    /// Controller processes SIGKILLed.
    pub kills: usize,
    /// etcd and kube-apiserver restarts.
    pub restarts: usize,
    pub releases: usize,
    pub succeeded: usize,
    pub rolled_back: usize,
    /// Releases not finished in time, or whose approval disappeared.
    pub lost: usize,
    /// Releases finished differently from their fate, or with a duplicate Job or a Deployment
    /// left between versions.
    pub wrong: usize,
    pub approvals: usize,
    pub smoke_jobs: usize,
    /// Leader terms seen and Events checked against them (leader scenario).
    pub leader_terms: usize,
    pub events_checked: usize,
    /// Events written by an instance that did not hold the Lease then, and (leader pauses)
    /// writes that landed outside their writer's term.
    pub foreign_writes: usize,
    /// Leader pauses (SIGSTOP until the other replica took the Lease, then SIGCONT).
    pub pauses: usize,
    /// relman's successful writes read from the API server's audit log and checked against
    /// the terms (leader pauses).
    pub writes_audited: usize,
    /// Requests the API server answered, and those it refused as too many (429), from its
    /// audit log (throttled API server).
    pub requests: usize,
    pub throttled: usize,
    /// How long the kwok node was not Ready (an environment failure, not relman's).
    pub node_down: Duration,
    /// Deployments on the right version whose pods were not all available at the end (the
    /// environment's doing; reported, not counted as wrong).
    pub unavailable: usize,
    /// Those Deployments' pods: phase, readiness and why not.
    pub unavailable_pods: Vec<String>,
    pub duration: Duration,
    /// Every problem, one line each.
    pub problems: Vec<String>,
}

/// The summary table.
pub fn summary(sizes: &Sizes, outcomes: &[Outcome], total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrelman chaos summary (seed {}; replay with RELMAN_CHAOS_SEED={})",
        sizes.seed, sizes.seed
    );
    let _ = writeln!(
        out,
        "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>9}",
        "scenario",
        "runs",
        "kills",
        "restarts",
        "releases",
        "succeeded",
        "rolled back",
        "lost",
        "wrong",
        "approvals",
        "smoke Jobs",
        "duration"
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>8}s",
            o.scenario,
            o.runs,
            o.kills,
            o.restarts,
            o.releases,
            o.succeeded,
            o.rolled_back,
            o.lost,
            o.wrong,
            o.approvals,
            o.smoke_jobs,
            o.duration.as_secs()
        );
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let _ = writeln!(
        out,
        "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>8}s",
        "total",
        sum(|o| o.runs),
        sum(|o| o.kills),
        sum(|o| o.restarts),
        sum(|o| o.releases),
        sum(|o| o.succeeded),
        sum(|o| o.rolled_back),
        sum(|o| o.lost),
        sum(|o| o.wrong),
        sum(|o| o.approvals),
        sum(|o| o.smoke_jobs),
        total.as_secs()
    );
    let _ = writeln!(
        out,
        "leader terms {}, relman Events checked against them {}, written outside their \
         writer's term {}",
        sum(|o| o.leader_terms),
        sum(|o| o.events_checked),
        sum(|o| o.foreign_writes)
    );
    if sum(|o| o.pauses) > 0 {
        let _ = writeln!(
            out,
            "leader pauses {}, relman writes in the audit log checked against the terms {}",
            sum(|o| o.pauses),
            sum(|o| o.writes_audited)
        );
    }
    if sum(|o| o.requests) > 0 {
        let _ = writeln!(
            out,
            "API server requests {}, refused as too many (429) {}",
            sum(|o| o.requests),
            sum(|o| o.throttled)
        );
    }
    let node_down: Duration = outcomes.iter().map(|o| o.node_down).sum();
    let _ = writeln!(
        out,
        "kwok node not Ready during the run: {}s; Deployments on the right version with \
         unavailable pods at the end: {} (the environment's, not relman's)",
        node_down.as_secs(),
        sum(|o| o.unavailable)
    );
    for pods in outcomes.iter().flat_map(|o| &o.unavailable_pods) {
        let _ = writeln!(out, "  - {pods}");
    }
    let lost = sum(|o| o.lost) + sum(|o| o.wrong) + sum(|o| o.foreign_writes);
    let _ = writeln!(out, "lost or wrong: {lost}");
    for problem in outcomes.iter().flat_map(|o| &o.problems) {
        let _ = writeln!(out, "  - {problem}");
    }
    out
}
