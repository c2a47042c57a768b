//! Prometheus metrics, served at `/metrics` (see `docs/observability.md`).
//!
//! - Reconciles: `relman_reconciles_total`, `relman_reconcile_errors_total` (by
//!   [`crate::error::Error::category`]), `relman_reconcile_duration_seconds`, and
//!   `relman_api_writes_total` (status writes, actions and Events; zero at steady state).
//! - State, computed at scrape time: `relman_releases` by phase (from the Release controller's
//!   watch) and `relman_leader` (1 on the replica that holds the Lease).
//! - The four DORA metrics per application: `relman_dora_deployments_total` (deployment
//!   frequency), `relman_dora_lead_time_seconds`, `relman_dora_production_changes_total` and
//!   `relman_dora_production_reverts_total` (change failure rate is their ratio), and
//!   `relman_dora_time_to_restore_seconds`.
//!
//! DORA observations come from status transitions ([`dora_observations`]): the controller
//! records them right after it wrote the status that contains the transition. The status
//! write is guarded by the Release's resourceVersion and only the leader writes, so each
//! transition is recorded once across all replicas; see the caveats in the docs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::labels::ANNOTATION_COMMIT_TIME;
use crate::api::release::{IncidentStatus, ReleasePhase};
use crate::api::{Release, ReleaseStatus};
use crate::leader::Leadership;

/// The `Content-Type` of the Prometheus text format served by default.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of the OpenMetrics text format, served when a scraper asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reconcile durations: 5 ms to 30 s.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Lead times: 5 minutes to 30 days.
const LEAD_TIME_BUCKETS: [f64; 12] = [
    300.0,
    900.0,
    1_800.0,
    3_600.0,
    7_200.0,
    14_400.0,
    28_800.0,
    86_400.0,
    172_800.0,
    604_800.0,
    1_209_600.0,
    2_592_000.0,
];

/// Times to restore: 30 seconds to 1 day.
const TIME_TO_RESTORE_BUCKETS: [f64; 10] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0, 14_400.0, 43_200.0, 86_400.0,
];

/// Every phase, so `relman_releases` has a series (possibly 0) for each.
const PHASES: [ReleasePhase; 8] = [
    ReleasePhase::Pending,
    ReleasePhase::Progressing,
    ReleasePhase::AwaitingApproval,
    ReleasePhase::AwaitingWindow,
    ReleasePhase::Succeeded,
    ReleasePhase::RollingBack,
    ReleasePhase::RolledBack,
    ReleasePhase::Failed,
];

/// The controllers that report reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    /// The Release controller.
    Release,
    /// The ReleaseCalendar status controller.
    Calendar,
}

impl ControllerKind {
    /// The `controller` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Calendar => "calendar",
        }
    }
}

/// The API writes a reconcile makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// A status written with server-side apply.
    Status,
    /// The planned step: a Job created, a Deployment rolled out, reverted or marked.
    Action,
    /// A Kubernetes Event recorded.
    Event,
}

