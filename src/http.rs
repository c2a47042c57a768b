//! The controller's HTTP endpoints:
//!
//! - `/healthz`: the process is alive; `/readyz`: it serves.
//! - `/calendars/<name>.ics`: the iCalendar feed (RFC 5545) of the ReleaseCalendar `<name>`,
//!   for calendar apps to subscribe to. It is rendered from the calendar controller's watches
//!   ([`CalendarCache`]), so a request costs no API call.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use tokio::net::TcpListener;

use crate::controller::calendar::CalendarCache;

/// The media type of the feed.
pub const CALENDAR_CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// How long a feed request waits for the calendar controller's first listing.
const CACHE_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the HTTP endpoints on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    calendars: CalendarCache,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, calendars, shutdown).await
}

/// Serves the HTTP endpoints on a bound listener (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: TcpListener,
    calendars: CalendarCache,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(calendars))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes, separate from the listener so tests can call them directly.
pub fn router(calendars: CalendarCache) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/calendars/{file}", get(calendar_feed))
        .with_state(calendars)
}

/// `GET /calendars/<name>.ics`.
async fn calendar_feed(
    State(calendars): State<CalendarCache>,
    Path(file): Path<String>,
) -> Response {
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
