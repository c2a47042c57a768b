//! The ReleaseCalendar on the local control plane: windows and freezes gate the production
//! stage of real Releases, the calendar's status lists the releases and conflicts and flips at
//! the next change by itself, an invalid calendar stalls, the iCalendar feed parses with an
//! independent parser (Python's `icalendar` package, installed into a venv under `target/` on
//! first use), and the `kubectl-relman` plugin prints the calendar.
//!
//! Each test has its own namespace, a Release controller scoped to it, and a calendar
//! controller that watches only the calendar labelled with that namespace (calendars are
//! cluster-scoped; each test's calendar is named after its namespace).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use relman::api::{Release, ReleaseCalendar, ReleaseCalendarStatus, ReleaseStatus};
use relman::controller::calendar::CalendarCache;
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{
    CALENDAR_LABEL, calendar_controller, deployment_with, http_get, release_name, start_controller,
    wait_deployment_available,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

/// One test's world.
struct World {
    ns: String,
    /// The calendar's name (the namespace's name).
    calendar: String,
    releases: Api<Release>,
    calendars: Api<ReleaseCalendar>,
    cache: CalendarCache,
}

/// A namespace with a staging and a production Deployment per application, a Release
/// controller for the namespace, and a calendar controller for the test's calendar.
async fn setup(cp: &ControlPlane, prefix: &str, applications: &[&str]) -> anyhow::Result<World> {
    let client = cp.client().await?;
    let ns = cp.test_namespace(prefix).await?.name().to_owned();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for application in applications {
        for stage in ["staging", "prod"] {
            let name = format!("{application}-{stage}");
            let deployment = deployment_with(
                &name,
                "app:1.0.0",
                1,
                json!({"progressDeadlineSeconds": 30}),
            );
            deployments
                .create(&PostParams::default(), &deployment)
                .await?;
        }
    }
    for application in applications {
        for stage in ["staging", "prod"] {
            wait_deployment_available(&deployments, &format!("{application}-{stage}")).await?;
        }
    }
    start_controller(&client, &ns, "test");
    let calendars = calendar_controller(&client, &ns);
    let cache = calendars.cache();
    tokio::spawn(calendars.run(std::future::pending()));
    Ok(World {
        releases: Api::namespaced(client.clone(), &ns),
        calendars: Api::all(client.clone()),
        calendar: ns.clone(),
        ns,
        cache,
    })
}

impl World {
    /// Creates the test's calendar with `spec`.
    async fn create_calendar(&self, spec: Value) -> anyhow::Result<()> {
        let calendar: ReleaseCalendar = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseCalendar",
            "metadata": {"name": self.calendar, "labels": {CALENDAR_LABEL: self.ns}},
            "spec": spec,
        }))?;
        self.calendars
            .create(&PostParams::default(), &calendar)
            .await?;
        Ok(())
    }

    /// Changes the calendar's spec with a merge patch (lists are replaced whole).
    async fn patch_calendar_spec(&self, spec: Value) -> anyhow::Result<()> {
        self.calendars
            .patch(
                &self.calendar,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
        Ok(())
    }

    async fn create_release(&self, release: Release) -> anyhow::Result<()> {
        self.releases
            .create(&PostParams::default(), &release)
            .await?;
        Ok(())
    }

    /// Waits until the Release's status satisfies `holds` (`what` says what for the timeout
    /// message), and returns it.
    async fn wait_release(
        &self,
        name: &str,
        what: &str,
        holds: impl Fn(&ReleaseStatus) -> bool,
    ) -> anyhow::Result<ReleaseStatus> {
        let found = tokio::time::timeout(
            Duration::from_secs(120),
            await_condition(self.releases.clone(), name, |r: Option<&Release>| {
                r.and_then(|r| r.status.as_ref()).is_some_and(&holds)
            }),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out waiting for Release {name}: {what}"))??;
        Ok(found.and_then(|r| r.status).unwrap_or_default())
    }

    /// Waits until the calendar's status satisfies `holds`, and returns it.
    async fn wait_calendar(
        &self,
        what: &str,
        holds: impl Fn(&ReleaseCalendarStatus) -> bool,
    ) -> anyhow::Result<ReleaseCalendarStatus> {
        let found = tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(
                self.calendars.clone(),
                &self.calendar,
                |c: Option<&ReleaseCalendar>| c.and_then(|c| c.status.as_ref()).is_some_and(&holds),
            ),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("timed out waiting for calendar {}: {what}", self.calendar)
        })??;
        Ok(found.and_then(|c| c.status).unwrap_or_default())
    }
}

