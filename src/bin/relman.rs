//! The relman controller.

use std::net::SocketAddr;
use std::sync::Arc;

use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::controller::{self, Context};
use relman::plan::PlanConfig;
use relman::{http, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init()?;
    let addr: SocketAddr = std::env::var("RELMAN_HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".to_owned())
        .parse()
        .map_err(|e| {
            format!("RELMAN_HTTP_ADDR must be a socket address such as 0.0.0.0:8080: {e}")
        })?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, "relman starting");
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot reach the Kubernetes API (set KUBECONFIG or run in a cluster): {e}")
    })?;
    let instance = std::env::var("POD_NAME").ok();
    // RELMAN_NAMESPACE limits relman to one namespace; unset, it serves them all.
    let namespace = std::env::var("RELMAN_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    // RELMAN_CALENDAR_SELECTOR limits the calendar controller to the ReleaseCalendars with
    // matching labels; unset, it keeps the status of every calendar.
    let calendars = CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespace: namespace.clone(),
            calendar_selector: std::env::var("RELMAN_CALENDAR_SELECTOR")
                .ok()
                .filter(|s| !s.is_empty()),
        },
    );
    let ctx = Arc::new(Context::new(client, instance, PlanConfig::default()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_for_stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let server = tokio::spawn(http::serve(addr, calendars.cache(), wait_for_stop()));
    let signal = tokio::spawn(async move {
        http::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let (releases, calendars) = tokio::join!(
        controller::run(ctx, namespace, wait_for_stop()),
        calendars.run(wait_for_stop()),
    );
    signal.abort();
    server.abort();
    releases?;
    calendars?;
    tracing::info!("relman stopped");
    Ok(())
}
