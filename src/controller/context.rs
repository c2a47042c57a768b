//! What every reconcile shares: the client, the caches and memos, leadership, metrics and
//! the slots that bound how many Releases reconcile at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use super::gate_watch::GateWatches;
use super::gates::KnownReleases;
use super::memo;
use super::stores::Caches;
use crate::api::{Release, ReleaseStatus};
use crate::error::{Error, Result};
use crate::leader::Leadership;
use crate::metrics::{ControllerKind, Metrics, WriteKind};
use crate::notify::{Notifier, RetryPolicy};
use crate::plan::{Action, PlanConfig};
use crate::readiness::ReadyFlag;

/// What every reconcile shares.
pub struct Context {
    pub(super) client: Client,
    pub(super) recorder: Recorder,
    pub(super) config: PlanConfig,
    /// Consecutive failures per Release, for exponential backoff.
    pub(super) failures: Mutex<HashMap<ObjectRef<Release>, u32>>,
    /// The Releases the release type check compares with: the running controller's store.
    pub(super) known_releases: RwLock<KnownReleases>,
    /// Whether this replica may write; always, unless leader election is on.
    pub(super) leadership: Leadership,
    /// The metrics this controller reports.
    pub(super) metrics: Arc<Metrics>,
    /// Set once the Release watch has listed every Release, for `/readyz`.
    pub(super) ready: ReadyFlag,
    /// Sends `spec.notify` notifications in the background.
    pub(super) notifier: Notifier,
    /// Watches the kinds condition gates name, and wakes the Releases waiting on them.
    pub(super) gate_watches: GateWatches,
    /// The Jobs, Deployments and approvals the reconcile reads, once the controller runs.
    pub(super) caches: RwLock<Caches>,
    /// What saves reads between reconciles.
    pub(super) memos: Memos,
    /// The reconciles allowed to run at once, handed out first come, first served.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// The ReleasePolicy (namespace, name) that governs namespaces without one of their own.
    pub(super) default_policy: Option<(String, String)>,
    /// The name of the ValidatingAdmissionPolicy that enforces who signs ReleaseApprovals:
    /// approvals count only in namespaces it covers.
    pub(super) approval_policy: String,
}

/// The name of the approval identity policy in `config/approval-policy.yaml` (the chart's
/// is `<fullname>-approval-identity`, which is the same for the release name relman).
pub const DEFAULT_APPROVAL_POLICY: &str = "relman-approval-identity";

/// How many Releases [`run`] reconciles at once unless told otherwise
/// ([`Context::with_concurrency`]). Each reconcile in flight holds an HTTP connection to the API
/// server (with its buffers and TLS state); unbounded, a burst of 1,000 Releases opened
/// hundreds of them.
///
/// The bound is a FIFO semaphore taken at the start of each reconcile, not kube's
/// `Config::concurrency`: when every one of its slots is busy, kube parks due reconciles in a
/// hash set and picks from it in no particular order, and under a burst of 1,000 Releases one
/// of them waited ten minutes (until its rollout timed out). Waiting on the semaphore, a
/// reconcile holds no connection, and the oldest waiter goes first.
///
/// 64, not fewer: a Release whose gate opens waits behind every Release already due, so the
/// slots set the reaction time under a burst. With 1,000 Releases arriving at once on a
/// two-core test cluster, 16 slots answered a gate in 12 s (median) and 42 s (99th
/// percentile), 64 slots in 0.4 s and 2 s, with the same time to all Ready and less memory;
/// the cost is more requests (123 per Release against 73), as reconciles come sooner.
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// What the controller remembers between reconciles (see [`memo`]).
#[derive(Default)]
pub(super) struct Memos {
    pub(super) notes: memo::NotesMemo,
    pub(super) pods: memo::PodChecks,
    pub(super) written: memo::WrittenVersions,
    pub(super) dry_runs: memo::DryRuns,
    pub(super) denials: memo::Denials,
    pub(super) taken_jobs: memo::TakenJobs,
}

