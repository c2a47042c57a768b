//! The relman controller.

use std::net::SocketAddr;
use std::sync::Arc;

use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::controller::{self, Context};
use relman::http::HttpState;
use relman::leader::{self, LeaderElectionConfig, LeaderElector, Leadership};
use relman::metrics::Metrics;
use relman::plan::PlanConfig;
use relman::readiness::ReadyFlag;
use relman::{http, telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init()?;
    let addr = http_addr()?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, "relman starting");
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot reach the Kubernetes API (set KUBECONFIG or run in a cluster): {e}")
    })?;
    let instance = std::env::var("POD_NAME").ok();
    // RELMAN_NAMESPACE limits relman to one namespace; unset, it serves them all.
    let namespace = std::env::var("RELMAN_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    let (election, leadership) = leader_election(&client)?;
    let metrics = Arc::new(Metrics::new());
    let releases_ready = ReadyFlag::new();
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
    )
    .with_leadership(leadership.clone())
    .with_metrics(metrics.clone());
    let ctx = Arc::new(
        Context::new(client, instance, PlanConfig::default())
            .with_concurrency(concurrency()?)
            .with_leadership(leadership)
            .with_metrics(metrics.clone())
            .with_ready_flag(releases_ready.clone()),
    );
    let http_state = HttpState {
        calendars: calendars.cache(),
        metrics,
        releases_ready: Some(releases_ready),
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_for_stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    // The Lease is freed only after the controllers stopped writing.
    let (free_lease, lease_freed) = tokio::sync::oneshot::channel::<()>();
    let election = election.map(|elector| {
        tokio::spawn(elector.run(async move {
            let _ = lease_freed.await;
        }))
    });
    let server = tokio::spawn(http::serve(addr, http_state, wait_for_stop()));
    let signal = tokio::spawn(async move {
        http::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let (releases, calendars) = tokio::join!(
        controller::run(ctx, namespace, wait_for_stop()),
        calendars.run(wait_for_stop()),
    );
    let _ = free_lease.send(());
    if let Some(election) = election {
        let _ = election.await;
    }
    signal.abort();
    server.abort();
    releases?;
    calendars?;
    tracing::info!("relman stopped");
    Ok(())
}

/// `RELMAN_CONCURRENCY`: how many Releases are reconciled at once, default
/// [`controller::DEFAULT_CONCURRENCY`].
fn concurrency() -> Result<u16, String> {
    match std::env::var("RELMAN_CONCURRENCY") {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                format!("RELMAN_CONCURRENCY must be a whole number from 1 to 1000, not {value:?}")
            }),
        _ => Ok(controller::DEFAULT_CONCURRENCY),
    }
}

/// `RELMAN_HTTP_ADDR`, default `0.0.0.0:8080`.
fn http_addr() -> Result<SocketAddr, String> {
    std::env::var("RELMAN_HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".to_owned())
        .parse()
        .map_err(|e| format!("RELMAN_HTTP_ADDR must be a socket address such as 0.0.0.0:8080: {e}"))
}

/// The elector to run and the leadership it keeps, or no elector and always the leader when
/// `RELMAN_LEADER_ELECTION=false`.
fn leader_election(
    client: &kube::Client,
) -> Result<(Option<LeaderElector>, Leadership), leader::LeaderError> {
    if !leader::enabled_from_env()? {
        tracing::info!(
            "leader election is off (RELMAN_LEADER_ELECTION=false): this replica always writes"
        );
        return Ok((None, Leadership::always()));
    }
    let (elector, leadership) =
        LeaderElector::new(client.clone(), LeaderElectionConfig::from_env()?);
    Ok((Some(elector), leadership))
}
