//! The controller's HTTP endpoints:
//!
//! Two listeners, each with its own connection slots, so a flood of one cannot starve the
//! other: the probe port serves only `/healthz` and `/readyz` (what the kubelet asks), the
//! main port everything. Every connection must send its request headers within
//! [`Limits::header_read_timeout`], lives at most [`Limits::connection_lifetime`], and a
//! connection over [`Limits::max_connections`] is closed at once.
//!
//! - `/healthz`: the process is alive.
//! - `/readyz`: the Release controller's and the calendar controller's watches have listed
//!   their objects once (503 with what it waits for until then). A standby replica is ready
//!   too: it keeps its caches warm to take over at once.
//! - `/metrics`: Prometheus metrics ([`Metrics`]), in the Prometheus text format, or
//!   OpenMetrics when the scraper asks for it.
//! - `/calendars/<name>.ics`: the iCalendar feed (RFC 5545) of the ReleaseCalendar `<name>`,
//!   for calendar apps to subscribe to. It is rendered from the calendar controller's watches
//!   ([`CalendarCache`]), so a request costs no API call.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use tokio::net::TcpListener;

use crate::controller::calendar::CalendarCache;
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::readiness::ReadyFlag;

/// The media type of the feed.
pub const CALENDAR_CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// How long a feed request waits for the calendar controller's first listing.
const CACHE_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/readyz` looks at the calendar controller's caches: they are ready or not.
const READY_PROBE_WAIT: Duration = Duration::from_millis(10);

/// What the endpoints read: the calendar controller's caches, the metrics, and whether the
/// Release controller's cache has synced.
#[derive(Clone)]
pub struct HttpState {
    /// The calendars and Releases the calendar controller watches.
    pub calendars: CalendarCache,
    /// The metrics `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// Set by the Release controller once its watch listed every Release; `None` when no
    /// Release controller runs in this process.
    pub releases_ready: Option<ReadyFlag>,
    /// Whether `/calendars/<name>.ics` is served (`--calendar-feed`); off, it answers 404
    /// saying how to turn it on.
    pub feed: bool,
}

impl From<CalendarCache> for HttpState {
    /// The calendar feed alone: fresh metrics, readiness from the calendar caches.
    fn from(calendars: CalendarCache) -> Self {
        Self {
            calendars,
            metrics: Arc::new(Metrics::new()),
            releases_ready: None,
            feed: true,
        }
    }
}

/// Serves the HTTP endpoints on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: impl Into<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, state, shutdown).await
}

/// Serves the HTTP endpoints on a bound listener (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: TcpListener,
    state: impl Into<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), Limits::default(), shutdown).await
}

/// What one listener allows its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a connection may take to send a request's headers (slow clients are closed).
    pub header_read_timeout: Duration,
    /// How long a connection may stay open at all, keep-alive included.
    pub connection_lifetime: Duration,
    /// How many connections are served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for headers, 60 s a connection, 64 connections: Prometheus scrapes, the kubelet
    /// and a few calendar apps need a handful.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
            max_connections: 64,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::debug!(error = %e, "could not accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed at once, holding nothing.
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_lifetime, connection).await;
            drop(slot);
        });
    }
}

/// The probe port's routes: `/healthz` and `/readyz` only.
pub fn probe_router(state: impl Into<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state.into())
}

/// The routes, separate from the listener so tests can call them directly.
pub fn router(state: impl Into<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/calendars/{file}", get(calendar_feed))
        .with_state(state.into())
}

/// `GET /readyz`: 200 once every watch has listed its objects, else 503 naming the others.
async fn readyz(State(state): State<HttpState>) -> Response {
    let mut waiting = Vec::new();
    if state
        .releases_ready
        .as_ref()
        .is_some_and(|ready| !ready.is_ready())
    {
        waiting.push("the Release watch");
    }
    if !state.calendars.wait_until_ready(READY_PROBE_WAIT).await {
        waiting.push("the calendar watches");
    }
    if waiting.is_empty() {
        text(StatusCode::OK, "ok\n".to_owned())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}\n", waiting.join(" and ")),
        )
    }
}

/// `GET /metrics`: the Prometheus text format, or OpenMetrics when `Accept` asks for it.
async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    let (encoded, content_type) = if openmetrics {
        (state.metrics.encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (state.metrics.encode_prometheus(), PROMETHEUS_CONTENT_TYPE)
    };
    match encoded {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the metrics\n".to_owned(),
        ),
    }
}

/// `GET /calendars/<name>.ics`.
async fn calendar_feed(State(state): State<HttpState>, Path(file): Path<String>) -> Response {
    if !state.feed {
        return text(
            StatusCode::NOT_FOUND,
            "the calendar feed is off: start relman with --calendar-feed=true \
             (RELMAN_CALENDAR_FEED=true; chart value calendarFeed.enabled)\n"
                .to_owned(),
        );
    }
    let calendars = state.calendars;
    let Some(name) = file.strip_suffix(".ics") else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no such feed: calendar feeds are served as /calendars/<name>.ics, not /calendars/{file}\n"
            ),
        );
    };
    if !calendars.wait_until_ready(CACHE_READY_TIMEOUT).await {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "relman is still loading the calendars; try again in a few seconds\n".to_owned(),
        );
    }
    match calendars.feed(name, chrono::Utc::now()) {
        Some(feed) => (
            [
                (header::CONTENT_TYPE, CALENDAR_CONTENT_TYPE.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{}.ics\"", name.replace('"', "")),
                ),
                (header::CACHE_CONTROL, "max-age=60".to_owned()),
            ],
            feed,
        )
            .into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "ReleaseCalendar {name:?} not found (kubectl get releasecalendars lists them)\n"
            ),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
