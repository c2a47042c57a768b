//! Notifications from `spec.notify`: Slack-compatible JSON or CDEvents, POSTed to a webhook
//! URL read from a Secret.
//!
//! The controller hands the planner's Events of a reconcile to [`dispatch`] once the status
//! that records them is written, so each transition notifies once (a controller restart
//! between the status write and the send may lose a notification; it never doubles one).
//! Every send runs in a background task with short timeouts and a few retries with
//! exponential backoff, so a failing or hanging receiver never blocks or fails a release. A
//! delivery that still fails is logged and recorded as a Warning Event `NotificationFailed`.
//! Either way the result lands in the Release's `status.notifications` (one entry per receiver
//! and event), written under its own field manager so the controller's status writes keep it.
//!
//! The webhook URL is a credential: it is never logged, never written to Events or status,
//! and it is redacted from every error ([`redact`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::Release;
use crate::api::reason::Reason;
use crate::api::release::{NotificationStatus, NotifyEvent, NotifyFormat, NotifyTarget};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::plan::PlannedEvent;

/// The field manager of `status.notifications`; the controller's status writes leave it out.
pub const FIELD_MANAGER: &str = "relman-notify";

/// How often a result is written again when the Release changed under the write.
const STATUS_WRITE_ATTEMPTS: u32 = 5;

/// What replaces a webhook URL in errors.
pub const REDACTED: &str = "[redacted]";

/// Why a notification could not be delivered. Messages never contain the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The Secret could not be read.
    #[error("cannot read Secret {secret}: {message}")]
    Secret {
        /// The Secret's name.
        secret: String,
        /// The (redacted) cause.
        message: String,
    },
    /// The Secret or its key does not exist, or the value is not UTF-8.
    #[error("Secret {secret} has no usable key {key}")]
    MissingKey {
        /// The Secret's name.
        secret: String,
        /// The key.
        key: String,
    },
    /// The value is not an http(s) URL.
    #[error("the webhook URL in the Secret is not a valid http(s) URL")]
    InvalidUrl,
    /// The receiver answered with a non-success status.
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// The receiver did not answer in time.
    #[error("the receiver did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("sending failed: {0}")]
    Transport(String),
}

/// How [`send_with_retries`] retries.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (at least one).
    pub attempts: u32,
    /// The wait before the second attempt; doubled for each later one.
    pub initial_backoff: Duration,
    /// The limit for one attempt (connect, send and response headers).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The result of [`send_with_retries`].
#[derive(Debug)]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// The last error, when no attempt succeeded (already redacted).
    pub error: Option<NotifyError>,
}