impl Context {
    /// A context for `client`; `instance` names this replica in Events.
    pub fn new(client: Client, instance: Option<String>, config: PlanConfig) -> Self {
        let reporter = Reporter {
            controller: "relman".into(),
            instance,
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let metrics = Arc::new(Metrics::new());
        Self {
            notifier: Notifier::new(client.clone(), recorder.clone()).with_metrics(metrics.clone()),
            recorder,
            gate_watches: GateWatches::new(client.clone()),
            caches: RwLock::new(Caches::default()),
            memos: Memos::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(usize::from(
                DEFAULT_CONCURRENCY,
            ))),
            approval_policy: DEFAULT_APPROVAL_POLICY.to_owned(),
            client,
            config,
            failures: Mutex::new(HashMap::new()),
            known_releases: RwLock::new(KnownReleases::default()),
            leadership: Leadership::always(),
            metrics,
            ready: ReadyFlag::new(),
            default_policy: None,
        }
    }

    /// Governs the namespaces without a ReleasePolicy of their own by the ReleasePolicy
    /// `(namespace, name)`; `None` keeps the built-in default.
    pub fn with_default_policy(mut self, policy: Option<(String, String)>) -> Self {
        self.default_policy = policy;
        self
    }

    /// What the reconcile reads instead of the API (empty until the controller runs).
    pub(super) fn caches(&self) -> Caches {
        self.caches
            .read()
            .map(|caches| caches.clone())
            .unwrap_or_default()
    }

    /// Where the release type check finds earlier releases (the store of the controller that
    /// runs with this context, once it runs).
    pub(super) fn known_releases(&self) -> KnownReleases {
        self.known_releases
            .read()
            .map(|known| known.clone())
            .unwrap_or_default()
    }
}

/// Leader election, metrics and readiness. [`Context::new`] is always the leader and keeps
/// private metrics, which suits a single in-process controller; `relman` sets all three.
impl Context {
    /// Writes only while `leadership` says this replica is the leader.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.notifier = self.notifier.with_leadership(leadership.clone());
        self.leadership = leadership;
        self
    }

    /// Reports to `metrics` (shared with the HTTP server's `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.notifier = self.notifier.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Sets `ready` once the Release watch has listed every Release.
    pub fn with_ready_flag(mut self, ready: ReadyFlag) -> Self {
        self.ready = ready;
        self
    }

    /// Reconciles at most `concurrency` Releases at once (at least one).
    pub fn with_concurrency(mut self, concurrency: u16) -> Self {
        self.slots = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency.max(1))));
        self
    }

    /// Counts approvals only in the namespaces that the ValidatingAdmissionPolicy `name`
    /// covers (default [`DEFAULT_APPROVAL_POLICY`]).
    pub fn with_approval_policy(mut self, name: impl Into<String>) -> Self {
        self.approval_policy = name.into();
        self
    }

    /// Retries notifications per `policy` (tests use short timeouts).
    pub fn with_notify_policy(mut self, policy: RetryPolicy) -> Self {
        self.notifier = self.notifier.with_policy(policy);
        self
    }

    /// The metrics this controller reports.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The watches of the kinds condition gates name.
    pub fn gate_watches(&self) -> &GateWatches {
        &self.gate_watches
    }

    /// Fails with [`Error::NotLeader`] unless this replica may write now. Checked right
    /// before each write, so a replica that lost the Lease stops at once.
    pub(super) fn ensure_leader(&self) -> Result<()> {
        if self.leadership.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    /// Reports the Releases by phase and leadership from now on, and sets the ready flag once
    /// `store` has listed every Release.
    pub(super) fn watch_store(&self, store: &kube::runtime::reflector::Store<Release>) {
        self.metrics.watch_releases(store.clone());
        self.metrics.watch_leadership(self.leadership.clone());
        let (store, ready) = (store.clone(), self.ready.clone());
        tokio::spawn(async move {
            // Store::wait_until_ready wakes only the last of several waiters, so ask again
            // now and then instead of waiting once.
            loop {
                match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => return ready.mark_ready(),
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            }
        });
    }

    /// Counts a status write and records the DORA observations it contains; `release` is
    /// the Release as read before the write.
    pub(super) fn record_status_written(
        &self,
        release: &Release,
        status: &ReleaseStatus,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if release.status.as_ref() != Some(status) {
            self.metrics
                .wrote(ControllerKind::Release, WriteKind::Status);
            self.metrics.record_status_written(release, status, now);
        }
    }

    /// Counts the planned step once taken.
    pub(super) fn record_action(&self, action: &Action) {
        if !matches!(action, Action::None) {
            self.metrics
                .wrote(ControllerKind::Release, WriteKind::Action);
        }
    }
}
