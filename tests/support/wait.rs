//! Waits: for a Deployment, for Events, for admission policies, and for anything that comes
//! eventually.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::ReleaseApproval;

/// Waits up to a minute until Deployment `name` is `Available` with every replica updated.
pub async fn wait_deployment_available(api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            }) && s.updated_replicas == s.replicas
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), name, available),
    )
    .await??;
    Ok(())
}

/// The Events in `ns` on the object `name` with `reason`, once there is at least one (Events
/// are recorded just after the status they go with, so a test that saw the status waits a
/// moment for them); empty if none comes within 30 seconds.
pub async fn events(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let found = eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let found = events_now(client, ns, name, reason).await?;
            Ok(if found.is_empty() {
                Err(found)
            } else {
                Ok(found)
            })
        },
    )
    .await?;
    Ok(found.unwrap_or_else(|none| none))
}

/// The Events in `ns` on the object `name` with `reason`, as they are now.
pub async fn events_now(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .collect())
}

/// Calls `check` every `every` until it says `Ok(done)`, for at most `within`: `Ok(Ok(done))`
/// then, or `Ok(Err(last))` with what `check` last said instead (`Err(not_yet)`). An error of
/// `check` (a failed API call) ends the wait at once.
pub async fn eventually<T, E, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<Result<T, E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, E>>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await? {
            Ok(done) => return Ok(Ok(done)),
            Err(not_yet) if Instant::now() >= deadline => return Ok(Err(not_yet)),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually`], failing with `not_yet`'s text when the time is up.
pub async fn wait_for<T, F, Fut>(within: Duration, every: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    eventually(within, every, check)
        .await?
        .map_err(|not_yet| anyhow::anyhow!("{not_yet}"))
}

/// Waits until the admission policies reject each probe with its message (the probes are
/// created with dry runs, as whoever `approvals`' client is): policy bindings take effect
/// asynchronously.
pub async fn wait_until_rejected(
    approvals: &Api<ReleaseApproval>,
    probes: &[(ReleaseApproval, &str)],
    within: Duration,
) -> anyhow::Result<()> {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + within;
    for (probe, rejection) in probes {
        loop {
            match approvals.create(&dry_run, probe).await {
                Err(kube::Error::Api(e)) if e.message.contains(rejection) => break,
                other => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the admission policy is not enforced after {within:?}: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(())
}
