//! relman running with the chart's ServiceAccount: its controllers, the calendar, Deployments
//! and Releases it drives, and waits on them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseCalendar, ReleaseStatus};
use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::k8s::scope::Scope;
use serde_json::json;

pub use crate::support::image_of;
use crate::support::{
    self, CALENDAR_LABEL, ReleaseBuilder, calendar_controller, context, deployment_with,
    run_controller_in, start_controller, wait_deployment_available,
};

/// Starts what `relman` runs — the Release controller and the calendar controller — for
/// `namespace` with `client` (the ServiceAccount's). They stop when the test ends.
pub fn start_relman(client: kube::Client, namespace: &str) {
    tokio::spawn(calendar_controller(&client, namespace).run(std::future::pending()));
    start_controller(&client, namespace, "chart-test");
}

/// [`start_relman`] for several namespaces, as `RELMAN_NAMESPACE=a,b` runs it: one watch per
/// namespace and kind. The calendar controller keeps the calendars labelled for `namespaces[0]`.
pub fn start_relman_in(client: kube::Client, namespaces: &[&str]) {
    let scope = Scope::Namespaces(namespaces.iter().map(|ns| (*ns).to_owned()).collect());
    let calendars = CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespaces: scope.clone(),
            calendar_selector: Some(format!("{CALENDAR_LABEL}={}", namespaces[0])),
        },
    );
    tokio::spawn(calendars.run(std::future::pending()));
    run_controller_in(Arc::new(context(&client, "chart-test")), scope);
}

/// Creates the test's ReleaseCalendar (named after the namespace), with a window open now.
pub async fn create_open_calendar(admin: &kube::Client, ns: &str) -> anyhow::Result<()> {
    let start = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let calendar: ReleaseCalendar = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseCalendar",
        "metadata": {"name": ns, "labels": {CALENDAR_LABEL: ns}},
        "spec": {"timeZone": "UTC", "windows": [
            {"name": "today", "rrule": "FREQ=DAILY;COUNT=1", "start": start.to_string(), "duration": "24h"}
        ]}
    }))?;
    Api::<ReleaseCalendar>::all(admin.clone())
        .create(&PostParams::default(), &calendar)
        .await?;
    Ok(())
}

/// A Release of `application` at `version` through `<application>-staging` and
/// `<application>-prod`, smoke tests with a two-minute timeout; production waits for the
/// window of `calendar`.
pub fn release(application: &str, version: &str, calendar: &str) -> ReleaseBuilder {
    support::release(application, version)
        .calendar(calendar)
        .production_window()
        .smoke_timeout("2m")
}

/// Creates web 3.0.0 whose staging deploys to `elsewhere`, a namespace that has not accepted
/// Releases of the test's namespace, and waits until it is Stalled with NamespaceNotPermitted.
pub async fn stage_elsewhere_stalls(
    releases: &Api<Release>,
    elsewhere: &str,
) -> anyhow::Result<()> {
    let ns = releases.namespace().unwrap_or_default().to_owned();
    let mut release = release("web", "3.0.0", &ns).build();
    release.spec.stages[0].namespace = Some(elsewhere.to_owned());
    releases.create(&PostParams::default(), &release).await?;
    let status = wait_condition(releases, "web-3-0-0", "Stalled", "True").await?;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .ok_or_else(|| anyhow::anyhow!("no Stalled condition"))?;
    anyhow::ensure!(
        stalled.reason == "NamespaceNotPermitted"
            && stalled.message.contains("spec.stages[0].namespace"),
        "{stalled:?}"
    );
    Ok(())
}

/// Creates `<application>-staging` and `<application>-prod` on 1.0.0 (as the admin) and waits
/// until they are available.
pub async fn create_deployments(
    admin: &kube::Client,
    ns: &str,
    application: &str,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    for stage in ["staging", "prod"] {
        let name = format!("{application}-{stage}");
        let image = format!("{application}:1.0.0");
        let deployment = deployment_with(&name, &image, 2, json!({"progressDeadlineSeconds": 30}));
        deployments
            .create(&PostParams::default(), &deployment)
            .await?;
        wait_deployment_available(&deployments, &name).await?;
    }
    Ok(())
}

/// Waits until the Release's condition `type_` has `status`, and returns the status then.
pub async fn wait_condition(
    api: &Api<Release>,
    name: &str,
    type_: &str,
    status: &str,
) -> anyhow::Result<ReleaseStatus> {
    let holds = |r: Option<&Release>| {
        r.and_then(|r| r.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status)
        })
    };
    let waited = tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(api.clone(), name, holds),
    )
    .await;
    let Ok(found) = waited else {
        // Say where the release stopped.
        let last = api.get_opt(name).await?.and_then(|r| r.status);
        let summary: Vec<String> = last
            .iter()
            .flat_map(|s| &s.conditions)
            .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
            .collect();
        anyhow::bail!(
            "timed out waiting for {type_}={status} on {name}; phase {:?}, conditions:\n{}",
            last.as_ref().and_then(|s| s.phase),
            summary.join("\n")
        );
    };
    Ok(found?.and_then(|r| r.status).unwrap_or_default())
}

/// Events relman recorded about the Release `name`.
pub async fn events_about(
    admin: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reporting_controller.as_deref() == Some("relman")
        })
        .collect())
}
