//! `/metrics` and `/readyz` on the local control plane: a release that succeeds and one that
//! is reverted in production, and the reconcile, phase and DORA series they leave.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relman::api::labels::ANNOTATION_COMMIT_TIME;
use relman::http::HttpState;
use relman::metrics::Metrics;
use relman::readiness::ReadyFlag;
use serde_json::json;
use support::{Env, Smoke, calendar_controller, context, http_get, run_controller, web};

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Scrapes `/metrics` until `done` holds for its samples; returns the head and the samples.
async fn scrape_until(
    addr: std::net::SocketAddr,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> anyhow::Result<(String, BTreeMap<String, f64>)> {
    let started = Instant::now();
    loop {
        let (code, head, body) = http_get(addr, "/metrics").await?;
        anyhow::ensure!(code == 200, "{code}: {body}");
        let samples = samples(&body);
        if done(&samples) {
            return Ok((head, samples));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the metrics never showed the expected series:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_reconciles_phases_and_dora_per_application() -> anyhow::Result<()> {
    let env = Env::new("metrics").await?;
    let metrics = Arc::new(Metrics::new());
    let releases_ready = ReadyFlag::new();
    let calendars = calendar_controller(&env.client, &env.ns).with_metrics(metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = HttpState {
        calendars: calendars.cache(),
        metrics: metrics.clone(),
        releases_ready: Some(releases_ready.clone()),
        feed: false,
    };
    let server = tokio::spawn(relman::http::serve_on(
        listener,
        state,
        std::future::pending(),
    ));

    // Not ready before the controllers' watches have listed anything.
    let (code, _, body) = http_get(addr, "/readyz").await?;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("Release watch"), "{body}");
    assert_eq!(http_get(addr, "/healthz").await?.0, 200);
    // The calendar feed is off unless asked for (it has no authentication).
    let (code, _, body) = http_get(addr, "/calendars/any.ics").await?;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("--calendar-feed=true"), "{body}");

    let ctx = context(&env.client, "metrics-test")
        .with_metrics(metrics.clone())
        .with_ready_flag(releases_ready);
    let release_controller = run_controller(Arc::new(ctx), &env.ns);
    let calendar_controller = tokio::spawn(async move {
        let _ = calendars.run(std::future::pending()).await;
    });
    let started = Instant::now();
    loop {
        let (code, _, body) = http_get(addr, "/readyz").await?;
        if code == 200 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < support::WAIT,
            "never ready: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2.0.0 ships a commit made an hour ago and succeeds.
    let committed = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let good = web("2.0.0").annotations(json!({ANNOTATION_COMMIT_TIME: committed.to_rfc3339()}));
    env.create(&good.build()).await?;
    env.wait_condition(good.name(), "Ready", "True").await?;
    let released = chrono::Utc::now();
    // 3.0.0 fails its production verification and is reverted.
    let bad = web("3.0.0").production(Smoke::Fails);
    env.create(&bad.build()).await?;
    let status = env.wait_condition(bad.name(), "RolledBack", "True").await?;
    assert!(
        status
            .incident
            .as_ref()
            .is_some_and(|i| i.restored_at.is_some()),
        "{status:#?}"
    );

    // The controller records a transition right after its status write returns, which may
    // be a moment after this test's watch saw the write.
    let web = "{application=\"web\"}";
    let reverted = format!("relman_dora_production_reverts_total{web}");
    let (head, s) = scrape_until(addr, |s| {
        s.contains_key(&reverted) && s.get("relman_releases{phase=\"RolledBack\"}") == Some(&1.0)
    })
    .await?;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(sample(&s, "relman_reconciles_total{controller=\"release\"}") >= 4.0);
    assert!(
        sample(
            &s,
            "relman_reconcile_duration_seconds_count{controller=\"release\"}"
        ) >= 4.0
    );
    assert!(
        sample(
            &s,
            "relman_api_writes_total{controller=\"release\",kind=\"status\"}"
        ) >= 2.0
    );
    assert!(
        sample(
            &s,
            "relman_api_writes_total{controller=\"release\",kind=\"action\"}"
        ) >= 2.0
    );
    assert_eq!(sample(&s, "relman_releases{phase=\"Succeeded\"}"), 1.0);
    assert_eq!(sample(&s, "relman_releases{phase=\"RolledBack\"}"), 1.0);
    assert_eq!(sample(&s, "relman_releases{phase=\"Progressing\"}"), 0.0);
    assert_eq!(
        sample(&s, &format!("relman_dora_deployments_total{web}")),
        1.0
    );
    assert_eq!(
        sample(&s, &format!("relman_dora_production_changes_total{web}")),
        2.0,
        "both releases changed production"
    );
    assert_eq!(
        sample(&s, &format!("relman_dora_production_reverts_total{web}")),
        1.0
    );
    assert_eq!(
        sample(&s, &format!("relman_dora_lead_time_seconds_count{web}")),
        1.0
    );
    let lead_time = sample(&s, &format!("relman_dora_lead_time_seconds_sum{web}"));
    let expected = (released - committed).num_seconds() as f64;
    assert!(
        (3_599.0..=expected + 1.0).contains(&lead_time),
        "lead time {lead_time}s runs from the commit time to production verified (≤ {expected}s)"
    );
    assert_eq!(
        sample(
            &s,
            &format!("relman_dora_time_to_restore_seconds_count{web}")
        ),
        1.0
    );
    let restore = sample(&s, &format!("relman_dora_time_to_restore_seconds_sum{web}"));
    assert!(
        (0.0..120.0).contains(&restore),
        "time to restore {restore}s"
    );
    assert_eq!(
        sample(&s, "relman_leader"),
        1.0,
        "without leader election the only replica leads"
    );

    // Scrapers that ask for OpenMetrics get it.
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{response}"
    );
    assert!(response.trim_end().ends_with("# EOF"), "{response}");

    release_controller.abort();
    calendar_controller.abort();
    server.abort();
    Ok(())
}

/// Every series the Grafana dashboard queries is one relman exports (no cluster needed).
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() -> anyhow::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integrations/grafana/relman.json"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");

    let metrics = exercised_metrics()?;
    let exported = metrics.encode_prometheus()?;
    let families: Vec<&str> = exported
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for expr in &exprs {
        for name in metric_names(expr) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| families.contains(base))
                .unwrap_or(&name);
            assert!(
                families.contains(&family) || family == "relman_releases",
                "the dashboard queries {name}, which relman does not export ({families:?}): {expr}"
            );
        }
    }
    Ok(())
}