impl Delivery {
    /// Whether the receiver accepted the notification.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// The notification event a planner Event stands for, if any. `first_stage` is the name of
/// the release's first stage: only its start counts as [`NotifyEvent::Started`]. Matched on
/// the reason and the Event's stage, never on its wording.
pub fn notify_event(event: &PlannedEvent, first_stage: Option<&str>) -> Option<NotifyEvent> {
    match Reason::parse(&event.reason)? {
        Reason::StageStarted => first_stage
            .filter(|stage| event.stage.as_deref() == Some(*stage))
            .map(|_| NotifyEvent::Started),
        Reason::AwaitingApproval => Some(NotifyEvent::AwaitingApproval),
        Reason::Released => Some(NotifyEvent::Released),
        Reason::RolledBack => Some(NotifyEvent::RolledBack),
        Reason::IncidentOpened => Some(NotifyEvent::IncidentOpened),
        _ => None,
    }
}

/// Replaces `url` (and its host-and-path part alone) in `text` with [`REDACTED`].
pub fn redact(text: &str, url: &str) -> String {
    let url = url.trim();
    if url.is_empty() {
        return text.to_owned();
    }
    let mut out = text.replace(url, REDACTED);
    if let Some((_, rest)) = url.split_once("://")
        && !rest.is_empty()
    {
        out = out.replace(rest, REDACTED);
    }
    out
}

/// The facts a payload is built from.
#[derive(Clone, Debug)]
pub struct Notice<'a> {
    /// The Release.
    pub release: &'a Release,
    /// What happened.
    pub event: NotifyEvent,
    /// The planner's message for people.
    pub message: &'a str,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// The JSON body for `format`.
pub fn payload(format: NotifyFormat, notice: &Notice<'_>) -> Value {
    match format {
        NotifyFormat::Slack => slack_payload(notice),
        NotifyFormat::CDEvents => cdevents_payload(notice),
    }
}

/// A Slack-compatible message (`text` and `blocks`): the rendered release notes when
/// released, an on-call alert when an incident opened.
pub fn slack_payload(notice: &Notice<'_>) -> Value {
    let spec = &notice.release.spec;
    let name = notice.release.name_any();
    let namespace = notice.release.namespace().unwrap_or_default();
    let headline = match notice.event {
        NotifyEvent::Started => format!("{} {} started", spec.application, spec.version),
        NotifyEvent::AwaitingApproval => format!(
            "{} {} is waiting for a sign-off",
            spec.application, spec.version
        ),
        NotifyEvent::Released => format!("{} {} is released", spec.application, spec.version),
        NotifyEvent::RolledBack => {
            format!("{} {} was rolled back", spec.application, spec.version)
        }
        NotifyEvent::IncidentOpened => format!(
            ":rotating_light: Incident: {} {} failed in production and is being reverted",
            spec.application, spec.version
        ),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&headline, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn",
            "text": truncate(&format!("Release `{namespace}/{name}`: {}", notice.message), 3000)}}),
    ];
    match notice.event {
        NotifyEvent::Released => {
            let date = crate::notes::notes_date(notice.release, notice.at.date_naive());
            let notes = crate::notes::render(notice.release, &date);
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&notes, 3000)}}));
        }
        NotifyEvent::IncidentOpened => blocks.push(incident_block(notice)),
        _ => {}
    }
    json!({"text": headline, "blocks": blocks})
}

/// The on-call fields of an incident: stage, reason, message and revision restored.
fn incident_block(notice: &Notice<'_>) -> Value {
    let incident = notice
        .release
        .status
        .as_ref()
        .and_then(|s| s.incident.as_ref());
    let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}:*\n{value}")});
    let (stage, reason, message, revision) = match incident {
        Some(i) => (
            i.stage.clone(),
            i.reason.clone(),
            i.message.clone(),
            i.revision_restored
                .clone()
                .unwrap_or_else(|| "pending".into()),
        ),
        None => (
            "unknown".into(),
            "unknown".into(),
            notice.message.to_owned(),
            "pending".into(),
        ),
    };
    json!({"type": "section", "fields": [
        field("Stage", &stage),
        field("Reason", &reason),
        field("Message", &truncate(&message, 1900)),
        field("Revision restored", &revision),
        field("Owner", &notice.release.spec.owner),
    ]})
}

/// A CloudEvent (structured JSON) carrying a CDEvent: `service.rolledback` for a revert or
/// an incident, `service.deployed` otherwise.
pub fn cdevents_payload(notice: &Notice<'_>) -> Value {
    let release = notice.release;
    let spec = &release.spec;
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    let kind = match notice.event {
        NotifyEvent::RolledBack | NotifyEvent::IncidentOpened => "rolledback",
        _ => "deployed",
    };
    let type_ = format!("dev.cdevents.service.{kind}.0.2.0");
    let source = format!("/relman/{namespace}/{name}");
    let environment = release
        .spec
        .stages
        .last()
        .map(|s| s.namespace_or(&namespace).to_owned())
        .unwrap_or_else(|| namespace.clone());
    let id = format!(
        "{}-{:?}-{}",
        release.uid().unwrap_or_else(|| name.clone()),
        notice.event,
        notice.at.timestamp_millis()
    );
    let time = notice.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let data = json!({
        "context": {"version": "0.4.1", "id": id, "source": source, "type": type_, "timestamp": time},
        "subject": {
            "id": format!("{namespace}/{}", spec.application),
            "source": source,
            "type": "service",
            "content": {
                "environment": {"id": environment, "source": source},
                "artifactId": artifact_id(release),
            }
        },
        "customData": {
            "application": spec.application,
            "version": spec.version,
            "event": format!("{:?}", notice.event),
            "message": notice.message,
        },
    });
    json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type_,
        "subject": format!("{namespace}/{}", spec.application),
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The first image of the release as the deployed artifact, or application@version.
fn artifact_id(release: &Release) -> String {
    release
        .spec
        .images
        .first()
        .map(|i| i.image.clone())
        .unwrap_or_else(|| format!("{}@{}", release.spec.application, release.spec.version))
}

/// Cuts `text` to at most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Reads the webhook URL from `target`'s Secret in `namespace`.
pub async fn webhook_url(
    client: &Client,
    namespace: &str,
    target: &NotifyTarget,
) -> Result<String, NotifyError> {
    let secret_ref = &target.secret_ref;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(&secret_ref.name)
        .await
        .map_err(|e| NotifyError::Secret {
            secret: secret_ref.name.clone(),
            message: e.to_string(),
        })?;
    let missing = || NotifyError::MissingKey {
        secret: secret_ref.name.clone(),
        key: secret_ref.key.clone(),
    };
    let bytes = secret
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(&secret_ref.key))
        .ok_or_else(missing)?;
    let url = String::from_utf8(bytes.0).map_err(|_| missing())?;
    let url = url.trim().to_owned();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(NotifyError::InvalidUrl)
    }
}

