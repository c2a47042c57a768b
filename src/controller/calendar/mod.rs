//! The ReleaseCalendar controller: keeps every calendar's status current.
//!
//! For each calendar it writes whether a Minor release could go out now, why, and when that
//! next changes; the Ready and Stalled conditions (an invalid rule or time zone stalls it);
//! the Releases that name it merged with its planned entries; and the conflicts among them.
//!
//! - Triggers: a calendar changes (its own watch), a Release that names a calendar (or is
//!   listed on one) changes or goes away, and the next change of the calendar's status
//!   (a window opening or closing, a freeze starting or ending), which is requeued exactly.
//!   Nothing polls.
//! - Reads: none per reconcile. Calendars and Releases come from the watches' stores, which
//!   the HTTP server's iCalendar feed reads too (see [`CalendarCache`]).
//! - Writes: the status, with server-side apply on the status subresource, only when it
//!   differs from the stored one, guarded by the calendar's resourceVersion so a status
//!   computed from a stale read is rejected (409) instead of overwriting a newer one. Only the
//!   replica holding the leader Lease writes ([`crate::leader`]).

mod feed;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, reflector, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

pub use feed::{CalendarCache, FEED_DAYS_AHEAD, FEED_DAYS_BACK};

use crate::api::{Release, ReleaseCalendar, ReleaseCalendarStatus};
use crate::k8s::scope::{Scope, watch_in};
use crate::k8s::status::{StatusWrite, apply_status};
use crate::leader::Leadership;
use crate::metrics::{ControllerKind, Metrics, WriteKind};

use crate::calendar::board::rows::release_key;
use crate::calendar::board::status::{DesiredStatus, desired_status, status_patch};

/// How long a reconcile waits for the Release watch to list every Release once.
const RELEASES_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which calendars and Releases one calendar controller looks at.
#[derive(Clone, Debug, Default)]
pub struct CalendarScope {
    /// List only the Releases of these namespaces on calendars (one watch per namespace).
    pub release_namespaces: Scope,
    /// Reconcile only the calendars that match this label selector; all when `None`.
    pub calendar_selector: Option<String>,
}

/// What can go wrong while reconciling a calendar.
#[derive(Debug, thiserror::Error)]
pub enum CalendarControllerError {
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The status could not be turned into JSON.
    #[error("could not serialize the status patch: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The status write raced with a newer version of the calendar; the next event retries.
    #[error("the ReleaseCalendar changed while it was reconciled; retrying with the newer version")]
    Conflict,
}

impl CalendarControllerError {
    /// A short, stable name for metrics labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) if status.code == 403 => "Forbidden",
            Self::Kube(kube::Error::Api(status)) if status.code == 404 => "NotFound",
            Self::Kube(kube::Error::Api(_)) => "ApiError",
            Self::Kube(_) => "ApiUnreachable",
            Self::Serialize(_) => "Serialize",
            Self::Conflict => "Conflict",
        }
    }
}

/// The calendar controller, built before it runs so the HTTP server can have its
/// [`CalendarCache`].
pub struct CalendarController {
    client: Client,
    scope: CalendarScope,
    controller: Controller<ReleaseCalendar>,
    release_writer: Writer<Release>,
    cache: CalendarCache,
    leadership: Leadership,
    metrics: Arc<Metrics>,
}

