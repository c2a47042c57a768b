//! The relman controller.

use std::sync::Arc;

use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::controller::{self, Context};
use relman::http::HttpState;
use relman::leader::{Fence, LeaderElector, Leadership};
use relman::metrics::Metrics;
use relman::plan::PlanConfig;
use relman::readiness::ReadyFlag;
use relman::settings::{LogFormat, Settings};
use relman::{http, telemetry};

/// The controller's client: kube's own retries off (they ignore leadership), writes fenced by
/// `leadership` ([`Fence`]).
fn fenced_client(
    mut config: kube::Config,
    leadership: &Leadership,
) -> Result<kube::Client, Box<dyn std::error::Error>> {
    config.default_retry = false;
    let inner = kube::Client::try_from(config)?;
    Ok(Fence::new(leadership.clone()).client(inner))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env_and_args();
    telemetry::init(
        settings.log.as_deref(),
        settings.log_format == LogFormat::Json,
    )?;
    let addr = settings.http_addr;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, "relman starting");
    let config = kube::Config::infer().await.map_err(|e| {
        format!("cannot reach the Kubernetes API (set KUBECONFIG or run in a cluster): {e}")
    })?;
    // The election's own client writes the Lease whoever leads.
    let election_client = kube::Client::try_from(config.clone())?;
    let instance = settings.pod_name.clone();
    let namespace = settings.namespace.clone();
    let (election, leadership) = leader_election(&election_client, &settings)?;
    // Every other write is fenced: sent only while this replica leads, and ended before its
    // leadership is (docs/design-decisions.md, "Fencing").
    let client = fenced_client(config, &leadership)?;
    let metrics = Arc::new(Metrics::new());
    let releases_ready = ReadyFlag::new();
    let calendars = CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespaces: namespace.clone(),
            calendar_selector: settings.calendar_selector.clone(),
        },
    )
    .with_leadership(leadership.clone())
    .with_metrics(metrics.clone());
    let ctx = Arc::new(
        Context::new(client, instance, PlanConfig::default())
            .with_concurrency(settings.concurrency)
            .with_default_policy(settings.default_policy.clone())
            .with_approval_policy(settings.approval_policy.clone())
            .with_leadership(leadership)
            .with_metrics(metrics.clone())
            .with_ready_flag(releases_ready.clone()),
    );
    let http_state = HttpState {
        calendars: calendars.cache(),
        metrics,
        releases_ready: Some(releases_ready),
        feed: settings.calendar_feed,
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
    // Bound before anything starts: a port that is taken stops relman with the reason
    // instead of leaving the kubelet's probes unanswered.
    let probe_listener = tokio::net::TcpListener::bind(settings.probe_addr)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} (RELMAN_PROBE_ADDR): {e}",
                settings.probe_addr
            )
        })?;
    let probes = tokio::spawn(http::serve_router(
        probe_listener,
        http::probe_router(http_state.clone()),
        http::Limits::default(),
        wait_for_stop(),
    ));
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
    probes.abort();
    releases?;
    calendars?;
    tracing::info!("relman stopped");
    Ok(())
}

/// The elector to run and the leadership it keeps, or no elector and always the leader when
/// leader election is off.
fn leader_election(
    client: &kube::Client,
    settings: &Settings,
) -> Result<(Option<LeaderElector>, Leadership), relman::leader::LeaderError> {
    let Some(config) = settings.leader_election()? else {
        tracing::info!(
            "leader election is off (RELMAN_LEADER_ELECTION=false): this replica always writes"
        );
        return Ok((None, Leadership::always()));
    };
    let (elector, leadership) = LeaderElector::new(client.clone(), config);
    Ok((Some(elector), leadership))
}
