//! The scenarios: controller kills, API server and etcd restarts, leader kills, leader pauses.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relman_testenv::ControlPlane;

use crate::fleet::Fleet;
use crate::process::Relman;
use crate::sizes::{Rng, Sizes};
use crate::summary::Outcome;

/// The Lease the two replicas of the leader scenario compete for.
pub const LEASE: &str = "relman-chaos";
/// How long a controller lives at most between two kills.
pub const MAX_LIFETIME: Duration = Duration::from_secs(4);
/// How long a killed controller stays down at most.
pub const MAX_DOWNTIME: Duration = Duration::from_secs(1);

/// The start of every scenario: its outcome, named `scenario`, and a fleet of `releases` in a
/// namespace named after `prefix` (created as the scenario goes).
async fn prepare(
    cp: &ControlPlane,
    scenario: &'static str,
    prefix: &str,
    releases: usize,
    sizes: &Sizes,
    rng: &mut Rng,
) -> anyhow::Result<(Outcome, Fleet)> {
    let outcome = Outcome {
        scenario,
        ..Outcome::default()
    };
    let fleet = Fleet::new(cp, prefix, releases, sizes.approval_window, rng).await?;
    Ok((outcome, fleet))
}

/// How long a scenario may take to finish its releases after the chaos stopped.
pub fn finish_deadline(releases: usize) -> Instant {
    Instant::now() + Duration::from_secs(180 + 6 * releases as u64)
}