/// Metrics with a sample in every family (a family shows once it has one).
fn exercised_metrics() -> anyhow::Result<Metrics> {
    use relman::metrics::{ControllerKind, WriteKind};
    let metrics = Metrics::new();
    metrics.watch_leadership(relman::leader::Leadership::always());
    drop(metrics.reconcile_timer(ControllerKind::Release));
    metrics.reconcile_failed(ControllerKind::Release, "Conflict");
    metrics.wrote(ControllerKind::Release, WriteKind::Status);
    let release: relman::api::Release = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1", "kind": "Release",
        "metadata": {"name": "web-2", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"application": "web", "version": "2.0.0", "type": "Minor", "owner": "o",
            "images": [{"container": "api", "image": "web:2"}],
            "stages": [{"name": "staging", "deployments": ["web"]},
                       {"name": "production", "deployments": ["web"]}]}
    }))?;
    let written: relman::api::ReleaseStatus = serde_json::from_value(json!({
        "phase": "Succeeded",
        "stages": [
            {"name": "staging", "deployments": [{"name": "web", "namespace": "shop"}]},
            {"name": "production", "finishedAt": "2026-01-01T01:00:00Z",
             "deployments": [{"name": "web", "namespace": "shop", "knownGoodTemplate": {}}]}
        ],
        "incident": {"openedAt": "2026-01-01T00:30:00Z", "restoredAt": "2026-01-01T00:31:00Z",
            "stage": "production", "reason": "SmokeTestFailed", "message": "failed"}
    }))?;
    metrics.record_status_written(&release, &written, chrono::Utc::now());
    Ok(metrics)
}

fn collect_exprs(value: &serde_json::Value, exprs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => exprs.push(expr.clone()),
                    _ => collect_exprs(value, exprs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, exprs)),
        _ => {}
    }
}

/// The `relman_…` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("relman_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