/// A Release of `application` whose production stage waits for the calendar's window.
fn release(
    application: &str,
    version: &str,
    release_type: &str,
    calendar: &str,
    target_date: &str,
) -> Release {
    support::release(application, version)
        .release_type(release_type)
        .target_date(target_date)
        .calendar(calendar)
        .rollback_plan("roll back to the previous version, see the runbook")
        .summary("A release, with commas; and semicolons.")
        .production_window()
        .smoke_timeout("2m")
        .build()
}

fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn has_condition(status: &ReleaseStatus, type_: &str, value: &str, reason: Option<&str>) -> bool {
    condition(&status.conditions, type_)
        .is_some_and(|c| c.status == value && reason.is_none_or(|r| c.reason == r))
}

/// A local date-time in UTC as the calendar takes it, to the second.
fn written(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A window that opens once, at `start`, for `duration`.
fn one_window(name: &str, start: DateTime<Utc>, duration: &str) -> Value {
    json!({"name": name, "rrule": "FREQ=DAILY;COUNT=1", "start": written(start), "duration": duration})
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn release_waits_for_a_closed_window_and_proceeds_when_the_calendar_opens()
-> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-gate", &["web"]).await?;
    let far = Utc::now() + TimeDelta::days(100);
    world
        .create_calendar(json!({"timeZone": "UTC", "windows": [one_window("later", far, "1h")]}))
        .await?;
    let name = release_name("web", "2.0.0");
    world
        .create_release(release("web", "2.0.0", "Minor", &world.calendar, &today()))
        .await?;

    // Staging goes ahead; production waits for the window, which is not a failure.
    let waiting = world
        .wait_release(&name, "phase AwaitingWindow", |s| {
            s.phase == Some(relman::api::release::ReleasePhase::AwaitingWindow)
        })
        .await?;
    assert!(
        has_condition(&waiting, "WindowOpen", "False", Some("WindowClosed")),
        "{waiting:#?}"
    );
    assert!(
        has_condition(&waiting, "Reconciling", "True", None),
        "{waiting:#?}"
    );
    assert!(
        has_condition(&waiting, "StagingVerified", "True", None),
        "{waiting:#?}"
    );
    assert!(
        !has_condition(&waiting, "ProductionDeployed", "True", None),
        "{waiting:#?}"
    );
    let message = &condition(&waiting.conditions, "WindowOpen")
        .unwrap()
        .message;
    assert!(
        message.contains("until") && message.contains("UTC"),
        "{message}"
    );

    // Open the calendar now: the release reacts to the edit, not to a poll.
    let edited = Instant::now();
    world
        .patch_calendar_spec(
            json!({"windows": [one_window("now", Utc::now() - TimeDelta::hours(1), "48h")]}),
        )
        .await?;
    world
        .wait_release(&name, "WindowOpen=True", |s| {
            has_condition(s, "WindowOpen", "True", None)
        })
        .await?;
    let latency = edited.elapsed();
    println!("edit -> WindowOpen=True: {latency:?}");
    assert!(latency < Duration::from_secs(5), "took {latency:?}");

    let done = world
        .wait_release(&name, "Ready=True", |s| {
            has_condition(s, "Ready", "True", None)
        })
        .await?;
    assert!(
        has_condition(&done, "ProductionVerified", "True", None),
        "{done:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_freeze_blocks_a_minor_release_and_lets_a_patch_release_through() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-freeze", &["web", "api"]).await?;
    // An emergency stop since an hour ago that lets hotfixes through.
    world
        .create_calendar(json!({
            "timeZone": "UTC",
            "freezes": [{"name": "incident", "reason": "Payments outage", "allowTypes": ["Patch"],
                         "start": written(Utc::now() - TimeDelta::hours(1))}]
        }))
        .await?;
    let minor = release_name("web", "2.1.0");
    let patch = release_name("api", "1.0.1");
    world
        .create_release(release("web", "2.1.0", "Minor", &world.calendar, &today()))
        .await?;
    world
        .create_release(release("api", "1.0.1", "Patch", &world.calendar, &today()))
        .await?;

    let passed = world
        .wait_release(&patch, "Ready=True", |s| {
            has_condition(s, "Ready", "True", None)
        })
        .await?;
    let window = condition(&passed.conditions, "WindowOpen").unwrap();
    assert_eq!(window.status, "True", "{passed:#?}");
    assert!(
        window
            .message
            .contains("freeze incident lets Patch releases through"),
        "{window:?}"
    );

    let blocked = world
        .wait_release(&minor, "phase AwaitingWindow", |s| {
            s.phase == Some(relman::api::release::ReleasePhase::AwaitingWindow)
        })
        .await?;
    assert!(
        has_condition(&blocked, "WindowOpen", "False", Some("Frozen")),
        "{blocked:#?}"
    );
    let message = &condition(&blocked.conditions, "WindowOpen")
        .unwrap()
        .message;
    assert!(
        message.contains("incident (Payments outage)")
            && message.contains("until the freeze is removed"),
        "{message}"
    );
    assert!(
        !has_condition(&blocked, "ProductionDeployed", "True", None),
        "{blocked:#?}"
    );

    // The calendar speaks for Minor releases: frozen.
    let status = world
        .wait_calendar("reason Frozen", |s| s.reason.as_deref() == Some("Frozen"))
        .await?;
    assert_eq!(status.open, Some(false));
    assert_eq!(status.next_change, None, "an emergency stop has no end");
    Ok(())
}

#[tokio::test]
async fn calendar_status_lists_releases_and_reports_conflicts() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-status", &["web"]).await?;
    let opens = Utc::now() + TimeDelta::days(100);
    let date = today();
    world
        .create_calendar(json!({
            "timeZone": "UTC",
            "windows": [one_window("later", opens, "2h")],
            "entries": [
                {"name": "REL-1", "application": "web", "version": "2.0.0", "targetDate": date,
                 "owner": "team-web", "type": "Minor"},
                {"name": "REL-2", "application": "web", "version": "2.1.0", "targetDate": date,
                 "owner": "team-web", "type": "Minor", "rollbackPlan": "runbook"},
                {"name": "REL-3", "application": "billing", "version": "4.0.0", "targetDate": "2030-01-07",
                 "owner": "team-billing", "type": "Major"}
            ]
        }))
        .await?;
    world
        .create_release(release("web", "2.0.0", "Minor", &world.calendar, &date))
        .await?;
    let key = format!("{}/{}", world.ns, release_name("web", "2.0.0"));

    // Steady state: the release waits at production and the calendar shows it.
    let status = world
        .wait_calendar("the release waits for the window", |s| {
            s.releases.iter().any(|r| {
                r.release.as_deref() == Some(key.as_str())
                    && r.phase.as_deref() == Some("AwaitingWindow")
            })
        })
        .await?;
    assert_eq!(status.open, Some(false));
    assert_eq!(status.reason.as_deref(), Some("WindowClosed"));
    let next = status
        .next_change
        .as_ref()
        .expect("next change")
        .0
        .as_second();
    assert_eq!(next, opens.timestamp(), "{status:#?}");
    assert_eq!(status.next_open, status.next_change);
    assert_eq!(status.releases.len(), 3, "{status:#?}");
    let merged = status
        .releases
        .iter()
        .find(|r| r.release.as_deref() == Some(key.as_str()))
        .unwrap();
    assert_eq!(merged.entry.as_deref(), Some("REL-1"), "{merged:?}");
    assert_eq!(merged.owner.as_deref(), Some("team-web"));
    assert_eq!(merged.version.as_deref(), Some("2.0.0"));
    let planned = status
        .releases
        .iter()
        .find(|r| r.entry.as_deref() == Some("REL-3"))
        .unwrap();
    assert_eq!(planned.phase.as_deref(), Some("Planned"));
    assert!(
        status
            .conflicts
            .iter()
            .any(|c| c.starts_with("web has 2 releases on")),
        "{:#?}",
        status.conflicts
    );
    assert!(
        status
            .conflicts
            .iter()
            .any(|c| c.contains("entry REL-3 (billing 4.0.0) has no rollback plan")),
        "{:#?}",
        status.conflicts
    );
    // REL-1 has no rollback plan of its own, but its Release documents one.
    assert!(
        !status.conflicts.iter().any(|c| c.contains("REL-1")),
        "{:#?}",
        status.conflicts
    );
    let ready = condition(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert!(ready.observed_generation.is_some());

    // Zero writes at steady state: a Release change that does not change the calendar (an
    // annotation) is reconciled without a write.
    let before = world.calendars.get(&world.calendar).await?;
    let version = before.metadata.resource_version.clone();
    world
        .releases
        .patch(
            &release_name("web", "2.0.0"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched": "yes"}}})),
        )
        .await?;
    let writes = count_calendar_writes(&world, Duration::from_secs(3)).await;
    assert_eq!(writes, 0, "the calendar was written at steady state");
    let after = world.calendars.get(&world.calendar).await?;
    assert_eq!(after.metadata.resource_version, version);
    Ok(())
}

/// How many times the test's calendar changes within `window`.
async fn count_calendar_writes(world: &World, window: Duration) -> usize {
    let config = watcher::Config::default().fields(&format!("metadata.name={}", world.calendar));
    let events = watcher(world.calendars.clone(), config)
        .applied_objects()
        .filter_map(|c| async move { c.ok() });
    let mut versions = std::collections::BTreeSet::new();
    futures::pin_mut!(events);
    let _ = tokio::time::timeout(window, async {
        while let Some(calendar) = events.next().await {
            versions.insert(calendar.metadata.resource_version.unwrap_or_default());
        }
    })
    .await;
    // The first event is the current state.
    versions.len().saturating_sub(1)
}

#[tokio::test]
async fn calendar_status_changes_by_itself_at_the_next_change() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-next", &[]).await?;
    let opens = Utc::now() + TimeDelta::seconds(6);
    let opens = DateTime::from_timestamp(opens.timestamp(), 0).unwrap();
    world
        .create_calendar(json!({"timeZone": "UTC", "windows": [one_window("soon", opens, "1h")]}))
        .await?;
    let closed = world
        .wait_calendar("closed", |s| s.open == Some(false))
        .await?;
    assert_eq!(
        closed.next_change.as_ref().map(|t| t.0.as_second()),
        Some(opens.timestamp())
    );
    world
        .wait_calendar("open", |s| s.open == Some(true))
        .await?;
    let seen = Utc::now();
    let lag = seen - opens;
    println!("window opened at {opens}, status open at {seen} (lag {lag})");
    assert!(lag >= TimeDelta::zero(), "open before the window: {lag}");
    assert!(lag < TimeDelta::seconds(3), "lag {lag}");
    let status = world.calendars.get(&world.calendar).await?.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("InWindow"));
    assert_eq!(
        status.next_close.as_ref().map(|t| t.0.as_second()),
        Some(opens.timestamp() + 3600)
    );
    Ok(())
}