/// What every reconcile shares.
struct Context {
    client: Client,
    cache: CalendarCache,
    /// Whether this replica may write; always, unless leader election is on.
    leadership: Leadership,
    metrics: Arc<Metrics>,
    /// Consecutive failures per calendar, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl CalendarController {
    /// A controller for the calendars and Releases in `scope`.
    pub fn new(client: Client, scope: CalendarScope) -> Self {
        let mut config = watcher::Config::default().any_semantic();
        if let Some(selector) = &scope.calendar_selector {
            config = config.labels(selector);
        }
        // A calendar watch that survives API server restarts (see `k8s::watch`).
        let writer = reflector::store::Writer::<ReleaseCalendar>::default();
        let calendars = writer.as_reader();
        let events = reflector(
            writer,
            crate::k8s::watch::watch(Api::<ReleaseCalendar>::all(client.clone()), config)
                .default_backoff(),
        )
        .applied_objects();
        let controller = Controller::for_stream(events, calendars)
            .trigger_backoff(crate::k8s::watch::NoTriggerPause);
        let (releases, release_writer) = reflector::store();
        let cache = CalendarCache {
            calendars: controller.store(),
            releases,
        };
        Self {
            client,
            scope,
            controller,
            release_writer,
            cache,
            leadership: Leadership::always(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Writes only while `leadership` says this replica is the leader; becoming the leader
    /// reconciles every calendar.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Reports reconciles and writes to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The calendars and Releases this controller sees, for the iCalendar feed. They fill
    /// once [`CalendarController::run`] runs.
    pub fn cache(&self) -> CalendarCache {
        self.cache.clone()
    }

    /// Runs until `shutdown` completes. Fails at once when the ReleaseCalendar CRD is not
    /// installed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<(), CalendarControllerError> {
        let calendars: Api<ReleaseCalendar> = Api::all(self.client.clone());
        calendars
            .list(&ListParams::default().limit(1))
            .await
            .inspect_err(|e| {
                tracing::error!(error = %e, "cannot list ReleaseCalendars: are relman's CRDs installed? (kubectl apply -f crds/)");
            })?;
        let releases = watch_in(
            &self.client,
            &self.scope.release_namespaces,
            watcher::Config::default().any_semantic(),
            self.cache.releases.clone(),
        );
        // The Release watch runs beside the controller and wakes it after the store has the
        // change. A channel of one coalesces bursts: a pending wake-up covers later changes.
        let (wake, woken) = mpsc::channel::<()>(1);
        let release_watch = watch_releases(releases, self.release_writer, self.cache.clone(), wake);
        let gained_leadership = self.leadership.gained();
        let ctx = Arc::new(Context {
            client: self.client,
            cache: self.cache,
            leadership: self.leadership,
            metrics: self.metrics,
            failures: Mutex::new(HashMap::new()),
        });
        let controller = self
            .controller
            .reconcile_all_on(receiver_stream(woken))
            .reconcile_all_on(gained_leadership)
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                match result {
                    Ok((calendar, _)) => tracing::debug!(%calendar, "calendar reconciled"),
                    Err(e) => crate::k8s::watch::log_controller_error("calendar", &e),
                }
            });
        tokio::select! {
            () = controller => {},
            () = release_watch => {},
        }
        Ok(())
    }
}

/// Keeps the Release store current and wakes the controller when a Release that names a
/// watched calendar, or is listed on one, changes or goes away, and after every relist (which
/// may have dropped Releases deleted while the watch was down). Runs until dropped.
async fn watch_releases(
    events: impl Stream<Item = watcher::Result<watcher::Event<Release>>> + Send,
    writer: Writer<Release>,
    cache: CalendarCache,
    wake: mpsc::Sender<()>,
) {
    let events = events.modify(keep_what_calendars_read).reflect(writer);
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let wake_up = match &event {
            Ok(watcher::Event::Apply(release) | watcher::Event::Delete(release)) => {
                concerns_a_calendar(&cache, release)
            }
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, "the Release watch failed; retrying");
                false
            }
        };
        if wake_up {
            // Full means a wake-up is pending, and it will read the newer store.
            let _ = wake.try_send(());
        }
    }
}

/// Drops what no calendar reads from the copy of a Release the calendar store keeps: managed
/// fields, stages, images, requirements and every status field but the phase. A Release's
/// stages carry whole Job templates and its status a history; without them the store holds a
/// small fraction of each Release.
fn keep_what_calendars_read(release: &mut Release) {
    release.metadata.managed_fields = None;
    release.metadata.annotations = None;
    release.spec.stages = Vec::new();
    release.spec.images = Vec::new();
    release.spec.requirements = Vec::new();
    release.spec.notify = Vec::new();
    release.status = release
        .status
        .take()
        .map(|status| crate::api::ReleaseStatus {
            phase: status.phase,
            ..Default::default()
        });
}

/// Whether a Release change can change a calendar's status: it names a watched calendar, or
/// a calendar lists it (it was moved to another calendar or deleted).
fn concerns_a_calendar(cache: &CalendarCache, release: &Release) -> bool {
    let names_one = release
        .spec
        .calendar
        .as_deref()
        .is_some_and(|name| cache.calendar(name).is_some());
    names_one || !cache.calendars_listing(&release_key(release)).is_empty()
}