impl WriteKind {
    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Action => "action",
            Self::Event => "event",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    controller: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplicationLabels {
    application: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// One DORA observation, made when a Release's status records a transition.
#[derive(Clone, Debug, PartialEq)]
pub enum DoraObservation {
    /// The release succeeded: every stage, production included, is verified. Counts toward
    /// deployment frequency; `lead_time` runs from the commit (or the Release's creation) to
    /// production verified.
    Deployed {
        /// Seconds from the commit time (or creation) to production verified.
        lead_time: Option<f64>,
    },
    /// The release changed production for the first time (captured the known-good state of
    /// a stage after the first, right before rolling it out): a change for the change
    /// failure rate.
    ProductionChanged,
    /// A revert of production completed (`status.incident.restoredAt` set).
    ProductionReverted {
        /// Seconds from the failure detected (`openedAt`) to the revert complete.
        time_to_restore: Option<f64>,
    },
}

/// The DORA observations in the step from `release`'s stored status to `new`, at `now`.
/// Each transition is seen once: the next reconcile starts from the status that has it.
pub fn dora_observations(
    release: &Release,
    new: &ReleaseStatus,
    now: DateTime<Utc>,
) -> Vec<DoraObservation> {
    let empty = ReleaseStatus::default();
    let old = release.status.as_ref().unwrap_or(&empty);
    let mut observations = Vec::new();
    if !old.changed_production() && new.changed_production() {
        observations.push(DoraObservation::ProductionChanged);
    }
    if old.phase != Some(ReleasePhase::Succeeded) && new.phase == Some(ReleasePhase::Succeeded) {
        let verified_at = new
            .stages
            .iter()
            .rev()
            .find_map(|stage| stage.finished_at.as_ref())
            .map(seconds_since_epoch)
            .unwrap_or_else(|| chrono_seconds(now));
        let lead_time = change_started_at(release).map(|start| (verified_at - start).max(0.0));
        observations.push(DoraObservation::Deployed { lead_time });
    }
    if restored(old).is_none()
        && let Some((incident, restored_at)) = restored(new)
    {
        let time_to_restore =
            (seconds_since_epoch(restored_at) - seconds_since_epoch(&incident.opened_at)).max(0.0);
        observations.push(DoraObservation::ProductionReverted {
            time_to_restore: Some(time_to_restore),
        });
    }
    observations
}

/// The incident of `status` and when its revert completed, once it has.
fn restored(status: &ReleaseStatus) -> Option<(&IncidentStatus, &Time)> {
    let incident = status.incident.as_ref()?;
    Some((incident, incident.restored_at.as_ref()?))
}

/// When the change began: the `relman.io/commit-time` annotation if it is valid RFC 3339,
/// else the Release's creation.
fn change_started_at(release: &Release) -> Option<f64> {
    let commit = release
        .annotations()
        .get(ANNOTATION_COMMIT_TIME)
        .and_then(|at| DateTime::parse_from_rfc3339(at.trim()).ok())
        .map(|at| chrono_seconds(at.with_timezone(&Utc)));
    commit.or_else(|| {
        release
            .metadata
            .creation_timestamp
            .as_ref()
            .map(seconds_since_epoch)
    })
}

fn seconds_since_epoch(time: &Time) -> f64 {
    time.0.as_millisecond() as f64 / 1000.0
}

fn chrono_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// What `relman_releases` and `relman_leader` are computed from at scrape time.
#[derive(Default)]
struct Sources {
    releases: Mutex<Option<Store<Release>>>,
    leadership: Mutex<Option<Leadership>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Sources {
    /// Releases per phase; a Release not reconciled yet counts as Pending.
    fn releases_by_phase(&self) -> Option<Vec<(ReleasePhase, i64)>> {
        let store = self.releases.lock().ok()?.clone()?;
        let mut counts: Vec<(ReleasePhase, i64)> = PHASES.iter().map(|&p| (p, 0)).collect();
        for release in store.state() {
            let phase = release
                .status
                .as_ref()
                .and_then(|status| status.phase)
                .unwrap_or(ReleasePhase::Pending);
            if let Some((_, count)) = counts.iter_mut().find(|(p, _)| *p == phase) {
                *count += 1;
            }
        }
        Some(counts)
    }

    fn is_leader(&self) -> Option<bool> {
        let leadership = self.leadership.lock().ok()?.clone()?;
        Some(leadership.is_leader())
    }
}

/// Encodes the gauges of [`Sources`] on each scrape.
#[derive(Debug)]
struct SourcesCollector(Arc<Sources>);

impl Collector for SourcesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(counts) = self.0.releases_by_phase() {
            let mut family = encoder.encode_descriptor(
                "releases",
                "Releases by phase, as the Release controller's watch sees them.",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (phase, count) in counts {
                let phase = format!("{phase:?}");
                let labels = [("phase", phase.as_str())];
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(leader) = self.0.is_leader() {
            let gauge = ConstGauge::new(i64::from(leader));
            let metric = encoder.encode_descriptor(
                "leader",
                "1 when this replica holds the leader Lease and may write, else 0.",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// relman's metrics. One per process (or per controller instance in tests); share it with
/// an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    writes: Family<WriteLabels, Counter>,
    deployments: Family<ApplicationLabels, Counter>,
    lead_time: HistogramFamily<ApplicationLabels>,
    production_changes: Family<ApplicationLabels, Counter>,
    production_reverts: Family<ApplicationLabels, Counter>,
    time_to_restore: HistogramFamily<ApplicationLabels>,
    notifications: Family<NotificationLabels, Counter>,
    sources: Arc<Sources>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `relman_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relman");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles run by this replica (a standby replica skips them).",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error category.",
            reconcile_errors.clone(),
        );
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took, failed ones included.",
            reconcile_duration.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "API writes made by reconciles: status, action (Job, rollout, revert, mark) and event.",
            writes.clone(),
        );
        let deployments = Family::<ApplicationLabels, Counter>::default();
        registry.register(
            "dora_deployments",
            "DORA deployment frequency: releases that succeeded (production verified).",
            deployments.clone(),
        );
        let lead_time: HistogramFamily<ApplicationLabels> =
            Family::new_with_constructor(|| Histogram::new(LEAD_TIME_BUCKETS));
        registry.register(
            "dora_lead_time_seconds",
            "DORA lead time for changes: commit time (relman.io/commit-time) or Release creation to production verified.",
            lead_time.clone(),
        );
        let production_changes = Family::<ApplicationLabels, Counter>::default();
        registry.register(
            "dora_production_changes",
            "Releases that began changing production (the change failure rate's denominator).",
            production_changes.clone(),
        );
        let production_reverts = Family::<ApplicationLabels, Counter>::default();
        registry.register(
            "dora_production_reverts",
            "Production reverts completed (the change failure rate's numerator).",
            production_reverts.clone(),
        );
        let time_to_restore: HistogramFamily<ApplicationLabels> =
            Family::new_with_constructor(|| Histogram::new(TIME_TO_RESTORE_BUCKETS));
        registry.register(
            "dora_time_to_restore_seconds",
            "DORA time to restore service: production failure detected to revert complete.",
            time_to_restore.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications from spec.notify by result: delivered, or failed after every retry.",
            notifications.clone(),
        );
        let sources = Arc::new(Sources::default());
        registry.register_collector(Box::new(SourcesCollector(sources.clone())));
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            writes,
            deployments,
            lead_time,
            production_changes,
            production_reverts,
            time_to_restore,
            notifications,
            sources,
        }
    }

    /// Starts timing a reconcile; dropping the guard (also on an early `?` return) counts the
    /// reconcile and records its duration.
    pub fn reconcile_timer(&self, controller: ControllerKind) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            controller,
            started: std::time::Instant::now(),
        }
    }

    /// Counts a failed reconcile under its error `category`.
    pub fn reconcile_failed(&self, controller: ControllerKind, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.as_str(),
                category,
            })
            .inc();
    }

    /// Counts a notification, `delivered` or failed after every retry.
    pub fn notified(&self, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.notifications
            .get_or_create(&NotificationLabels { result })
            .inc();
    }

    /// Counts an API write.
    pub fn wrote(&self, controller: ControllerKind, kind: WriteKind) {
        self.writes
            .get_or_create(&WriteLabels {
                controller: controller.as_str(),
                kind: kind.as_str(),
            })
            .inc();
    }

    /// The API writes this instance made, of every controller and kind.
    pub fn api_writes(&self) -> u64 {
        let kinds = [WriteKind::Status, WriteKind::Action, WriteKind::Event];
        [ControllerKind::Release, ControllerKind::Calendar]
            .iter()
            .flat_map(|controller| kinds.iter().map(move |kind| (controller, kind)))
            .filter_map(|(controller, kind)| {
                self.writes
                    .get(&WriteLabels {
                        controller: controller.as_str(),
                        kind: kind.as_str(),
                    })
                    .map(|counter| counter.get())
            })
            .sum()
    }

    /// Records the DORA observations of the step from `release`'s stored status to the
    /// `written` one. Call once per status write that succeeded.
    pub fn record_status_written(
        &self,
        release: &Release,
        written: &ReleaseStatus,
        now: DateTime<Utc>,
    ) {
        let observations = dora_observations(release, written, now);
        if observations.is_empty() {
            return;
        }
        let labels = ApplicationLabels {
            application: release.spec.application.clone(),
        };
        for observation in observations {
            match observation {
                DoraObservation::Deployed { lead_time } => {
                    self.deployments.get_or_create(&labels).inc();
                    if let Some(seconds) = lead_time {
                        self.lead_time.get_or_create(&labels).observe(seconds);
                    }
                }
                DoraObservation::ProductionChanged => {
                    self.production_changes.get_or_create(&labels).inc();
                }
                DoraObservation::ProductionReverted { time_to_restore } => {
                    self.production_reverts.get_or_create(&labels).inc();
                    if let Some(seconds) = time_to_restore {
                        self.time_to_restore.get_or_create(&labels).observe(seconds);
                    }
                }
            }
        }
    }

    /// Computes `relman_releases` from `store` at each scrape (the Release controller's).
    pub fn watch_releases(&self, store: Store<Release>) {
        if let Ok(mut releases) = self.sources.releases.lock() {
            *releases = Some(store);
        }
    }

    /// Reports `relman_leader` from `leadership` at each scrape.
    pub fn watch_leadership(&self, leadership: Leadership) {
        if let Ok(mut slot) = self.sources.leadership.lock() {
            *slot = Some(leadership);
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Times one reconcile; see [`Metrics::reconcile_timer`].
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: ControllerKind,
    started: std::time::Instant,
}

impl ReconcileTimer<'_> {
    /// How long the reconcile has run so far.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let labels = ControllerLabels {
            controller: self.controller.as_str(),
        };
        self.metrics.reconciles.get_or_create(&labels).inc();
        self.metrics
            .reconcile_duration
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::release::{DeploymentStatus, StageStatus};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn time(second: i64) -> Time {
        Time(Timestamp::from_second(second).expect("valid timestamp"))
    }

    fn release(annotations: serde_json::Value, status: Option<ReleaseStatus>) -> Release {
        let mut release: Release = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-2", "namespace": "shop", "annotations": annotations,
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"application": "web", "version": "2.0.0", "type": "Minor", "owner": "o",
                "images": [{"container": "api", "image": "web:2"}],
                "stages": [{"name": "staging", "deployments": ["web"]},
                           {"name": "production", "deployments": ["web"]}]}
        }))
        .expect("valid release");
        release.status = status;
        release
    }

    fn stage(name: &str, captured: bool, finished_at: Option<i64>) -> StageStatus {
        StageStatus {
            name: name.into(),
            finished_at: finished_at.map(time),
            deployments: vec![DeploymentStatus {
                name: "web".into(),
                namespace: "shop".into(),
                known_good_template: captured.then(Default::default),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn created() -> i64 {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("valid time")
            .timestamp()
    }

    #[test]
    fn success_counts_a_deployment_with_lead_time_from_creation() {
        let old = ReleaseStatus {
            phase: Some(ReleasePhase::Progressing),
            stages: vec![
                stage("staging", true, None),
                stage("production", true, None),
            ],
            ..Default::default()
        };
        let new = ReleaseStatus {
            phase: Some(ReleasePhase::Succeeded),
            stages: vec![
                stage("staging", true, None),
                stage("production", true, Some(created() + 3_600)),
            ],
            ..Default::default()
        };
        let observed = dora_observations(&release(json!({}), Some(old)), &new, Utc::now());
        assert_eq!(
            observed,
            vec![DoraObservation::Deployed {
                lead_time: Some(3_600.0)
            }]
        );
    }

    #[test]
    fn commit_time_annotation_starts_the_lead_time() {
        let new = ReleaseStatus {
            phase: Some(ReleasePhase::Succeeded),
            stages: vec![stage("production", false, Some(created() + 60))],
            ..Default::default()
        };
        let annotated = release(
            json!({ANNOTATION_COMMIT_TIME: "2025-12-31T23:00:00+00:00"}),
            None,
        );
        assert_eq!(
            dora_observations(&annotated, &new, Utc::now()),
            vec![DoraObservation::Deployed {
                lead_time: Some(3_660.0)
            }]
        );
        let invalid = release(json!({ANNOTATION_COMMIT_TIME: "yesterday"}), None);
        assert_eq!(
            dora_observations(&invalid, &new, Utc::now()),
            vec![DoraObservation::Deployed {
                lead_time: Some(60.0)
            }],
            "an invalid commit time falls back to the creation time"
        );
    }

    #[test]
    fn the_first_production_capture_is_a_production_change_once() {
        let before = ReleaseStatus {
            stages: vec![
                stage("staging", true, Some(1)),
                stage("production", false, None),
            ],
            ..Default::default()
        };
        let captured = ReleaseStatus {
            stages: vec![
                stage("staging", true, Some(1)),
                stage("production", true, None),
            ],
            ..Default::default()
        };
        let release_before = release(json!({}), Some(before));
        assert_eq!(
            dora_observations(&release_before, &captured, Utc::now()),
            vec![DoraObservation::ProductionChanged]
        );
        let release_after = release(json!({}), Some(captured.clone()));
        assert!(dora_observations(&release_after, &captured, Utc::now()).is_empty());
    }

    #[test]
    fn a_restored_incident_is_a_revert_with_time_to_restore() {
        let incident = |restored: Option<i64>| IncidentStatus {
            opened_at: time(1_000),
            restored_at: restored.map(time),
            closed_at: None,
            stage: "production".into(),
            reason: "SmokeTestFailed".into(),
            message: "failed".into(),
            revision_restored: None,
        };
        let reverting = ReleaseStatus {
            incident: Some(incident(None)),
            ..Default::default()
        };
        let restored = ReleaseStatus {
            phase: Some(ReleasePhase::RolledBack),
            incident: Some(incident(Some(1_090))),
            ..Default::default()
        };
        assert_eq!(
            dora_observations(&release(json!({}), Some(reverting)), &restored, Utc::now()),
            vec![DoraObservation::ProductionReverted {
                time_to_restore: Some(90.0)
            }]
        );
        assert!(
            dora_observations(
                &release(json!({}), Some(restored.clone())),
                &restored,
                Utc::now()
            )
            .is_empty(),
            "recorded once"
        );
    }

    #[test]
    fn encodes_counters_histograms_and_sources() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_timer(ControllerKind::Release));
        metrics.reconcile_failed(ControllerKind::Release, "Conflict");
        metrics.wrote(ControllerKind::Release, WriteKind::Status);
        metrics.wrote(ControllerKind::Calendar, WriteKind::Status);
        let new = ReleaseStatus {
            phase: Some(ReleasePhase::Succeeded),
            ..Default::default()
        };
        metrics.record_status_written(&release(json!({}), None), &new, Utc::now());
        metrics.watch_leadership(Leadership::always());
        assert_eq!(metrics.api_writes(), 2);
        let text = metrics.encode_prometheus().expect("encodes");
        for line in [
            "relman_reconciles_total{controller=\"release\"} 1",
            "relman_reconcile_errors_total{controller=\"release\",category=\"Conflict\"} 1",
            "relman_reconcile_duration_seconds_count{controller=\"release\"} 1",
            "relman_api_writes_total{controller=\"calendar\",kind=\"status\"} 1",
            "relman_dora_deployments_total{application=\"web\"} 1",
            "relman_dora_lead_time_seconds_count{application=\"web\"} 1",
            "relman_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        let open = metrics.encode_openmetrics().expect("encodes");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
