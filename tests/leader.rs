//! Leader election on the local control plane: two in-process relman replicas share one
//! Lease; only the holder writes, and when it dies the other takes over and finishes the
//! release.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use relman::leader::{LeaderElectionConfig, LeaderElector, Leadership};
use relman::metrics::Metrics;
use support::{Env, context, run_controller, web};
use tokio::task::JoinHandle;

/// Short timings, so a takeover after a crash takes seconds.
const LEASE_DURATION: Duration = Duration::from_secs(5);
const RENEW_DEADLINE: Duration = Duration::from_secs(4);
const RENEW_PERIOD: Duration = Duration::from_secs(1);
const RETRY_PERIOD: Duration = Duration::from_millis(500);

/// One in-process relman replica: its election and its Release controller.
struct Replica {
    identity: String,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Replica {
    /// Starts a replica called `identity` on `lease`, reconciling the Releases of `env`.
    fn start(env: &Env, lease: &str, identity: &str) -> Self {
        let config = LeaderElectionConfig::new(lease, &env.ns, identity)
            .with_timings(LEASE_DURATION, RENEW_DEADLINE, RENEW_PERIOD, RETRY_PERIOD)
            .expect("valid timings");
        let (elector, leadership) = LeaderElector::new(env.client.clone(), config);
        let metrics = Arc::new(Metrics::new());
        let ctx = context(&env.client, identity)
            .with_leadership(leadership.clone())
            .with_metrics(metrics.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let election = tokio::spawn(elector.run(async move {
            let _ = stopped.await;
        }));
        let controller = run_controller(Arc::new(ctx), &env.ns);
        Self {
            identity: identity.to_owned(),
            leadership,
            metrics,
            tasks: vec![election, controller],
            stop: Some(stop),
        }
    }

    /// Kills the replica the way a crash does: no step-down, the Lease is left to expire.
    fn kill(&mut self) {
        self.stop.take();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until one of `replicas` is the leader; returns its index.
async fn leader_of(replicas: &[&Replica]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let leaders: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].leadership.is_leader())
            .collect();
        anyhow::ensure!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let Some(&leader) = leaders.first() {
            return Ok(leader);
        }
        anyhow::ensure!(Instant::now() < deadline, "no replica became the leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lease_holder(env: &Env, lease: &str) -> anyhow::Result<Option<String>> {
    let lease = Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .get(lease)
        .await?;
    Ok(lease.spec.and_then(|spec| spec.holder_identity))
}

#[tokio::test]
async fn the_standby_takes_over_a_dead_leader_and_finishes_the_release() -> anyhow::Result<()> {
    let env = Env::new("leader-takeover").await?;
    let lease = format!("relman-leader-{}", env.ns);
    let a = Replica::start(&env, &lease, "replica-a");
    let b = Replica::start(&env, &lease, "replica-b");
    let mut replicas = [a, b];
    let first = leader_of(&[&replicas[0], &replicas[1]]).await?;
    let second = 1 - first;
    assert_eq!(
        lease_holder(&env, &lease).await?.as_deref(),
        Some(replicas[first].identity.as_str())
    );

    // A release goes through staging and waits for production's sign-off.
    let release = web("2.0.0").production_approval();
    env.create(&release.build()).await?;
    env.wait_condition(release.name(), "StagingVerified", "True")
        .await?;
    env.wait_condition(release.name(), "Approved", "False")
        .await?;
    assert!(
        replicas[first].metrics.api_writes() > 0,
        "the leader wrote the release's status, rollout and Events"
    );
    assert_eq!(
        replicas[second].metrics.api_writes(),
        0,
        "the standby, with the same watches, wrote nothing"
    );

    // The leader dies; the sign-off arrives while nobody leads.
    replicas[first].kill();
    let died = Instant::now();
    env.approve_production(release.name(), "2.0.0").await?;
    let deadline = died + LEASE_DURATION * 3;
    while !replicas[second].leadership.is_leader() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the standby did not take over within {:?}",
            LEASE_DURATION * 3
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = died.elapsed();
    println!("takeover after the leader died: {takeover:?} (lease duration {LEASE_DURATION:?})");
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD * 2 + Duration::from_secs(1),
        "took over in {takeover:?}"
    );
    assert_eq!(
        lease_holder(&env, &lease).await?.as_deref(),
        Some(replicas[second].identity.as_str())
    );

    let status = env.wait_condition(release.name(), "Ready", "True").await?;
    assert!(
        status
            .history
            .iter()
            .any(|entry| entry.event == "ProductionVerified"),
        "{status:#?}"
    );
    assert!(
        replicas[second].metrics.api_writes() > 0,
        "the new leader finished the release"
    );
    Ok(())
}

#[tokio::test]
async fn a_leader_that_stops_frees_the_lease_for_the_standby() -> anyhow::Result<()> {
    let env = Env::new("leader-handover").await?;
    let lease = format!("relman-leader-{}", env.ns);
    let mut replicas = [
        Replica::start(&env, &lease, "replica-a"),
        Replica::start(&env, &lease, "replica-b"),
    ];
    let first = leader_of(&[&replicas[0], &replicas[1]]).await?;
    let second = 1 - first;

    // A clean stop (a rolling update): step down and free the Lease at once.
    let stopped = Instant::now();
    if let Some(stop) = replicas[first].stop.take() {
        let _ = stop.send(());
    }
    while !replicas[second].leadership.is_leader() {
        anyhow::ensure!(
            stopped.elapsed() < LEASE_DURATION,
            "the standby waited for the Lease to expire: it was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("handover after a clean stop: {:?}", stopped.elapsed());
    assert!(!replicas[first].leadership.is_leader());
    Ok(())
}