#[tokio::test]
async fn an_invalid_calendar_stalls_and_its_releases_wait() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-invalid", &["web"]).await?;
    // The admission pattern accepts it; the RRULE parser does not know the day XX.
    world
        .create_calendar(json!({
            "timeZone": "UTC",
            "windows": [{"name": "bad", "rrule": "FREQ=WEEKLY;BYDAY=XX", "duration": "1h"}]
        }))
        .await?;
    let status = world
        .wait_calendar("Stalled=True", |s| {
            condition(&s.conditions, "Stalled").is_some_and(|c| c.status == "True")
        })
        .await?;
    let stalled = condition(&status.conditions, "Stalled").unwrap();
    assert!(
        stalled.message.contains("spec.windows[0].rrule"),
        "{stalled:?}"
    );
    assert_eq!(stalled.reason, "InvalidRRule");
    let ready = condition(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(status.reason.as_deref(), Some("CalendarInvalid"));

    let name = release_name("web", "3.0.0");
    world
        .create_release(release("web", "3.0.0", "Major", &world.calendar, &today()))
        .await?;
    let waiting = world
        .wait_release(&name, "WindowOpen reason CalendarInvalid", |s| {
            has_condition(s, "WindowOpen", "False", Some("CalendarInvalid"))
        })
        .await?;
    let message = &condition(&waiting.conditions, "WindowOpen")
        .unwrap()
        .message;
    assert!(message.contains("spec.windows[0].rrule"), "{message}");
    Ok(())
}