/// POSTs `body` to `url` once, within `timeout`: plain HTTP for `http://` URLs, TLS with the
/// system's roots for `https://`.
pub async fn send_once(url: &str, body: &Value, timeout: Duration) -> Result<(), NotifyError> {
    let uri: hyper::Uri = url.parse().map_err(|_| NotifyError::InvalidUrl)?;
    let request = hyper::Request::post(uri)
        .header("content-type", "application/json")
        .header("user-agent", "relman")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| NotifyError::InvalidUrl)?;
    let exchange = async {
        if url.starts_with("https://") {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| NotifyError::Transport(redact(&e.to_string(), url)))?
                .https_only()
                .enable_http1()
                .build();
            post(connector, request, url).await
        } else {
            post(HttpConnector::new(), request, url).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| NotifyError::Timeout(timeout))?
}

/// Sends `request` through `connector` and checks the response status.
async fn post<C>(
    connector: C,
    request: hyper::Request<Full<Bytes>>,
    url: &str,
) -> Result<(), NotifyError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = LegacyClient::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let response = client.request(request).await.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default();
        NotifyError::Transport(redact(&format!("{e}: {cause}"), url))
    })?;
    let status = response.status();
    // Drain the body so the connection closes cleanly; its content is not needed.
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Status(status.as_u16()))
    }
}

/// Sends `body` to `url`, retrying failures with exponential backoff per `policy`.
pub async fn send_with_retries(url: &str, body: &Value, policy: RetryPolicy) -> Delivery {
    let mut backoff = policy.initial_backoff;
    let mut last = None;
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        match send_once(url, body, policy.timeout).await {
            Ok(()) => {
                return Delivery {
                    attempts: attempt,
                    error: None,
                };
            }
            Err(e) => last = Some(e),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }
    Delivery {
        attempts,
        error: last,
    }
}

/// What a background delivery needs besides the payload.
#[derive(Clone)]
pub struct Notifier {
    client: Client,
    recorder: Recorder,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    leadership: Leadership,
}

impl Notifier {
    /// A notifier that reads Secrets with `client` and records failures with `recorder`.
    pub fn new(client: Client, recorder: Recorder) -> Self {
        Self {
            client,
            recorder,
            policy: RetryPolicy::default(),
            metrics: Arc::new(Metrics::new()),
            leadership: Leadership::always(),
        }
    }

    /// Records results in status only while `leadership` says this replica is the leader.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Counts deliveries in `metrics` (`relman_notifications_total{result}`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Uses `policy` for every delivery.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts one background delivery per target and planner Event it subscribed to. Returns
    /// at once; failures are logged and recorded as Warning Events, never returned.
    pub fn dispatch(&self, release: &Release, events: &[PlannedEvent]) {
        let first_stage = release.spec.stages.first().map(|s| s.name.as_str());
        let at = Utc::now();
        for event in events {
            let Some(kind) = notify_event(event, first_stage) else {
                continue;
            };
            for target in release
                .spec
                .notify
                .iter()
                .filter(|t| t.events.contains(&kind))
            {
                let notice = Notice {
                    release,
                    event: kind,
                    message: &event.message,
                    at,
                };
                let body = payload(target.format, &notice);
                self.spawn_delivery(release, target.clone(), kind, body);
            }
        }
    }

