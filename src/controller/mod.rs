//! The Release controller: observe → plan → status → act, driven by watch events.
//!
//! Each reconcile reads the world ([`observe`]), asks the pure planner for one step
//! ([`crate::plan::plan`]), writes the planned status with server-side apply (skipped when
//! unchanged, and guarded by the Release's resourceVersion so a stale read never overwrites a
//! newer status), then takes the step and records the planned Events. The controller watches
//! Releases, the Jobs and Deployments it drives (by label), ReleaseApprovals and
//! ReleaseCalendars, so a finished Job or a new approval moves a release on at once. Only the
//! replica holding the leader Lease reconciles and writes ([`crate::leader`]); reconciles,
//! writes and the DORA transitions they record are counted in [`crate::metrics`]. After the
//! Events, the `spec.notify` notifications of the reconcile's transitions go out in the
//! background ([`crate::notify`]).

pub mod calendar;
mod gate_watch;
mod gates;
mod memo;
mod notes;
mod observe;
mod stores;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

pub use gate_watch::GateWatches;
pub use gates::KnownReleases;
pub use observe::observe;
use stores::{Cache, Caches};

use crate::api::release::ReleasePhase;
use crate::api::{Release, ReleaseApproval, ReleaseCalendar, ReleaseStatus};
use crate::error::{Error, Result};
use crate::k8s::{self, deployment::Driver, status::StatusWrite};
use crate::leader::Leadership;
use crate::metrics::{ControllerKind, Metrics, WriteKind};
use crate::notify::{Notifier, RetryPolicy};

use crate::api::labels::{
    ANNOTATION_DRIVEN_BY, ANNOTATION_KNOWN_GOOD_RELEASE, ANNOTATION_REVERTED_BY, LABEL_RELEASE,
    LABEL_RELEASE_NAMESPACE,
};
use crate::plan::{self, Action, EventType, Plan, PlanConfig};
use crate::readiness::ReadyFlag;

