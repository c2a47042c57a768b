//! Watches what the benchmark's Releases go through and times relman's reactions.
//!
//! One task consumes the watches of Releases, the benchmark's Deployments, relman's Jobs and
//! the ReleaseApprovals, and stamps each event with the time this process saw it. A
//! gate-opening event (a rollout complete, a smoke Job complete, a sign-off created) is paired
//! with the first Release event whose status answers it (the stage moved on, the Job's result
//! recorded, the sign-off counted); the difference of the two observation times is the
//! reaction latency. Both arrive through watches of the same API server in the same process,
//! so the watch delivery delay largely cancels out; object timestamps (1 s resolution) are not
//! used. A gate event that arrives after the Release already answers it (the watches raced) is
//! counted as `late` and gives no sample.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use relman::api::release::StagePhase;
use relman::api::{Release, ReleaseApproval, ReleaseStatus};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::workload::{BENCH_LABEL, NEW_IMAGE, STAGE_LABEL, approval, create_or_keep};
use relman::api::labels::{
    ANNOTATION_DRIVEN_BY, LABEL_JOB_KIND, LABEL_RELEASE, LABEL_RELEASE_NAMESPACE, LABEL_STAGE,
};

/// A Release: its namespace and name.
pub type Key = (String, String);

/// What opens a gate for a Release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GateKind {
    /// A stage's Deployment finished rolling out.
    RolloutComplete,
    /// A stage's smoke-test Job completed.
    JobComplete,
    /// A sign-off was created.
    ApprovalCreated,
}

/// What the benchmark has seen happen to one Release, for a driver that waits on it.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Stages whose Deployment finished rolling out the new image.
    pub rollouts_done: BTreeSet<String>,
    /// Stages whose smoke Job completed.
    pub jobs_done: BTreeSet<String>,
    /// Stages with a sign-off.
    pub approvals_seen: BTreeSet<String>,
    /// The Release's uid, once its watch has shown it.
    pub uid: Option<String>,
}

#[derive(Default)]
struct Entry {
    status: Option<ReleaseStatus>,
    pending: Vec<(GateKind, String, Instant)>,
    ready: bool,
    awaiting_approval: bool,
    approvals_requested: BTreeSet<String>,
    progress: Progress,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    releases: HashMap<Key, Entry>,
    samples: BTreeMap<GateKind, Vec<Duration>>,
    late: usize,
    seen_rollouts: HashSet<Key>,
    seen_jobs: HashSet<Key>,
    seen_approvals: HashSet<Key>,
    ready: usize,
    awaiting_approval: usize,
}

/// The figures the tracker collected.
#[derive(Debug, Clone, Default)]
pub struct Reactions {
    /// Reaction latencies by the kind of gate.
    pub samples: BTreeMap<GateKind, Vec<Duration>>,
    /// Gate events seen only after the Release already answered them.
    pub late: usize,
}

/// The watches and their bookkeeping; stops when dropped.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    ready: watch::Receiver<usize>,
    awaiting: watch::Receiver<usize>,
    tasks: Vec<JoinHandle<()>>,
}

/// An object a watch delivered (boxed: the kinds differ much in size).
enum Seen {
    Release(Box<Release>),
    Deployment(Box<Deployment>),
    Job(Box<Job>),
    Approval(Box<ReleaseApproval>),
}