#[tokio::test]
async fn the_ics_feed_parses_and_lists_the_releases() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let python = icalendar_python().await?;
    let world = setup(cp, "cal-feed", &["web"]).await?;
    world
        .create_calendar(json!({
            "timeZone": "Europe/Berlin",
            "windows": [{"name": "business-hours", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu"], "start": "09:00", "end": "16:00"}}],
            "freezes": [{"name": "year-end", "reason": "Peak trading, reduced staffing; back in January.",
                         "start": written(Utc::now() + TimeDelta::days(20)), "end": written(Utc::now() + TimeDelta::days(34)),
                         "allowTypes": ["Patch"]}],
            "entries": [{"name": "REL-142", "application": "billing", "version": "4.0.0", "targetDate": "2030-01-08",
                         "owner": "team-billing", "type": "Major", "rollbackPlan": "https://wiki.example/billing/rollback",
                         "notes": "New invoice format.\nSecond line, with a comma; and a semicolon \\ backslash."}]
        }))
        .await?;
    world
        .create_release(release("web", "2.0.0", "Minor", &world.calendar, &today()))
        .await?;
    let key = format!("{}/{}", world.ns, release_name("web", "2.0.0"));
    world
        .wait_calendar("lists the release", |s| {
            s.releases
                .iter()
                .any(|r| r.release.as_deref() == Some(key.as_str()))
        })
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(relman::http::serve_on(
        listener,
        world.cache.clone(),
        std::future::pending(),
    ));
    let fetched = Instant::now();
    let (code, headers, body) =
        http_get(addr, &format!("/calendars/{}.ics", world.calendar)).await?;
    let elapsed = fetched.elapsed();
    println!("feed: {} bytes in {elapsed:?}", body.len());
    assert_eq!(code, 200, "{headers}\n{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/calendar"),
        "{headers}"
    );
    assert!(body.starts_with("BEGIN:VCALENDAR\r\n"), "{body}");
    for line in body.split("\r\n") {
        assert!(line.len() <= 75, "line longer than 75 octets: {line:?}");
        assert!(!line.contains('\n'), "bare LF in {line:?}");
    }

    let parsed = parse_with_icalendar(&python, &body).await?;
    assert_eq!(parsed["errors"], json!([]), "{parsed:#}");
    assert_eq!(parsed["version"], "2.0");
    let events = parsed["events"].as_array().unwrap();
    let find = |summary: &str| {
        events
            .iter()
            .find(|e| e["summary"] == summary)
            .unwrap_or_else(|| panic!("no event {summary:?} in {parsed:#}"))
    };
    let web = find("web 2.0.0 (Minor)");
    assert_eq!(web["all_day"], true);
    assert_eq!(web["dtstart"], today());
    let description = web["description"].as_str().unwrap();
    assert!(description.contains("Owner: team-web"), "{description}");
    assert!(
        description.contains(&format!("Release: {key}")),
        "{description}"
    );
    assert!(
        description.contains("Rollback plan: roll back to the previous version, see the runbook"),
        "{description}"
    );
    assert!(
        description.contains("A release, with commas; and semicolons."),
        "{description}"
    );
    let billing = find("billing 4.0.0 (Major)");
    assert_eq!(billing["dtstart"], "2030-01-08");
    assert_eq!(billing["status"], "TENTATIVE");
    assert!(
        billing["description"].as_str().unwrap().contains(
            "New invoice format.\nSecond line, with a comma; and a semicolon \\ backslash."
        ),
        "{billing:#}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["summary"] == "Deployment window: business-hours" && e["all_day"] == false)
    );
    let freeze = find("Freeze: year-end (Patch allowed)");
    assert!(
        freeze["description"]
            .as_str()
            .unwrap()
            .contains("Peak trading, reduced staffing; back in January."),
        "{freeze:#}"
    );
    let uids: std::collections::BTreeSet<_> =
        events.iter().map(|e| e["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), events.len(), "UIDs are unique");

    let (code, _, body) = http_get(addr, "/calendars/no-such-calendar.ics").await?;
    assert_eq!(code, 404);
    assert!(
        body.contains("ReleaseCalendar \"no-such-calendar\" not found"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn the_plugin_prints_the_calendar() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let world = setup(cp, "cal-plugin", &["web"]).await?;
    world
        .create_calendar(json!({
            "timeZone": "America/New_York",
            "windows": [{"name": "business-hours", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}}],
            "freezes": [{"name": "quarter-end", "start": written(Utc::now() + TimeDelta::days(3)),
                         "end": written(Utc::now() + TimeDelta::days(5))}],
            "entries": [{"name": "REL-7", "application": "search", "version": "1.2.0",
                         "targetDate": (Utc::now() + TimeDelta::days(2)).format("%Y-%m-%d").to_string(),
                         "owner": "team-search", "type": "Minor", "rollbackPlan": "runbook"}]
        }))
        .await?;
    world
        .create_release(release("web", "2.0.0", "Minor", &world.calendar, &today()))
        .await?;
    let key = format!("{}/{}", world.ns, release_name("web", "2.0.0"));
    world
        .wait_calendar("lists the release", |s| {
            s.releases
                .iter()
                .any(|r| r.release.as_deref() == Some(key.as_str()))
        })
        .await?;

    let kubeconfig = cp.kubeconfig_path();
    let shown = plugin(&kubeconfig, &["calendar", &world.calendar, "--days", "7"]).await?;
    assert!(shown.status.success(), "{shown:?}");
    let stdout = String::from_utf8(shown.stdout)?;
    println!("{stdout}");
    assert!(
        stdout.contains(&format!(
            "ReleaseCalendar {} (time zone America/New_York)",
            world.calendar
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&key), "{stdout}");
    assert!(stdout.contains("search"), "{stdout}");
    assert!(stdout.contains("REL-7"), "{stdout}");
    assert!(stdout.contains("business-hours"), "{stdout}");
    assert!(stdout.contains("quarter-end"), "{stdout}");
    assert!(stdout.contains("Minor"), "{stdout}");

    // Without a name: this calendar, or a list that includes it.
    let listed = plugin(&kubeconfig, &["calendar"]).await?;
    assert!(listed.status.success(), "{listed:?}");
    assert!(String::from_utf8(listed.stdout)?.contains(&world.calendar));

    // A calendar that does not exist: one line on stderr, a non-zero exit.
    let missing = plugin(&kubeconfig, &["calendar", "no-such-calendar"]).await?;
    assert!(!missing.status.success());
    let stderr = String::from_utf8(missing.stderr)?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ReleaseCalendar \"no-such-calendar\" not found"),
        "{stderr}"
    );

    // A kubeconfig that does not exist: one line, non-zero.
    let broken = plugin(Path::new("/nonexistent/kubeconfig"), &["calendar"]).await?;
    assert!(!broken.status.success());
    let stderr = String::from_utf8(broken.stderr)?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    Ok(())
}

#[test]
fn the_calendars_in_the_docs_and_examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/calendar.yaml")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/calendar.md")).unwrap();
    let mut calendars: Vec<String> = docs
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.contains("kind: ReleaseCalendar"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        calendars.len(),
        1,
        "docs/calendar.md has one calendar to copy"
    );
    calendars.push(example);
    for text in &calendars {
        let calendar: ReleaseCalendar = serde_yaml::from_str(text).unwrap();
        relman::calendar::CompiledCalendar::compile(&calendar.spec)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            calendar
                .spec
                .freezes
                .iter()
                .any(|f| f.allow_types.contains(&relman::api::ReleaseType::Patch))
        );
        assert!(!calendar.spec.entries.is_empty());
    }
}