/// What every reconcile shares.
pub struct Context {
    client: Client,
    recorder: Recorder,
    config: PlanConfig,
    /// Consecutive failures per Release, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<Release>, u32>>,
    /// The Releases the release type check compares with: the running controller's store.
    known_releases: RwLock<KnownReleases>,
    /// Whether this replica may write; always, unless leader election is on.
    leadership: Leadership,
    /// The metrics this controller reports.
    metrics: Arc<Metrics>,
    /// Set once the Release watch has listed every Release, for `/readyz`.
    ready: ReadyFlag,
    /// Sends `spec.notify` notifications in the background.
    notifier: Notifier,
    /// Watches the kinds condition gates name, and wakes the Releases waiting on them.
    gate_watches: GateWatches,
    /// The Jobs, Deployments and approvals the reconcile reads, once the controller runs.
    caches: RwLock<Caches>,
    /// What saves reads between reconciles.
    memos: Memos,
    /// The reconciles allowed to run at once, handed out first come, first served.
    slots: Arc<tokio::sync::Semaphore>,
}

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
struct Memos {
    notes: memo::NotesMemo,
    pods: memo::PodChecks,
    written: memo::WrittenVersions,
    dry_runs: memo::DryRuns,
    denials: memo::Denials,
    taken_jobs: memo::TakenJobs,
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
            client,
            config,
            failures: Mutex::new(HashMap::new()),
            known_releases: RwLock::new(KnownReleases::default()),
            leadership: Leadership::always(),
            metrics,
            ready: ReadyFlag::new(),
        }
    }

    /// What the reconcile reads instead of the API (empty until the controller runs).
    fn caches(&self) -> Caches {
        self.caches
            .read()
            .map(|caches| caches.clone())
            .unwrap_or_default()
    }

    /// Where the release type check finds earlier releases (the store of the controller that
    /// runs with this context, once it runs).
    fn known_releases(&self) -> KnownReleases {
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
    fn ensure_leader(&self) -> Result<()> {
        if self.leadership.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    /// Reports the Releases by phase and leadership from now on, and sets the ready flag once
    /// `store` has listed every Release.
    fn watch_store(&self, store: &kube::runtime::reflector::Store<Release>) {
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
    fn record_status_written(
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
    fn record_action(&self, action: &Action) {
        if !matches!(action, Action::None) {
            self.metrics
                .wrote(ControllerKind::Release, WriteKind::Action);
        }
    }
}

/// An Api for `K` in `namespace`, or in all namespaces.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` completes. With `namespace` it reconciles only the
/// Releases of that namespace (and watches only its Jobs, Deployments and approvals).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let releases: Api<Release> = scoped(&client, ns);
    // Fail fast, with the fix, when the CRDs are not installed.
    releases
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot list Releases: are relman's CRDs installed? (kubectl apply -f crds/)");
            e
        })?;

    // One Release watch, resumed with a fresh list when the API server lost its version (see
    // `k8s::watch`). Besides waking the Release itself, a Release that changes or goes away
    // (e.g. finishes) may free a Deployment another Release waits for: those are woken too.
    let writer = reflector::store::Writer::<Release>::default();
    let store = writer.as_reader();
    let (sharing, shared) = futures::channel::mpsc::unbounded();
    let sharing_store = store.clone();
    let release_events = reflector(
        writer,
        k8s::watch::watch(releases, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(slim_release),
    )
    .inspect(move |event| {
        // Only a Release that finished or went away frees a Deployment; looking at every
        // other Release on every change made a burst of N new Releases cost N² comparisons.
        let freed = match event {
            Ok(watcher::Event::Apply(changed)) if changed.is_finished() => Some(changed),
            Ok(watcher::Event::Delete(changed)) => Some(changed),
            _ => None,
        };
        if let Some(changed) = freed {
            for other in releases_sharing_a_deployment(&sharing_store.state(), changed) {
                let _ = sharing.unbounded_send(other);
            }
        }
    })
    .applied_objects()
    // Only a new generation (a spec change) or a Release seen for the first time wakes the
    // Release itself: its status writes, relman's own or the notifier's, do not. Each step
    // that must follow a status write asks for it (`Plan::requeue_after`), and what a release
    // waits for (Deployments, Jobs, approvals, calendars, gates) wakes it through the watches
    // below. Half of all reconciles were relman answering its own status writes.
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let controller = Controller::for_stream(release_events, store.clone())
        .trigger_backoff(k8s::watch::NoTriggerPause);
    ctx.watch_store(&store);
    if let Ok(mut known) = ctx.known_releases.write() {
        *known = KnownReleases::from_store(store.clone());
    }
    ctx.gate_watches.set_releases(store.clone());
    let (jobs, job_events) = Cache::watch(
        scoped::<Job>(&client, ns),
        watcher::Config::default().labels(LABEL_RELEASE),
    );
    let (approvals, approval_events) = Cache::watch(
        scoped::<ReleaseApproval>(&client, ns),
        watcher::Config::default(),
    );
    let (deployments, deployment_events) = Cache::watch(
        scoped::<Deployment>(&client, ns),
        watcher::Config::default().labels(LABEL_RELEASE),
    );
    if let Ok(mut caches) = ctx.caches.write() {
        *caches = Caches {
            jobs: Some(jobs),
            approvals: Some(approvals),
            deployments: Some(deployments),
        };
    }
    let calendar_store = store.clone();
    let calendar_generations = GenerationMemory::default();
    controller
        .reconcile_on(shared)
        .watches_stream(job_events, |job| release_from_labels(&job))
        .watches_stream(deployment_events, |deployment| {
            releases_of_deployment(&deployment)
        })
        .watches_stream(approval_events, |approval| {
            approval
                .namespace()
                .map(|ns| ObjectRef::new(&approval.spec.release).within(&ns))
        })
        .watches_stream(
            touched(
                Api::<ReleaseCalendar>::all(client.clone()),
                watcher::Config::default(),
            ),
            move |calendar| {
                // Only a change of the calendar's spec can change a window; its status writes
                // (every open/close) must not wake every Release that names it.
                if !calendar_generations.changed(&calendar) {
                    return Vec::new();
                }
                let name = calendar.name_any();
                calendar_store
                    .state()
                    .iter()
                    .filter(|r| r.spec.calendar.as_deref() == Some(name.as_str()))
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A condition a gate waits for flipped on another object.
        .reconcile_on(ctx.gate_watches.wakeups())
        // A new leader reconciles every Release: the standby skipped them all.
        .reconcile_all_on(ctx.leadership.gained())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((release, _)) => tracing::debug!(%release, "reconciled"),
                Err(e) => k8s::watch::log_controller_error("release", &e),
            }
        })
        .await;
    Ok(())
}