impl Tracker {
    /// Starts the watches with `client`. With `approve`, a Release that waits for a sign-off
    /// gets one (created with `client`, the admin) as soon as the benchmark sees it wait.
    pub fn start(client: &Client, approve: bool) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (ready_tx, ready) = watch::channel(0);
        let (awaiting_tx, awaiting) = watch::channel(0);
        let (approve_tx, approve_rx) = mpsc::unbounded_channel();
        let events = futures::stream::select_all([
            stream::<Release>(client, Some(BENCH_LABEL), |r| Seen::Release(Box::new(r))),
            stream::<Deployment>(client, Some(BENCH_LABEL), |d| Seen::Deployment(Box::new(d))),
            stream::<Job>(client, Some(LABEL_RELEASE), |j| Seen::Job(Box::new(j))),
            stream::<ReleaseApproval>(client, Some(BENCH_LABEL), |a| Seen::Approval(Box::new(a))),
        ]);
        let approve_tx = approve.then_some(approve_tx);
        let handler = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut events = events;
                while let Some(seen) = events.next().await {
                    let at = Instant::now();
                    let mut state = lock(&state);
                    match seen {
                        Seen::Release(r) => state.release(*r, at, approve_tx.as_ref()),
                        Seen::Deployment(d) => state.deployment(&d, at),
                        Seen::Job(j) => state.job(&j, at),
                        Seen::Approval(a) => state.approval(&a, at),
                    }
                    ready_tx.send_replace(state.ready);
                    awaiting_tx.send_replace(state.awaiting_approval);
                }
            })
        };
        let approver = tokio::spawn(approve_all(client.clone(), approve_rx));
        Self {
            state,
            ready,
            awaiting,
            tasks: vec![handler, approver],
        }
    }

    /// Waits until `count` Releases are Ready; `progress` is called every 10 s with the
    /// number ready so far.
    pub async fn wait_ready(
        &self,
        count: usize,
        timeout: Duration,
        progress: impl Fn(usize),
    ) -> anyhow::Result<()> {
        wait_count(self.ready.clone(), count, timeout, "Ready", progress).await
    }

    /// Waits until `count` Releases wait for a sign-off.
    pub async fn wait_awaiting_approval(
        &self,
        count: usize,
        timeout: Duration,
        progress: impl Fn(usize),
    ) -> anyhow::Result<()> {
        wait_count(
            self.awaiting.clone(),
            count,
            timeout,
            "waiting for a sign-off",
            progress,
        )
        .await
    }

    /// Waits until `holds` is true of what was seen of Release `key` (`what` says what that
    /// means in the error); returns what was seen then.
    pub async fn wait_for(
        &self,
        key: &Key,
        timeout: Duration,
        what: &str,
        holds: impl Fn(&Progress) -> bool,
    ) -> anyhow::Result<Progress> {
        let deadline = Instant::now() + timeout;
        loop {
            let notify = lock(&self.state)
                .releases
                .entry(key.clone())
                .or_default()
                .notify
                .clone();
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(progress) = lock(&self.state)
                .releases
                .get(key)
                .map(|e| &e.progress)
                .filter(|p| holds(p))
            {
                return Ok(progress.clone());
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                anyhow::bail!("Release {}/{}: no {what} within {timeout:?}", key.0, key.1);
            }
        }
    }

    /// The reaction latencies so far.
    pub fn reactions(&self) -> Reactions {
        let state = lock(&self.state);
        Reactions {
            samples: state.samples.clone(),
            late: state.late,
        }
    }

    /// Releases by phase (`None` before the first status), for progress messages.
    pub fn phases(&self) -> BTreeMap<String, usize> {
        let mut phases = BTreeMap::new();
        for entry in lock(&self.state).releases.values() {
            let phase = entry
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map_or_else(|| "None".to_owned(), |p| format!("{p:?}"));
            *phases.entry(phase).or_default() += 1;
        }
        phases
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl State {
    fn release(
        &mut self,
        release: Release,
        at: Instant,
        approve: Option<&mpsc::UnboundedSender<(Key, String)>>,
    ) {
        let key = (release.namespace().unwrap_or_default(), release.name_any());
        let entry = self.releases.entry(key.clone()).or_default();
        entry.progress.uid.clone_from(&release.metadata.uid);
        let status = release.status;
        let samples = &mut self.samples;
        entry.pending.retain(|(kind, stage, since)| {
            if answered(*kind, stage, status.as_ref()) {
                samples
                    .entry(*kind)
                    .or_default()
                    .push(at.saturating_duration_since(*since));
                false
            } else {
                true
            }
        });
        let ready = status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready && !entry.ready {
            entry.ready = true;
            self.ready += 1;
        }
        let awaiting = status
            .as_ref()
            .is_some_and(|s| s.phase == Some(relman::api::release::ReleasePhase::AwaitingApproval));
        match (awaiting, entry.awaiting_approval) {
            (true, false) => self.awaiting_approval += 1,
            (false, true) => self.awaiting_approval -= 1,
            _ => {}
        }
        entry.awaiting_approval = awaiting;
        if awaiting
            && let (Some(approve), Some(stage)) = (approve, waiting_stage(status.as_ref()))
            && entry.approvals_requested.insert(stage.clone())
        {
            let _ = approve.send((key, stage));
        }
        entry.status = status;
        entry.notify.notify_waiters();
    }

    fn deployment(&mut self, deployment: &Deployment, at: Instant) {
        let Some(stage) = deployment.labels().get(STAGE_LABEL).cloned() else {
            return;
        };
        let Some((ns, name)) = deployment
            .annotations()
            .get(ANNOTATION_DRIVEN_BY)
            .and_then(|d| d.split_once('/'))
        else {
            return;
        };
        let release = (ns.to_owned(), name.to_owned());
        let id = (
            deployment.namespace().unwrap_or_default(),
            deployment.name_any(),
        );
        if rolled_out(deployment) && self.seen_rollouts.insert(id) {
            self.gate(release, GateKind::RolloutComplete, stage, at);
        }
    }

    fn job(&mut self, job: &Job, at: Instant) {
        let labels = job.labels();
        let (Some(ns), Some(name), Some(stage)) = (
            labels.get(LABEL_RELEASE_NAMESPACE),
            labels.get(LABEL_RELEASE),
            labels.get(LABEL_STAGE),
        ) else {
            return;
        };
        if labels.get(LABEL_JOB_KIND).map(String::as_str) != Some("smoke") {
            return;
        }
        let complete = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    (c.type_ == "Complete" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
                })
            });
        let id = (job.namespace().unwrap_or_default(), job.name_any());
        if complete && self.seen_jobs.insert(id) {
            let release = (ns.clone(), name.clone());
            self.gate(release, GateKind::JobComplete, stage.clone(), at);
        }
    }

    fn approval(&mut self, approval: &ReleaseApproval, at: Instant) {
        let ns = approval.namespace().unwrap_or_default();
        if self
            .seen_approvals
            .insert((ns.clone(), approval.name_any()))
        {
            let release = (ns, approval.spec.release.clone());
            self.gate(
                release,
                GateKind::ApprovalCreated,
                approval.spec.gate.clone(),
                at,
            );
        }
    }

    fn gate(&mut self, release: Key, kind: GateKind, stage: String, at: Instant) {
        let entry = self.releases.entry(release).or_default();
        match kind {
            GateKind::RolloutComplete => entry.progress.rollouts_done.insert(stage.clone()),
            GateKind::JobComplete => entry.progress.jobs_done.insert(stage.clone()),
            GateKind::ApprovalCreated => entry.progress.approvals_seen.insert(stage.clone()),
        };
        if answered(kind, &stage, entry.status.as_ref()) {
            self.late += 1;
        } else {
            entry.pending.push((kind, stage, at));
        }
        entry.notify.notify_waiters();
    }
}