/// Scenario 1: SIGKILL the only controller at random points, again and again.
pub async fn controller_kills(
    cp: &ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut outcome = Outcome {
        scenario: "controller kills",
        ..Outcome::default()
    };
    let mut fleet =
        Fleet::new(cp, "chaos-kill", sizes.releases, sizes.approval_window, rng).await?;
    let mut relman = Relman::spawn(cp, &fleet.ns, "relman-kill-0", None, log_dir);
    outcome.runs += 1;
    fleet.start().await?;
    while outcome.kills < sizes.kills {
        let lifetime = rng.between(Duration::from_millis(200), MAX_LIFETIME);
        fleet.pause(lifetime).await?;
        relman.ensure_running()?;
        if fleet.unfinished().await == Some(0) {
            break;
        }
        relman.kill();
        outcome.kills += 1;
        fleet
            .pause(rng.between(Duration::ZERO, MAX_DOWNTIME))
            .await?;
        relman = Relman::spawn(
            cp,
            &fleet.ns,
            &format!("relman-kill-{}", outcome.kills),
            None,
            log_dir,
        );
        outcome.runs += 1;
    }
    fleet
        .run_to_the_end(&mut [&mut relman], finish_deadline(sizes.releases))
        .await?;
    drop(relman);
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// Scenario 2: restart etcd and kube-apiserver (SIGKILL, then start again) under a running
/// controller.
pub async fn apiserver_restarts(
    cp: &mut ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let (mut outcome, mut fleet) = prepare(
        cp,
        "API server + etcd restarts",
        "chaos-api",
        sizes.restart_releases,
        sizes,
        rng,
    )
    .await?;
    let mut relman = Relman::spawn(cp, &fleet.ns, "relman-api-0", None, log_dir);
    outcome.runs += 1;
    fleet.start().await?;
    for _ in 0..sizes.restarts {
        fleet
            .pause(rng.between(Duration::from_secs(1), Duration::from_secs(6)))
            .await?;
        cp.restart_etcd(rng.between(Duration::from_millis(500), Duration::from_secs(3)))
            .await?;
        outcome.restarts += 1;
        fleet
            .pause(rng.between(Duration::from_secs(1), Duration::from_secs(6)))
            .await?;
        cp.restart_apiserver(rng.between(Duration::from_millis(500), Duration::from_secs(3)))
            .await?;
        outcome.restarts += 1;
        relman.ensure_running()?;
    }
    fleet
        .run_to_the_end(&mut [&mut relman], finish_deadline(sizes.restart_releases))
        .await?;
    drop(relman);
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// One holder of the Lease, from its acquisition on.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The holder's `POD_NAME` (the Lease identity without its per-process suffix).
    pub instance: String,
    pub acquired: Timestamp,
    pub transitions: i32,
}

/// Records every term of the Lease `LEASE` in `ns` until aborted.
pub async fn watch_lease(client: kube::Client, ns: String, terms: Arc<Mutex<Vec<Term>>>) {
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE}"));
    let stream = watcher(leases, config).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    loop {
        match stream.try_next().await {
            Ok(Some(lease)) => {
                let Some(spec) = lease.spec else { continue };
                let (Some(holder), Some(acquired)) = (spec.holder_identity, spec.acquire_time)
                else {
                    continue;
                };
                let term = Term {
                    instance: holder
                        .rsplit_once('_')
                        .map_or(holder.clone(), |(pod, _)| pod.to_owned()),
                    acquired: acquired.0,
                    transitions: spec.lease_transitions.unwrap_or_default(),
                };
                let mut terms = terms.lock().unwrap();
                if terms.last() != Some(&term) {
                    terms.push(term);
                }
            }
            Ok(None) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The instance holding the Lease now, if any.
pub async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .ok()??;
    let holder = lease.spec?.holder_identity?;
    Some(
        holder
            .rsplit_once('_')
            .map_or(holder.clone(), |(pod, _)| pod.to_owned()),
    )
}

/// Scenario 3: two replicas with leader election; SIGKILL the leader again and again.
pub async fn leader_kills(
    cp: &ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let (mut outcome, mut fleet) = prepare(
        cp,
        "leader kills",
        "chaos-leader",
        sizes.leader_releases,
        sizes,
        rng,
    )
    .await?;
    let terms = Arc::new(Mutex::new(Vec::new()));
    let lease_watch = tokio::spawn(watch_lease(
        fleet.client.clone(),
        fleet.ns.clone(),
        terms.clone(),
    ));
    let mut replicas = vec![
        Relman::spawn(cp, &fleet.ns, "relman-a-0", Some(LEASE), log_dir),
        Relman::spawn(cp, &fleet.ns, "relman-b-0", Some(LEASE), log_dir),
    ];
    outcome.runs += 2;
    fleet.start().await?;
    while outcome.kills < sizes.leader_kills {
        // Wait until one of the running replicas leads, let it work a while, kill it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let leader = loop {
            let holder = lease_holder(&fleet.client, &fleet.ns).await;
            if let Some(i) = replicas
                .iter()
                .position(|r| holder.as_deref() == Some(r.name.as_str()))
            {
                break i;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no running replica took the Lease within a minute (holder {holder:?})"
            );
            fleet.pause(Duration::from_millis(100)).await?;
        };
        fleet
            .pause(rng.between(Duration::from_millis(500), Duration::from_secs(6)))
            .await?;
        for replica in &mut replicas {
            replica.ensure_running()?;
        }
        if fleet.unfinished().await == Some(0) {
            break;
        }
        replicas[leader].kill();
        outcome.kills += 1;
        fleet
            .pause(rng.between(Duration::ZERO, Duration::from_secs(2)))
            .await?;
        let letter = if replicas[leader].name.starts_with("relman-a") {
            "a"
        } else {
            "b"
        };
        replicas[leader] = Relman::spawn(
            cp,
            &fleet.ns,
            &format!("relman-{letter}-{}", outcome.kills),
            Some(LEASE),
            log_dir,
        );
        outcome.runs += 1;
    }
    {
        let (a, b) = replicas.split_at_mut(1);
        fleet
            .run_to_the_end(
                &mut [&mut a[0], &mut b[0]],
                finish_deadline(sizes.leader_releases),
            )
            .await?;
    }
    drop(replicas);
    // Let the watch catch up, then compare every Event with the terms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    lease_watch.abort();
    let terms = terms.lock().unwrap().clone();
    check_single_writer(&fleet, &terms, &mut outcome).await?;
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// Every Event relman wrote in the fleet's namespace was written (first and, for a series,
/// last) while its instance held the Lease: at a time within its term, which ends when the
/// next holder acquired it.
pub async fn check_single_writer(
    fleet: &Fleet,
    terms: &[Term],
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    outcome.leader_terms += terms.len();
    for pair in terms.windows(2) {
        if pair[1].transitions != pair[0].transitions + 1 {
            outcome.problems.push(format!(
                "the Lease watch missed a term between {pair:?}: cannot attribute every write"
            ));
            outcome.foreign_writes += 1;
        }
    }
    let events: Api<KubeEvent> = Api::namespaced(fleet.client.clone(), &fleet.ns);
    let events = events.list(&ListParams::default()).await?;
    for event in events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("relman"))
    {
        let instance = event.reporting_instance.clone().unwrap_or_default();
        let mut times: Vec<Timestamp> = event.event_time.iter().map(|t| t.0).collect();
        times.extend(event.series.as_ref().map(|s| s.last_observed_time.0));
        for time in times {
            outcome.events_checked += 1;
            let holder = terms.iter().rev().find(|t| t.acquired <= time);
            if holder.map(|t| t.instance.as_str()) != Some(instance.as_str()) {
                outcome.foreign_writes += 1;
                outcome.problems.push(format!(
                    "Event {} ({} on {:?}) written by {instance} at {time}, when the Lease \
                     was held by {:?}",
                    event.metadata.name.as_deref().unwrap_or_default(),
                    event.reason.as_deref().unwrap_or_default(),
                    event.regarding.as_ref().and_then(|r| r.name.clone()),
                    holder
                ));
            }
        }
    }
    Ok(())
}

/// The users the two replicas of the leader-pause scenario talk to the API server as.
const PAUSE_USERS: [&str; 2] = ["relman-a", "relman-b"];

/// Scenario 4: two replicas with leader election, each as a user of its own; the leader is
/// frozen (SIGSTOP) until the other replica has taken the Lease, and a little longer, then
/// resumed (SIGCONT) unaware that time passed. Afterwards the API server's audit log must show
/// no write of either replica that took effect outside its own terms.
pub async fn leader_pauses(
    cp: &ControlPlane,
    audit_log: &Path,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let (mut outcome, mut fleet) = prepare(
        cp,
        "leader pauses",
        "chaos-pause",
        sizes.pause_releases,
        sizes,
        rng,
    )
    .await?;
    let mut kubeconfigs = Vec::new();
    for user in PAUSE_USERS {
        let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{user}-{}", fleet.ns)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        }))?;
        Api::<ClusterRoleBinding>::all(fleet.client.clone())
            .create(&PostParams::default(), &binding)
            .await?;
        kubeconfigs.push(cp.user_kubeconfig(user, &[])?);
    }
    let terms = Arc::new(Mutex::new(Vec::new()));
    let lease_watch = tokio::spawn(watch_lease(
        fleet.client.clone(),
        fleet.ns.clone(),
        terms.clone(),
    ));
    let mut replicas = vec![
        Relman::spawn_as(
            &fleet.ns,
            "relman-a-0",
            Some(LEASE),
            log_dir,
            &kubeconfigs[0],
        ),
        Relman::spawn_as(
            &fleet.ns,
            "relman-b-0",
            Some(LEASE),
            log_dir,
            &kubeconfigs[1],
        ),
    ];
    outcome.runs += 2;
    fleet.start().await?;
    while outcome.pauses < sizes.leader_pauses {
        let leader = wait_for_holder(&mut fleet, &replicas, None).await?;
        fleet
            .pause(rng.between(Duration::from_millis(500), Duration::from_secs(4)))
            .await?;
        for replica in &mut replicas {
            replica.ensure_running()?;
        }
        if fleet.unfinished().await == Some(0) {
            break;
        }
        replicas[leader].freeze()?;
        outcome.pauses += 1;
        // Frozen until the other replica leads and has worked a while.
        wait_for_holder(&mut fleet, &replicas, Some(1 - leader)).await?;
        fleet
            .pause(rng.between(Duration::ZERO, Duration::from_secs(3)))
            .await?;
        replicas[leader].resume()?;
    }
    {
        let (a, b) = replicas.split_at_mut(1);
        fleet
            .run_to_the_end(
                &mut [&mut a[0], &mut b[0]],
                finish_deadline(sizes.pause_releases),
            )
            .await?;
    }
    drop(replicas);
    tokio::time::sleep(Duration::from_secs(1)).await;
    lease_watch.abort();
    let terms = terms.lock().unwrap().clone();
    check_single_writer(&fleet, &terms, &mut outcome).await?;
    check_audited_writes(audit_log, &terms, &mut outcome)?;
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// Waits until `replicas[want]` (any of them with `None`) holds the Lease; returns its index.
async fn wait_for_holder(
    fleet: &mut Fleet,
    replicas: &[Relman],
    want: Option<usize>,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holder = lease_holder(&fleet.client, &fleet.ns).await;
        if let Some(i) = replicas
            .iter()
            .position(|r| holder.as_deref() == Some(r.name.as_str()))
            .filter(|i| want.is_none_or(|want| want == *i))
        {
            return Ok(i);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Lease did not go to {want:?} within a minute (holder {holder:?})"
        );
        fleet.pause(Duration::from_millis(100)).await?;
    }
}

/// Every write of [`PAUSE_USERS`] in the API server's audit log that took effect (a 2xx answer),
/// but the Lease's own, was received while its writer held the Lease: a write of a frozen
/// leader that lands after the other replica took over is counted as foreign.
pub fn check_audited_writes(
    audit_log: &Path,
    terms: &[Term],
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(audit_log)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)?;
        let user = entry["user"]["username"].as_str().unwrap_or_default();
        let verb = entry["verb"].as_str().unwrap_or_default();
        let resource = entry["objectRef"]["resource"].as_str().unwrap_or_default();
        let code = entry["responseStatus"]["code"].as_u64().unwrap_or_default();
        if entry["stage"] != "ResponseComplete"
            || !PAUSE_USERS.contains(&user)
            || !matches!(verb, "create" | "update" | "patch" | "delete")
            || resource == "leases"
            || !(200..300).contains(&code)
        {
            continue;
        }
        outcome.writes_audited += 1;
        let received: Timestamp = entry["requestReceivedTimestamp"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        let holder = terms.iter().rev().find(|t| t.acquired <= received);
        let holder_user = holder
            .and_then(|t| t.instance.rsplit_once('-'))
            .map(|(u, _)| u);
        if holder_user != Some(user) {
            outcome.foreign_writes += 1;
            outcome.problems.push(format!(
                "{user} {verb} {resource} {:?} received at {received} (answer {code}), when the \
                 Lease was held by {holder:?}",
                entry["objectRef"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    anyhow::ensure!(
        outcome.writes_audited > 0,
        "no write of relman in the audit log: the check would see nothing"
    );
    Ok(())
}

/// Scenario 5: one relman on an API server that admits only a few requests at once (see
/// `THROTTLE` in main.rs); the fleet must end as its fates say, within the deadline.
pub async fn throttled(
    cp: &ControlPlane,
    audit_log: &Path,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let (mut outcome, mut fleet) = prepare(
        cp,
        "throttled API server",
        "chaos-throttled",
        sizes.throttled_releases,
        sizes,
        rng,
    )
    .await?;
    let mut relman = Relman::spawn(cp, &fleet.ns, "relman-0", None, log_dir);
    outcome.runs += 1;
    fleet.start().await?;
    fleet
        .run_to_the_end(
            &mut [&mut relman],
            finish_deadline(sizes.throttled_releases),
        )
        .await?;
    drop(relman);
    fleet.check(&mut outcome).await?;
    // How hard the API server pushed back, from its audit log.
    let text = std::fs::read_to_string(audit_log)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)?;
        if entry["stage"] == "ResponseComplete" {
            outcome.requests += 1;
            if entry["responseStatus"]["code"] == 429 {
                outcome.throttled += 1;
            }
        }
    }
    outcome.duration = began.elapsed();
    Ok(outcome)
}