/// Runs the real `kubectl-relman` binary with `--kubeconfig`.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-relman"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output();
    Ok(tokio::time::timeout(Duration::from_secs(30), output).await??)
}

/// A Python with the `icalendar` package: a venv under `target/`, created and filled from
/// the package index on first use.
async fn icalendar_python() -> anyhow::Result<PathBuf> {
    static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();
    PYTHON
        .get_or_try_init(|| async {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("icalendar-venv");
            let python = venv.join("bin").join("python");
            if run_quietly(&python, &["-c", "import icalendar"])
                .await
                .is_ok()
            {
                return Ok(python);
            }
            run_quietly(
                Path::new("python3"),
                &["-m", "venv", &venv.to_string_lossy()],
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!("python3 -m venv failed (is python3 with venv installed?): {e}")
            })?;
            run_quietly(
                &python,
                &["-m", "pip", "install", "--quiet", "icalendar>=6,<8"],
            )
            .await
            .map_err(|e| anyhow::anyhow!("pip install icalendar failed: {e}"))?;
            Ok(python)
        })
        .await
        .cloned()
}

async fn run_quietly(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "{} {}: {}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Parses `feed` with Python's `icalendar` and returns what it found, as JSON.
async fn parse_with_icalendar(python: &Path, feed: &str) -> anyhow::Result<Value> {
    const SCRIPT: &str = r#"
import datetime, json, sys
import icalendar

data = sys.stdin.buffer.read()
cal = icalendar.Calendar.from_ical(data)
errors = []
events = []
for component in cal.walk():
    for error in getattr(component, "errors", []) or []:
        errors.append(f"{component.name}: {error}")
    if component.name != "VEVENT":
        continue
    for required in ("UID", "DTSTAMP", "DTSTART"):
        if required not in component:
            errors.append(f"VEVENT without {required}")
    start = component.decoded("DTSTART")
    all_day = isinstance(start, datetime.date) and not isinstance(start, datetime.datetime)
    events.append({
        "uid": str(component.get("UID")),
        "summary": str(component.get("SUMMARY")),
        "description": str(component.get("DESCRIPTION", "")),
        "status": str(component.get("STATUS", "")),
        "all_day": all_day,
        "dtstart": start.isoformat(),
    })
print(json.dumps({
    "version": str(cal.get("VERSION")),
    "prodid": str(cal.get("PRODID")),
    "errors": errors,
    "events": events,
}))
"#;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(feed.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "icalendar could not parse the feed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