/// The items of a channel as a stream.
fn receiver_stream(receiver: mpsc::Receiver<()>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// One reconcile of one calendar: compute its status from the stores, write it if it changed,
/// and come back when it changes by itself.
async fn reconcile(
    calendar: Arc<ReleaseCalendar>,
    ctx: Arc<Context>,
) -> Result<Requeue, CalendarControllerError> {
    if !ctx.cache.wait_until_ready(RELEASES_READY_TIMEOUT).await {
        // Listing every Release before writing avoids a status that lists only some of them.
        return Ok(Requeue::requeue(Duration::from_secs(1)));
    }
    if !ctx.leadership.is_leader() {
        // A standby writes nothing; becoming the leader reconciles every calendar.
        return Ok(Requeue::await_change());
    }
    let _timer = ctx.metrics.reconcile_timer(ControllerKind::Calendar);
    let name = calendar.name_any();
    let now = Utc::now();
    let releases = ctx.cache.releases_of(&name);
    let desired = desired_status(
        &calendar,
        releases.iter().map(|release| release.as_ref()),
        now,
    );
    let written = write_if_changed(&ctx.client, &calendar, &desired).await?;
    if written {
        ctx.metrics
            .wrote(ControllerKind::Calendar, WriteKind::Status);
    }
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&name);
    }
    log_outcome(&name, &desired, written);
    Ok(requeue_at(desired.next_change, now))
}

/// Writes the desired status unless the calendar has it already; says whether it wrote.
async fn write_if_changed(
    client: &Client,
    calendar: &ReleaseCalendar,
    desired: &DesiredStatus,
) -> Result<bool, CalendarControllerError> {
    match status_patch(calendar, desired) {
        Some(status) => write_status(client, calendar, &status).await.map(|()| true),
        None => Ok(false),
    }
}

/// A write is news (info); a reconcile that found nothing to change is not (debug).
fn log_outcome(name: &str, desired: &DesiredStatus, written: bool) {
    let status = &desired.status;
    if written {
        tracing::info!(
            calendar = %name,
            open = ?status.open,
            reason = status.reason.as_deref().unwrap_or_default(),
            releases = status.releases.len(),
            conflicts = status.conflicts.len(),
            next_change = ?desired.next_change,
            "calendar status written"
        );
    } else {
        tracing::debug!(
            calendar = %name,
            next_change = ?desired.next_change,
            "calendar status unchanged"
        );
    }
}

/// Requeue exactly at `next_change`, or wait for a watch event when there is none.
fn requeue_at(next_change: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Requeue {
    match next_change {
        Some(at) => Requeue::requeue((at - now).to_std().unwrap_or(Duration::ZERO)),
        None => Requeue::await_change(),
    }
}

/// Transient errors back off exponentially per calendar, from 1 s to 5 min; a conflict (a
/// newer calendar is on its way through the watch) retries at once.
fn error_policy(
    calendar: Arc<ReleaseCalendar>,
    error: &CalendarControllerError,
    ctx: Arc<Context>,
) -> Requeue {
    ctx.metrics
        .reconcile_failed(ControllerKind::Calendar, error.category());
    if matches!(error, CalendarControllerError::Conflict) {
        return Requeue::requeue(Duration::from_millis(200));
    }
    let name = calendar.name_any();
    let attempts = ctx
        .failures
        .lock()
        .map(|mut failures| {
            let n = failures.entry(name.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay = Duration::from_secs(1u64 << attempts.min(9).saturating_sub(1))
        .min(Duration::from_secs(300));
    tracing::warn!(
        calendar = %name,
        category = error.category(),
        error = %error,
        retry_in_s = delay.as_secs(),
        "calendar reconcile failed"
    );
    Requeue::requeue(delay)
}

/// Writes `status` with server-side apply. The patch carries the resourceVersion the status
/// was computed from, so a status computed from a stale read is rejected instead of
/// overwriting a newer one.
async fn write_status(
    client: &Client,
    calendar: &ReleaseCalendar,
    status: &ReleaseCalendarStatus,
) -> Result<(), CalendarControllerError> {
    let api: Api<ReleaseCalendar> = Api::all(client.clone());
    match apply_status(&api, calendar, status).await? {
        StatusWrite::Written => Ok(()),
        StatusWrite::Stale => Err(CalendarControllerError::Conflict),
    }
}