    /// Spawns the delivery of `body` to `target`.
    fn spawn_delivery(
        &self,
        release: &Release,
        target: NotifyTarget,
        kind: NotifyEvent,
        body: Value,
    ) {
        let this = self.clone();
        let namespace = release.namespace().unwrap_or_default();
        let reference = release.object_ref(&());
        let name = release.name_any();
        tokio::spawn(async move {
            let delivery = match webhook_url(&this.client, &namespace, &target).await {
                Ok(url) => send_with_retries(&url, &body, this.policy).await,
                Err(e) => Delivery {
                    attempts: 0,
                    error: Some(e),
                },
            };
            this.metrics.notified(delivery.delivered());
            let result = NotificationStatus {
                target: target.name.clone(),
                event: kind,
                delivered: delivery.delivered(),
                attempts: delivery.attempts,
                time: crate::api::time::to_k8s_time(Utc::now()),
                message: delivery
                    .error
                    .as_ref()
                    .map(|e| truncate(&e.to_string(), 1000)),
            };
            if this.leadership.is_leader() {
                let api: Api<Release> = Api::namespaced(this.client.clone(), &namespace);
                if let Err(e) = record_result(&api, &name, result).await {
                    tracing::warn!(release = %format!("{namespace}/{name}"), target = %target.name,
                        error = %e, "could not record a notification result in status");
                }
            }
            match &delivery.error {
                None => {
                    tracing::info!(release = %format!("{namespace}/{name}"), target = %target.name,
                    event = ?kind, attempts = delivery.attempts, "notification delivered")
                }
                Some(error) => {
                    tracing::warn!(release = %format!("{namespace}/{name}"), target = %target.name,
                        event = ?kind, attempts = delivery.attempts, %error, "notification failed");
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "NotificationFailed".into(),
                        note: Some(failure_note(&target.name, kind, &delivery, error)),
                        // One Event series per target and event: the recorder folds Events
                        // with the same action and reason into one series.
                        action: format!("Notify{kind:?}:{}", target.name),
                        secondary: None,
                    };
                    if let Err(e) = this.recorder.publish(&event, &reference).await {
                        tracing::warn!(error = %e, "could not record an Event");
                    }
                }
            }
        });
    }
}

/// Writes `result` into the Release's `status.notifications`, replacing the entry of the same
/// receiver and event. A JSON merge patch of the whole list, guarded by the resourceVersion it
/// was read at, so two results finishing together never drop each other; a Release changed
/// under the write is read again.
pub async fn record_result(
    api: &Api<Release>,
    name: &str,
    result: NotificationStatus,
) -> Result<(), kube::Error> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(release) = api.get_opt(name).await? else {
            return Ok(());
        };
        let mut results = release
            .status
            .map(|status| status.notifications)
            .unwrap_or_default();
        results.retain(|r| !(r.target == result.target && r.event == result.event));
        results.push(result.clone());
        let patch = json!({
            "metadata": {"resourceVersion": release.metadata.resource_version},
            "status": {"notifications": results},
        });
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < STATUS_WRITE_ATTEMPTS => {}
            Err(e) => return Err(e),
        }
    }
}

