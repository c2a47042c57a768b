//! One reconcile of one Release: observe, plan, publish the notes that are due, write the
//! status, act, record Events and notify; and how failures back off.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

use super::act::{act, action_name, publish_events};
use super::context::Context;
use super::notes;
use super::observe::{self, observe};
use crate::api::release::ReleasePhase;
use crate::api::{Release, ReleaseStatus};
use crate::error::{Error, Result};
use crate::k8s::{self, status::StatusWrite};
use crate::metrics::ControllerKind;
use crate::plan::{self, Action};

/// The longest a reconcile holds its slot. One normally takes well under a second; a reconcile
/// stuck behind a hung or throttled API server is given up at this bound (writes are bounded
/// sooner, by the fence: `leader::WRITE_BUDGET`), its slot goes to the next Release, and it is
/// tried again with backoff. Giving up half-way is safe for the same reason a crash is: the
/// status is written before each step, and each step is idempotent.
pub const RECONCILE_BUDGET: Duration = Duration::from_secs(60);

/// One reconcile of one Release.
pub(super) async fn reconcile(release: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue> {
    // A standby keeps its caches warm and reads nothing more; see `leader`.
    ctx.ensure_leader()?;
    // First come, first served (see `DEFAULT_CONCURRENCY`); the semaphore is never closed.
    let _slot = ctx.slots.acquire().await.ok();
    // Leadership may have gone while this reconcile waited for its slot.
    ctx.ensure_leader()?;
    tokio::time::timeout(RECONCILE_BUDGET, reconcile_in_slot(release, ctx.clone()))
        .await
        .unwrap_or(Err(Error::TimedOut(RECONCILE_BUDGET)))
}

/// The reconcile proper, while it holds its slot.
async fn reconcile_in_slot(release: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue> {
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
pub(super) fn error_policy(release: Arc<Release>, error: &Error, ctx: Arc<Context>) -> Requeue {
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
pub(super) async fn write_status(
    client: &Client,
    release: &Release,
    status: &ReleaseStatus,
) -> Result<()> {
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