/// Whether `status` already answers a `kind` gate of `stage`.
fn answered(kind: GateKind, stage: &str, status: Option<&ReleaseStatus>) -> bool {
    let Some(status) = status else {
        return false;
    };
    let finished = status
        .conditions
        .iter()
        .any(|c| (c.type_ == "Ready" || c.type_ == "RolledBack") && c.status == "True");
    let stage_status = status.stages.iter().find(|s| s.name == stage);
    let phase = stage_status.and_then(|s| s.phase);
    let ended = matches!(
        phase,
        Some(
            StagePhase::Verified
                | StagePhase::Failed
                | StagePhase::RollingBack
                | StagePhase::RolledBack
        )
    );
    finished
        || ended
        || match kind {
            GateKind::RolloutComplete => phase == Some(StagePhase::Verifying),
            GateKind::JobComplete => stage_status
                .and_then(|s| s.smoke_test.as_ref())
                .and_then(|j| j.result.as_deref())
                .is_some_and(|r| r != "Running"),
            GateKind::ApprovalCreated => {
                !matches!(phase, None | Some(StagePhase::Pending))
                    || status.approvals.iter().any(|a| a.gate == stage)
            }
        }
}

/// The first stage that has not started: the one a Release awaiting approval waits for.
fn waiting_stage(status: Option<&ReleaseStatus>) -> Option<String> {
    status?
        .stages
        .iter()
        .find(|s| matches!(s.phase, None | Some(StagePhase::Pending)))
        .map(|s| s.name.clone())
}

/// Whether the Deployment has rolled out the release's image, as relman judges a rollout
/// complete (the Deployment controller saw the spec; every replica updated and available; no
/// old replica left).
fn rolled_out(deployment: &Deployment) -> bool {
    let spec = &deployment.spec;
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let new_image = spec.template.spec.as_ref().is_some_and(|p| {
        p.containers
            .iter()
            .any(|c| c.image.as_deref() == Some(NEW_IMAGE))
    });
    let desired = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    new_image
        && status.observed_generation >= deployment.metadata.generation
        && updated >= desired
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= updated
}

/// A watch of every `K` with `label`, as [`Seen`] objects (deletions and list markers dropped).
fn stream<K>(client: &Client, label: Option<&str>, wrap: fn(K) -> Seen) -> BoxStream<'static, Seen>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut config = watcher::Config::default();
    if let Some(label) = label {
        config = config.labels(label);
    }
    watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .filter_map(move |event| async move {
            match event {
                Ok(watcher::Event::Apply(k) | watcher::Event::InitApply(k)) => Some(wrap(k)),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch error");
                    None
                }
            }
        })
        .boxed()
}

/// Creates the sign-offs the tracker asks for.
async fn approve_all(client: Client, mut requests: mpsc::UnboundedReceiver<(Key, String)>) {
    while let Some(((ns, release), gate)) = requests.recv().await {
        let api: Api<ReleaseApproval> = Api::namespaced(client.clone(), &ns);
        let releases: Api<Release> = Api::namespaced(client.clone(), &ns);
        tokio::spawn(async move {
            // A sign-off counts only for the Release object whose uid it names.
            let created = match releases.get(&release).await {
                Ok(found) => {
                    let uid = found.metadata.uid.unwrap_or_default();
                    match approval(&release, &uid, &gate) {
                        Ok(a) => create_or_keep(&api, &a).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = created {
                tracing::error!(%ns, %release, error = %e, "cannot sign off");
            }
        });
    }
}

async fn wait_count(
    mut counter: watch::Receiver<usize>,
    count: usize,
    timeout: Duration,
    what: &str,
    progress: impl Fn(usize),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut next_report = Instant::now() + Duration::from_secs(10);
    loop {
        let now = *counter.borrow_and_update();
        if now >= count {
            return Ok(());
        }
        if Instant::now() >= next_report {
            progress(now);
            next_report = Instant::now() + Duration::from_secs(10);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {now} of {count} Releases were {what} after {timeout:?}"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), counter.changed()).await;
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves counts that are still the best there are.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