/// Drops what the controller never reads from the copy of a Release its store keeps: the
/// managed fields (kubectl's, relman's status, the notifier's) and the copy of the whole
/// manifest `kubectl apply` leaves in an annotation. Together they can double a Release's size.
fn slim_release(release: &mut Release) {
    release.metadata.managed_fields = None;
    if let Some(annotations) = release.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The objects of `api` that change or go away, for `Controller::watches_stream`: a watch that
/// survives API server restarts ([`k8s::watch`]), with backoff.
fn touched<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    k8s::watch::watch(api, config)
        .default_backoff()
        .touched_objects()
}

/// The last `metadata.generation` seen per object, to tell spec changes from status writes.
#[derive(Default)]
struct GenerationMemory(Mutex<HashMap<String, Option<i64>>>);

impl GenerationMemory {
    /// Whether `object`'s generation differs from the one seen last (true the first time).
    fn changed<K: Resource>(&self, object: &K) -> bool {
        let key = object
            .meta()
            .uid
            .clone()
            .unwrap_or_else(|| object.name_any());
        let generation = object.meta().generation;
        match self.0.lock() {
            Ok(mut seen) => seen.insert(key, generation) != Some(generation),
            Err(_) => true,
        }
    }
}

/// The other unfinished Releases that name one of `changed`'s Deployments.
fn releases_sharing_a_deployment(
    releases: &[Arc<Release>],
    changed: &Release,
) -> Vec<ObjectRef<Release>> {
    let deployments = |r: &Release| -> Vec<(String, String)> {
        let ns = r.namespace().unwrap_or_default();
        r.spec
            .stages
            .iter()
            .flat_map(|s| {
                let ns = s.namespace_or(&ns).to_owned();
                s.deployments.iter().map(move |d| (ns.clone(), d.0.clone()))
            })
            .collect()
    };
    let mine = deployments(changed);
    releases
        .iter()
        .filter(|r| r.uid() != changed.uid() && !r.is_finished())
        .filter(|r| deployments(r).iter().any(|d| mine.contains(d)))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The Release named by a Job's labels.
fn release_from_labels(job: &Job) -> Option<ObjectRef<Release>> {
    let labels = job.labels();
    let namespace = labels.get(LABEL_RELEASE_NAMESPACE)?;
    // The release label may be shortened to 63 characters; the annotation on the Job's owner
    // reference is not available across namespaces, so the label is the reference.
    Some(ObjectRef::new(labels.get(LABEL_RELEASE)?).within(namespace))
}

/// The Releases a change of a driven Deployment concerns: the one that drives it (its
/// `relman.io/driven-by` annotation), the one whose revision it last marked known-good
/// (`relman.io/known-good-release`, `namespace/name@version`) and the one that last reverted it
/// (`relman.io/reverted-by`). When a newer Release rolls out to the Deployment, the second is
/// the release it supersedes, which then says so; a revert hands the Deployment back to its
/// previous driver, and the third still hears of the revert's rollout.
fn releases_of_deployment(deployment: &Deployment) -> Vec<ObjectRef<Release>> {
    let annotations = deployment.annotations();
    let driver = annotations.get(ANNOTATION_DRIVEN_BY).map(String::as_str);
    let reverter = annotations.get(ANNOTATION_REVERTED_BY).map(String::as_str);
    let known_good = annotations
        .get(ANNOTATION_KNOWN_GOOD_RELEASE)
        .and_then(|value| value.split_once('@'))
        .map(|(release, _)| release);
    let mut out: Vec<ObjectRef<Release>> = Vec::new();
    for (namespace, name) in [driver, known_good, reverter]
        .into_iter()
        .flatten()
        .filter_map(|value| value.split_once('/'))
    {
        let reference = ObjectRef::new(name).within(namespace);
        if !out.contains(&reference) {
            out.push(reference);
        }
    }
    out
}

/// One reconcile of one Release.
async fn reconcile(release: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue> {
    // A standby keeps its caches warm and reads nothing more; see `leader`.
    ctx.ensure_leader()?;
    // First come, first served (see `DEFAULT_CONCURRENCY`); the semaphore is never closed.
    let _slot = ctx.slots.acquire().await.ok();
    // Leadership may have gone while this reconcile waited for its slot.
    ctx.ensure_leader()?;
    let _timer = ctx.metrics.reconcile_timer(ControllerKind::Release);
    let started = std::time::Instant::now();
    if release.is_finished() && observed_generation(&release) == release.metadata.generation {
        // Succeeded or RolledBack, and nothing asked of it since (an abort or a root cause
        // changes the spec): a rolled-back release has nothing to read and nothing to do; a
        // succeeded one only says whether its Deployments still run it.
        if release.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::Succeeded) {
            return refresh_standing(&ctx, &release).await;
        }
        return Ok(Requeue::await_change());
    }
    let now = chrono::Utc::now();
    let observe::Observation {
        observed,
        pods_recheck,
    } = observe(&ctx, &release, now).await?;
    let plan = plan::plan(&observed);
    ctx.ensure_leader()?;
    // Release notes go out before the status records a started stage (so before production).
    notes::publish(&ctx, &release, &plan.status).await?;
    write_status(&ctx.client, &release, &plan.status).await?;
    ctx.record_status_written(&release, &plan.status, now);
    ctx.ensure_leader()?;
    let uid = release.uid().unwrap_or_default();
    match act(&ctx, &release, &plan.action).await {
        Ok(()) => {
            if plan.action != Action::None {
                ctx.memos.denials.allowed(&uid);
            }
        }
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 403 => {
            // Not a retry loop: the next plan stalls the release with the refusal (a status
            // write and a Warning Event), then tries again at the planner's slow pace.
            let new = ctx.memos.denials.denied(&uid, &status.message);
            tracing::warn!(
                release = %ObjectRef::from_obj(release.as_ref()),
                action = action_name(&plan.action),
                message = %status.message,
                "the API server denied relman's request"
            );
            publish_events(&ctx, &release, &plan).await;
            return Ok(Requeue::requeue(if new {
                Duration::ZERO
            } else {
                plan.requeue_after
                    .unwrap_or(plan::lifecycle::FORBIDDEN_RECHECK)
            }));
        }
        Err(Error::JobNameTaken {
            namespace,
            name,
            owner,
        }) => {
            // The planner sees it on the next reconcile and moves on to fresh names.
            ctx.memos.taken_jobs.taken(
                &uid,
                plan::ObservedJob {
                    namespace,
                    name,
                    state: plan::JobState::Running { since: now },
                    pod_problems: Vec::new(),
                    release_uid: Some(owner.unwrap_or_else(|| "none".to_owned())),
                },
            );
            return Ok(Requeue::requeue(Duration::ZERO));
        }
        Err(other) => return Err(other),
    }
    ctx.record_action(&plan.action);
    publish_events(&ctx, &release, &plan).await;
    // After the status write: each transition notifies once (see `crate::notify`).
    if ctx.ensure_leader().is_ok() {
        ctx.notifier.dispatch(&release, &plan.events);
    }
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&ObjectRef::from_obj(release.as_ref()));
    }
    tracing::info!(
        release = %ObjectRef::from_obj(release.as_ref()),
        phase = ?plan.status.phase,
        action = action_name(&plan.action),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    let requeue = match (plan.requeue_after, pods_recheck) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(match requeue {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// Updates a succeeded release's `Superseded` and `Drifted` conditions from the Deployment
/// cache alone: no API read, and no write while nothing changed. Until the cache has listed
/// every Deployment it looks again a little later.
async fn refresh_standing(ctx: &Context, release: &Release) -> Result<Requeue> {
    let caches = ctx.caches();
    let Some(cache) = caches.deployments.as_ref() else {
        return Ok(Requeue::await_change());
    };
    if !cache.is_ready() {
        return Ok(Requeue::requeue(STANDING_CACHE_WAIT));
    }
    let mut deployments: Vec<plan::ObservedDeployment> = Vec::new();
    for stage in release.status.iter().flat_map(|s| &s.stages) {
        for captured in &stage.deployments {
            if deployments
                .iter()
                .any(|d| d.namespace == captured.namespace && d.name == captured.name)
            {
                continue;
            }
            if let Some(found) = cache.get(&captured.namespace, &captured.name) {
                deployments.push(plan::ObservedDeployment::from_deployment(
                    &found,
                    Vec::new(),
                ));
            }
        }
    }
    let plan = plan::plan_standing(release, deployments, chrono::Utc::now());
    if release.status.as_ref() == Some(&plan.status) {
        return Ok(Requeue::await_change());
    }
    ctx.ensure_leader()?;
    write_status(&ctx.client, release, &plan.status).await?;
    publish_events(ctx, release, &plan).await;
    if ctx.ensure_leader().is_ok() {
        ctx.notifier.dispatch(release, &plan.events);
    }
    Ok(Requeue::await_change())
}

/// How long a succeeded release waits to check its Deployments while the Deployment cache of
/// a starting controller has not listed them yet.
const STANDING_CACHE_WAIT: Duration = Duration::from_secs(10);

/// The generation the stored status was planned from.
fn observed_generation(release: &Release) -> Option<i64> {
    release.status.as_ref().and_then(|s| s.observed_generation)
}

/// Transient errors back off exponentially per Release, from 1 s to 5 min; a conflict (a
/// newer Release is on its way through the watch) retries at once.
fn error_policy(release: Arc<Release>, error: &Error, ctx: Arc<Context>) -> Requeue {
    if matches!(error, Error::NotLeader) {
        // The leader carries on; becoming the leader reconciles every Release again.
        return Requeue::await_change();
    }
    ctx.metrics
        .reconcile_failed(ControllerKind::Release, error.category());
    if matches!(error, Error::Conflict | Error::DeploymentChanged { .. }) {
        return Requeue::requeue(Duration::from_millis(200));
    }
    let attempts = ctx
        .failures
        .lock()
        .map(|mut failures| {
            let n = failures
                .entry(ObjectRef::from_obj(release.as_ref()))
                .or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay = Duration::from_secs(1u64 << attempts.min(8).saturating_sub(1))
        .min(Duration::from_secs(300));
    tracing::warn!(
        release = %ObjectRef::from_obj(release.as_ref()),
        category = error.category(),
        error = %error,
        retry_in_s = delay.as_secs(),
        "reconcile failed"
    );
    Requeue::requeue(delay)
}

/// Writes `status` unless it equals the observed one. The patch carries the resourceVersion
/// the plan was made from, so a plan made from a stale read is rejected (409) instead of
/// overwriting a newer status. `status.notifications` belongs to the notifier (its own field
/// manager) and is left out.
async fn write_status(client: &Client, release: &Release, status: &ReleaseStatus) -> Result<()> {
    if release.status.as_ref() == Some(status) {
        return Ok(());
    }
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Release> = Api::namespaced(client.clone(), &namespace);
    let owned = ReleaseStatus {
        notifications: Vec::new(),
        ..status.clone()
    };
    match k8s::status::apply_status(&api, release, &owned).await? {
        StatusWrite::Written => Ok(()),
        StatusWrite::Stale => Err(Error::Conflict),
    }
}

/// Takes the planned step. A Deployment write's resourceVersion is remembered, so the next
/// reconcile does not plan from a cached copy older than it.
async fn act(ctx: &Context, release: &Release, action: &Action) -> Result<()> {
    let client = &ctx.client;
    let written = |deployment: Deployment| {
        ctx.memos.written.wrote(
            &deployment.namespace().unwrap_or_default(),
            &deployment.name_any(),
            deployment.metadata.resource_version.as_deref(),
        );
    };
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    let driver = Driver {
        namespace: &namespace,
        name: &name,
    };
    let reverter = &driver;
    match action {
        Action::None => Ok(()),
        Action::CreateJob { namespace, job, .. } => {
            k8s::job::create_job(client, namespace, job).await
        }
        Action::RollOut {
            namespace,
            deployment,
            images,
            ..
        } => k8s::deployment::roll_out(client, namespace, deployment, images, &driver)
            .await
            .map(written),
        Action::Revert {
            namespace,
            deployment,
            template,
            generation,
            driver,
            ..
        } => {
            let reverted = k8s::deployment::revert_to_known_good(
                client,
                namespace,
                deployment,
                template,
                *generation,
                driver.as_deref(),
                &format!("{}/{}", reverter.namespace, reverter.name),
            )
            .await;
            if matches!(reverted, Err(Error::DeploymentChanged { .. })) {
                // Plan again from the API's copy, not from a cache that may lag the change.
                ctx.memos.written.wrote(namespace, deployment, None);
            }
            reverted.map(written)
        }
        Action::MarkKnownGood {
            namespace,
            deployment,
            annotations,
            ..
        } => k8s::deployment::mark_known_good(client, namespace, deployment, annotations)
            .await
            .map(written),
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::None => "None",
        Action::CreateJob { .. } => "CreateJob",
        Action::RollOut { .. } => "RollOut",
        Action::Revert { .. } => "Revert",
        Action::MarkKnownGood { .. } => "MarkKnownGood",
    }
}

/// Records the plan's Events on the Release. A failure to record is logged, never fatal.
async fn publish_events(ctx: &Context, release: &Release, plan: &Plan) {
    let reference = release.object_ref(&());
    for event in &plan.events {
        if ctx.ensure_leader().is_err() {
            return;
        }
        let type_ = match event.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        let kube_event = Event {
            type_,
            reason: event.reason.clone(),
            note: Some(event.message.chars().take(1000).collect()),
            action: action_name(&plan.action).to_owned(),
            secondary: None,
        };
        match ctx.recorder.publish(&kube_event, &reference).await {
            Ok(()) => ctx.metrics.wrote(ControllerKind::Release, WriteKind::Event),
            Err(e) => {
                tracing::warn!(error = %e, reason = %event.reason, "could not record an Event")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::release::ReleasePhase;

    fn calendar(generation: i64) -> ReleaseCalendar {
        let mut calendar: ReleaseCalendar = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseCalendar",
            "metadata": {"name": "q4", "uid": "u-1"},
            "spec": {}
        }))
        .expect("valid calendar");
        calendar.metadata.generation = Some(generation);
        calendar
    }

    #[test]
    fn generation_memory_tells_spec_changes_from_status_writes() {
        let memory = GenerationMemory::default();
        assert!(
            memory.changed(&calendar(1)),
            "first sight counts as a change"
        );
        assert!(
            !memory.changed(&calendar(1)),
            "a status write keeps the generation"
        );
        assert!(memory.changed(&calendar(2)), "a spec edit bumps it");
    }

    #[test]
    fn releases_sharing_a_deployment_are_found_unless_finished() {
        let release = |name: &str, deployment: &str, phase: Option<ReleasePhase>| {
            let mut r: Release = serde_json::from_value(json!({
                "apiVersion": "relman.io/v1alpha1", "kind": "Release",
                "metadata": {"name": name, "namespace": "shop", "uid": name},
                "spec": {"application": "web", "version": "1.0.0", "type": "Patch", "owner": "o",
                    "images": [{"container": "api", "image": "web:1"}],
                    "stages": [{"name": "staging", "deployments": [deployment]}]}
            }))
            .expect("valid release");
            r.status = phase.map(|p| ReleaseStatus {
                phase: Some(p),
                ..Default::default()
            });
            Arc::new(r)
        };
        let changed = release("a", "web", Some(ReleasePhase::RolledBack));
        let all = vec![
            changed.clone(),
            release("waiting", "web", Some(ReleasePhase::Pending)),
            release("done", "web", Some(ReleasePhase::Succeeded)),
            release("other", "api", None),
        ];
        let found = releases_sharing_a_deployment(&all, &changed);
        assert_eq!(found, vec![ObjectRef::new("waiting").within("shop")]);
    }
}