/// The note of a `NotificationFailed` Event (the error is already redacted).
fn failure_note(
    target: &str,
    kind: NotifyEvent,
    delivery: &Delivery,
    error: &NotifyError,
) -> String {
    truncate(
        &format!(
            "notification {kind:?} to {target} failed after {} attempt(s): {error}",
            delivery.attempts
        ),
        1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReleaseStatus;
    use crate::api::release::IncidentStatus;
    use crate::plan::EventType as PlannedType;

    fn release() -> Release {
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-1-2-0", "namespace": "shop", "uid": "u-1"},
            "spec": {"application": "web", "version": "1.2.0", "type": "Minor", "owner": "team-web",
                "images": [{"container": "api", "image": "web:1.2.0"}],
                "notes": {"summary": "Faster checkout."},
                "stages": [{"name": "staging", "deployments": ["web"]},
                           {"name": "production", "namespace": "shop-prod", "deployments": ["web"]}]}
        }))
        .expect("valid release")
    }

    fn notice(release: &Release, event: NotifyEvent) -> Notice<'_> {
        Notice {
            release,
            event,
            message: "web 1.2.0 passed every stage",
            at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
        }
    }

    fn planned(reason: &str, message: &str) -> PlannedEvent {
        PlannedEvent {
            type_: PlannedType::Normal,
            reason: reason.into(),
            stage: None,
            message: message.into(),
        }
    }

    fn started(stage: &str, message: &str) -> PlannedEvent {
        PlannedEvent {
            stage: Some(stage.into()),
            ..planned("StageStarted", message)
        }
    }

    #[test]
    fn planner_events_map_to_notify_events() {
        let first = Some("staging");
        assert_eq!(
            notify_event(&started("staging", "stage staging started"), first),
            Some(NotifyEvent::Started)
        );
        // The wording of the message does not matter; the stage does.
        assert_eq!(
            notify_event(&started("staging", "staging is under way"), first),
            Some(NotifyEvent::Started)
        );
        assert_eq!(
            notify_event(&started("production", "stage production started"), first),
            None
        );
        assert_eq!(
            notify_event(&planned("Released", "x"), first),
            Some(NotifyEvent::Released)
        );
        assert_eq!(
            notify_event(&planned("IncidentOpened", "x"), first),
            Some(NotifyEvent::IncidentOpened)
        );
        assert_eq!(notify_event(&planned("Succeeded", "x"), first), None);
    }

    #[test]
    fn slack_released_carries_text_blocks_and_notes() {
        let r = release();
        let body = slack_payload(&notice(&r, NotifyEvent::Released));
        assert_eq!(body["text"], "web 1.2.0 is released");
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        let notes = blocks[2]["text"]["text"].as_str().expect("notes");
        assert!(notes.contains("# web 1.2.0 release notes"), "{notes}");
        assert!(notes.contains("Faster checkout."), "{notes}");
    }

    #[test]
    fn slack_incident_is_an_on_call_alert() {
        let mut r = release();
        r.status = Some(ReleaseStatus {
            incident: Some(IncidentStatus {
                opened_at: serde_json::from_value(json!("2026-11-26T10:00:00Z")).expect("time"),
                restored_at: None,
                closed_at: None,
                stage: "production".into(),
                reason: "SmokeTestFailed".into(),
                message: "the smoke test failed".into(),
                revision_restored: Some("7".into()),
            }),
            ..Default::default()
        });
        let body = slack_payload(&notice(&r, NotifyEvent::IncidentOpened));
        assert!(body["text"].as_str().expect("text").contains("Incident"));
        let fields = body["blocks"][2]["fields"].to_string();
        for expected in [
            "production",
            "SmokeTestFailed",
            "the smoke test failed",
            "7",
        ] {
            assert!(fields.contains(expected), "{fields}");
        }
    }

    #[test]
    fn cdevents_are_cloudevents_with_subject() {
        let r = release();
        let body = cdevents_payload(&notice(&r, NotifyEvent::Released));
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["type"], "dev.cdevents.service.deployed.0.2.0");
        assert_eq!(body["source"], "/relman/shop/web-1-2-0");
        assert_eq!(body["data"]["context"]["type"], body["type"]);
        let content = &body["data"]["subject"]["content"];
        assert_eq!(content["environment"]["id"], "shop-prod");
        assert_eq!(content["artifactId"], "web:1.2.0");
        assert_eq!(body["data"]["customData"]["version"], "1.2.0");
        let rolled = cdevents_payload(&notice(&r, NotifyEvent::RolledBack));
        assert_eq!(rolled["type"], "dev.cdevents.service.rolledback.0.2.0");
    }

    #[test]
    fn redaction_removes_the_url_and_its_host_path() {
        let url = "https://hooks.example.test/services/T0/B0/secret";
        let text = format!("error sending to {url} (hooks.example.test/services/T0/B0/secret)");
        let redacted = redact(&text, url);
        assert!(!redacted.contains("secret"), "{redacted}");
        assert!(redacted.contains(REDACTED));
        assert_eq!(redact("no url here", ""), "no url here");
    }
}
