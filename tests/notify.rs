//! Notification delivery against local HTTP receivers on 127.0.0.1: one that accepts, one that
//! fails (500) and one that accepts the connection and never answers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use relman::notify::{NotifyError, RetryPolicy, send_with_retries};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    Fail,
    Hang,
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body); returns the body.
async fn read_request(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string());
            }
        }
    }
}

/// Starts a receiver; returns its URL, a request counter and the bodies received.
async fn receiver(
    behaviour: Behaviour,
) -> anyhow::Result<(String, Arc<AtomicU32>, mpsc::UnboundedReceiver<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/hooks/T000/B000/s3cr3t-token",
        listener.local_addr()?
    );
    let count = Arc::new(AtomicU32::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let counter = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            match behaviour {
                Behaviour::Hang => held.push(stream),
                Behaviour::Ok | Behaviour::Fail => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Ok(body) = read_request(&mut stream).await {
                            let _ = tx.send(body);
                        }
                        let status = match behaviour {
                            Behaviour::Ok => "200 OK",
                            _ => "500 Internal Server Error",
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        }
    });
    Ok((url, count, rx))
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn a_receiver_that_accepts_gets_the_payload_once() -> anyhow::Result<()> {
    let (url, count, mut bodies) = receiver(Behaviour::Ok).await?;
    let body = json!({"text": "web 1.2.0 is released", "blocks": []});
    let delivery = send_with_retries(&url, &body, policy()).await;
    assert!(delivery.delivered(), "{:?}", delivery.error);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let received: serde_json::Value =
        serde_json::from_str(&bodies.recv().await.unwrap_or_default())?;
    assert_eq!(received, body);
    Ok(())
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff() -> anyhow::Result<()> {
    let (url, count, _bodies) = receiver(Behaviour::Fail).await?;
    let started = Instant::now();
    let delivery = send_with_retries(&url, &json!({"text": "x"}), policy()).await;
    assert_eq!(delivery.attempts, 3);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(matches!(delivery.error, Some(NotifyError::Status(500))));
    // 50 ms + 100 ms of backoff between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(150));
    Ok(())
}

#[tokio::test]
async fn a_hanging_receiver_times_out_quickly() -> anyhow::Result<()> {
    let (url, count, _bodies) = receiver(Behaviour::Hang).await?;
    let started = Instant::now();
    let delivery = send_with_retries(&url, &json!({"text": "x"}), policy()).await;
    assert!(matches!(delivery.error, Some(NotifyError::Timeout(_))));
    assert_eq!(delivery.attempts, 3);
    assert!(count.load(Ordering::SeqCst) >= 1);
    // Three 500 ms timeouts and 150 ms of backoff, with slack for a busy machine.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn transport_errors_never_contain_the_url() -> anyhow::Result<()> {
    // A port nobody listens on: bind, take the address, drop the listener.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/s3cr3t-token", listener.local_addr()?);
    drop(listener);
    let delivery = send_with_retries(&url, &json!({"text": "x"}), policy()).await;
    assert!(
        matches!(delivery.error, Some(NotifyError::Transport(_))),
        "a refused connection is a transport error: {:?}",
        delivery.error
    );
    let error = delivery.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(!error.is_empty());
    assert!(!error.contains("s3cr3t-token"), "{error}");
    assert!(!error.contains(&url), "{error}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// On the local control plane: a release with three receivers (accepting, failing, hanging).
// ---------------------------------------------------------------------------------------------

mod cluster {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::{Api, ListParams, PostParams};
    use kube::runtime::wait::await_condition;
    use relman::api::Release;
    use relman::api::release::NotifyEvent;

    use relman::notify::RetryPolicy;

    use relman_testenv::ControlPlane;
    use serde_json::{Value, json};

    use super::{Behaviour, receiver};
    use crate::support::{context, deployment, run_controller, wait_for};

    const WAIT: Duration = Duration::from_secs(120);
    const MINUTE: Duration = Duration::from_secs(60);
    const HALF_SECOND: Duration = Duration::from_millis(500);
    const TOKEN: &str = "s3cr3t-token";

    fn secret(name: &str, url: &str) -> anyhow::Result<Secret> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {"url": url}
        }))?)
    }

    /// Release web-2-0-0 notifying three receivers, each named after its Secret.
    fn release() -> Release {
        let target = |name: &str, format: &str| {
            json!({"name": name, "secretRef": {"name": name, "key": "url"},
                   "events": ["Started", "Released"], "format": format})
        };
        crate::support::release("web", "2.0.0")
            .summary("Version 2 with notifications.")
            .notify(json!([
                target("accepting", "Slack"),
                target("failing", "CDEvents"),
                target("hanging", "Slack")
            ]))
            .build()
    }

    async fn warning_reasons(events: &Api<Event>) -> anyhow::Result<Vec<(String, String)>> {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect())
    }

    #[tokio::test]
    async fn a_release_notifies_and_no_receiver_holds_it_up() -> anyhow::Result<()> {
        let cp = ControlPlane::shared().await?;
        let client = cp.client().await?;
        let ns = cp.test_namespace("notify").await?.name().to_owned();
        let (ok_url, _, mut ok_bodies) = receiver(Behaviour::Ok).await?;
        let (fail_url, fail_count, _) = receiver(Behaviour::Fail).await?;
        let (hang_url, _, _) = receiver(Behaviour::Hang).await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for (name, url) in [
            ("accepting", &ok_url),
            ("failing", &fail_url),
            ("hanging", &hang_url),
        ] {
            secrets
                .create(&PostParams::default(), &secret(name, url)?)
                .await?;
        }
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for name in ["web-staging", "web-prod"] {
            deployments
                .create(&PostParams::default(), &deployment(name, "web:1.0.0", 1))
                .await?;
        }
        let ctx = context(&client, "test").with_notify_policy(RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        });
        let metrics = ctx.metrics().clone();
        let controller = run_controller(Arc::new(ctx), &ns);

        let releases: Api<Release> = Api::namespaced(client.clone(), &ns);
        let started = Instant::now();
        releases.create(&PostParams::default(), &release()).await?;
        let ready = |r: Option<&Release>| {
            r.and_then(|r| r.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        };
        if tokio::time::timeout(WAIT, await_condition(releases.clone(), "web-2-0-0", ready))
            .await
            .is_err()
        {
            let status = releases.get("web-2-0-0").await?.status;
            anyhow::bail!("the release did not reach Ready: {status:#?}");
        }
        let took = started.elapsed();

        // The accepting receiver gets Started, then Released with the rendered notes.
        let mut bodies: BTreeMap<String, Value> = BTreeMap::new();
        while bodies.len() < 2 {
            let body = tokio::time::timeout(Duration::from_secs(30), ok_bodies.recv())
                .await?
                .unwrap_or_default();
            let value: Value = serde_json::from_str(&body)?;
            let text = value["text"].as_str().unwrap_or_default().to_owned();
            bodies.insert(text, value);
        }
        let released = bodies
            .get("web 2.0.0 is released")
            .ok_or_else(|| anyhow::anyhow!("no Released notification: {bodies:?}"))?;
        assert!(
            released
                .to_string()
                .contains("Version 2 with notifications."),
            "{released}"
        );
        assert!(bodies.contains_key("web 2.0.0 started"), "{bodies:?}");

        // The failing receiver is retried, and its failure is a Warning Event; so is the
        // hanging one's (after its timeouts).
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let failures = wait_for(MINUTE, HALF_SECOND, || async {
            let warnings = warning_reasons(&events).await?;
            let failed: Vec<_> = warnings
                .iter()
                .filter(|(reason, _)| reason == "NotificationFailed")
                .collect();
            let names = |n: &str| failed.iter().any(|(_, note)| note.contains(n));
            Ok(if names("failing") && names("hanging") {
                Ok(warnings)
            } else {
                Err(format!("no NotificationFailed Events: {warnings:?}"))
            })
        })
        .await?;
        assert!(fail_count.load(std::sync::atomic::Ordering::SeqCst) >= 3);
        // Two deliveries (Started, Released) to the accepting receiver; four failures.
        let counted = [
            "relman_notifications_total{result=\"delivered\"} 2\n",
            "relman_notifications_total{result=\"failed\"} 4\n",
        ];
        wait_for(MINUTE, HALF_SECOND, || async {
            let exposition = metrics.encode_prometheus()?;
            Ok(if counted.iter().all(|line| exposition.contains(line)) {
                Ok(())
            } else {
                Err(format!("{counted:?} in {exposition}"))
            })
        })
        .await?;

        // Every result is in status, one entry per receiver and event, and the controller's
        // own status writes keep them.
        let results = wait_for(MINUTE, HALF_SECOND, || async {
            let results = releases
                .get("web-2-0-0")
                .await?
                .status
                .map(|s| s.notifications)
                .unwrap_or_default();
            Ok(if results.len() == 6 {
                Ok(results)
            } else {
                Err(format!(
                    "expected 6 notification results in status, got {results:#?}"
                ))
            })
        })
        .await?;
        for event in [NotifyEvent::Started, NotifyEvent::Released] {
            let find = |target: &str| {
                results
                    .iter()
                    .find(|r| r.target == target && r.event == event)
                    .unwrap_or_else(|| panic!("no result for {target} {event:?}: {results:#?}"))
            };
            let accepted = find("accepting");
            assert!(accepted.delivered, "{accepted:?}");
            assert_eq!(accepted.attempts, 1, "{accepted:?}");
            assert_eq!(accepted.message, None);
            let failed = find("failing");
            assert!(!failed.delivered, "{failed:?}");
            assert_eq!(failed.attempts, 3, "{failed:?}");
            assert!(
                failed
                    .message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("HTTP 500"),
                "{failed:?}"
            );
            let hung = find("hanging");
            assert!(!hung.delivered, "{hung:?}");
            assert!(
                hung.message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("did not answer"),
                "{hung:?}"
            );
        }
        let ready_now = releases.get("web-2-0-0").await?;
        assert!(ready(Some(&ready_now)), "{:#?}", ready_now.status);

        // The URL never reaches Events or status.
        let status = serde_json::to_string(&releases.get("web-2-0-0").await?.status)?;
        let all_events = serde_json::to_string(&events.list(&ListParams::default()).await?.items)?;
        for text in [&status, &all_events, &format!("{failures:?}")] {
            assert!(!text.contains(TOKEN), "the webhook URL leaked: {text}");
        }
        // A hanging receiver (2 s timeouts, 3 attempts per event) never held the release up.
        assert!(took < Duration::from_secs(90), "took {took:?}");
        controller.abort();
        Ok(())
    }
}
