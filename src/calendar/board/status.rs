//! The status a ReleaseCalendar should have, and when it next changes. Pure: the clock and the
//! Releases are inputs.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{READY, STALLED, Status, set_condition};
use crate::api::release::ReleaseType;
use crate::api::{Release, ReleaseCalendar, ReleaseCalendarStatus};
use crate::calendar::{CalendarError, CompiledCalendar, LOOKAHEAD_DAYS, WindowStatus};

use super::conflicts::conflicts;
use super::rows::calendar_rows;

/// The release type `status.open` speaks for.
pub const STATUS_RELEASE_TYPE: ReleaseType = ReleaseType::Minor;

/// The reason of the Ready and Stalled conditions when the calendar compiles.
pub const REASON_VALID: &str = "Valid";

/// The reason of `status` when the calendar does not compile; the conditions carry the
/// precise reason, e.g. InvalidRRule.
pub const REASON_INVALID: &str = "CalendarInvalid";

/// The most releases and entries `status.releases` lists: with 10,000 Releases on one calendar
/// the status would otherwise pass etcd's 1.5 MiB limit and could no longer be written.
pub const MAX_STATUS_ROWS: usize = 500;

/// The most problems `status.conflicts` lists.
pub const MAX_STATUS_CONFLICTS: usize = 100;

/// The status to write and when to look again.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStatus {
    /// The whole status subresource.
    pub status: ReleaseCalendarStatus,
    /// When the status changes by itself (a window opens or closes, a freeze starts or ends).
    /// `None` when it changes only through an edit.
    pub next_change: Option<DateTime<Utc>>,
}

/// The status of `calendar` at `now`, listing `releases` (the Releases that name it).
pub fn desired_status<'a>(
    calendar: &ReleaseCalendar,
    releases: impl IntoIterator<Item = &'a Release>,
    now: DateTime<Utc>,
) -> DesiredStatus {
    let old = calendar.status.clone().unwrap_or_default();
    let generation = calendar.metadata.generation;
    let compiled = CompiledCalendar::compile(&calendar.spec);
    let rows = calendar_rows(&calendar.spec.entries, releases);
    let (listed, releases_not_listed) = listed_rows(&rows);
    let mut conflicts = conflicts(&rows, compiled.as_ref().ok());
    let conflicts_not_listed = conflicts.len().saturating_sub(MAX_STATUS_CONFLICTS);
    conflicts.truncate(MAX_STATUS_CONFLICTS);
    let count = |n: usize| (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
    let mut status = ReleaseCalendarStatus {
        observed_generation: generation,
        conditions: old.conditions,
        releases: listed.iter().map(|row| row.to_status()).collect(),
        releases_not_listed: count(releases_not_listed),
        conflicts,
        conflicts_not_listed: count(conflicts_not_listed),
        ..ReleaseCalendarStatus::default()
    };
    let next_change = match &compiled {
        Ok(compiled) => {
            let window = compiled.status_at(now, STATUS_RELEASE_TYPE);
            set_window(&mut status, &window);
            set_validity(&mut status, None, generation, now);
            Some(recheck_at(&window, now))
        }
        Err(error) => {
            set_invalid(&mut status, error);
            set_validity(&mut status, Some(error), generation, now);
            None
        }
    };
    DesiredStatus {
        status,
        next_change,
    }
}

/// The rows `status.releases` lists, in calendar order, and how many it leaves out: every row
/// not finished (planned or in flight) first, then finished ones from the latest target date
/// back, up to [`MAX_STATUS_ROWS`].
fn listed_rows(rows: &[super::rows::CalendarRow]) -> (Vec<&super::rows::CalendarRow>, usize) {
    if rows.len() <= MAX_STATUS_ROWS {
        return (rows.iter().collect(), 0);
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // Unfinished first; among finished, the latest target date first. Ties keep calendar order.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&rows[a], &rows[b]);
        ra.finished()
            .cmp(&rb.finished())
            .then_with(|| match ra.finished() {
                true => rb.target_date.cmp(&ra.target_date),
                false => std::cmp::Ordering::Equal,
            })
            .then(a.cmp(&b))
    });
    let mut kept: Vec<usize> = order.into_iter().take(MAX_STATUS_ROWS).collect();
    kept.sort_unstable();
    let listed = kept.into_iter().map(|i| &rows[i]).collect();
    (listed, rows.len() - MAX_STATUS_ROWS)
}

/// The status to write, or `None` when the calendar already has it: steady state costs no
/// write.
pub fn status_patch(
    calendar: &ReleaseCalendar,
    desired: &DesiredStatus,
) -> Option<ReleaseCalendarStatus> {
    (calendar.status.as_ref() != Some(&desired.status)).then(|| desired.status.clone())
}

/// Open/closed for a Minor release, why, and the next changes.
fn set_window(status: &mut ReleaseCalendarStatus, window: &WindowStatus) {
    status.open = Some(window.open);
    status.reason = Some(window.reason.as_str().to_owned());
    status.message = Some(window.message.clone());
    status.next_change = window.next_change().map(to_k8s_time);
    status.next_open = window.next_open.map(to_k8s_time);
    status.next_close = window.next_close.map(to_k8s_time);
}

fn set_invalid(status: &mut ReleaseCalendarStatus, error: &CalendarError) {
    status.open = Some(false);
    status.reason = Some(REASON_INVALID.to_owned());
    status.message = Some(format!(
        "releases that use this calendar wait until it is fixed: {error}"
    ));
}

/// Ready and Stalled: an invalid rule or time zone needs a person.
fn set_validity(
    status: &mut ReleaseCalendarStatus,
    error: Option<&CalendarError>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let (ready, stalled, reason, message) = match error {
        None => (
            Status::True,
            Status::False,
            REASON_VALID,
            "the time zone, windows and freezes are valid".to_owned(),
        ),
        Some(error) => (
            Status::False,
            Status::True,
            error.reason(),
            error.to_string(),
        ),
    };
    let conditions = &mut status.conditions;
    set_condition(conditions, READY, ready, reason, &message, generation, now);
    set_condition(
        conditions, STALLED, stalled, reason, &message, generation, now,
    );
}

/// When to compute the status again: at the next change, or, when none is in sight, after the
/// lookahead (a change further away than that is not searched for).
fn recheck_at(window: &WindowStatus, now: DateTime<Utc>) -> DateTime<Utc> {
    window.next_change().unwrap_or_else(|| {
        now.checked_add_signed(chrono::TimeDelta::days(LOOKAHEAD_DAYS))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    })
}

/// A Kubernetes `Time`, truncated to whole seconds as the API server stores it, so a status
/// read back compares equal to the one written.
pub(crate) fn to_k8s_time(at: DateTime<Utc>) -> Time {
    let fallback = if at.timestamp() < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    };
    Time(Timestamp::from_second(at.timestamp()).unwrap_or(fallback))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::super::rows::tests::release;
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn calendar(spec: serde_json::Value) -> ReleaseCalendar {
        let mut calendar: ReleaseCalendar = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseCalendar",
            "metadata": {"name": "cal", "generation": 3},
            "spec": spec
        }))
        .unwrap();
        calendar.metadata.resource_version = Some("1".into());
        calendar
    }

    fn weekdays() -> ReleaseCalendar {
        calendar(json!({
            "timeZone": "UTC",
            "windows": [{"name": "weekdays", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "16:00"}}],
            "entries": [{"name": "REL-1", "application": "billing", "version": "4.0.0",
                         "targetDate": "2026-12-08", "owner": "team-b", "type": "Major"}]
        }))
    }

    fn condition<'a>(
        status: &'a ReleaseCalendarStatus,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_valid_calendar_reports_the_window_and_requeues_at_the_next_change() {
        // Tuesday 2026-12-01 10:00 UTC: in the window until 16:00.
        let now = at(2026, 12, 1, 10);
        let releases = [release(
            "shop",
            "checkout",
            "checkout",
            "2.3.0",
            "2026-12-01",
        )];
        let desired = desired_status(&weekdays(), &releases, now);
        let status = &desired.status;
        assert_eq!(status.open, Some(true));
        assert_eq!(status.reason.as_deref(), Some("InWindow"));
        assert_eq!(status.next_change, Some(to_k8s_time(at(2026, 12, 1, 16))));
        assert_eq!(status.next_close, status.next_change);
        assert_eq!(status.next_open, None);
        assert_eq!(desired.next_change, Some(at(2026, 12, 1, 16)));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.releases.len(), 2);
        assert_eq!(
            status.conflicts,
            ["entry REL-1 (billing 4.0.0) has no rollback plan: add rollbackPlan to the entry"]
        );
        assert_eq!(condition(status, READY).status, "True");
        assert_eq!(condition(status, STALLED).status, "False");
        assert_eq!(condition(status, READY).observed_generation, Some(3));
    }

    #[test]
    fn an_unchanged_status_needs_no_write_even_later() {
        let mut calendar = weekdays();
        let first = desired_status(&calendar, [], at(2026, 12, 1, 10));
        calendar.status = status_patch(&calendar, &first);
        assert!(calendar.status.is_some());
        // An hour later, still in the same window: nothing to write.
        let later = desired_status(&calendar, [], at(2026, 12, 1, 11));
        assert_eq!(status_patch(&calendar, &later), None);
        // After the window closed: open flips, the Ready condition keeps its transition time.
        let closed = desired_status(&calendar, [], at(2026, 12, 1, 17));
        let patch = status_patch(&calendar, &closed).unwrap();
        assert_eq!(patch.open, Some(false));
        assert_eq!(patch.reason.as_deref(), Some("WindowClosed"));
        assert_eq!(patch.next_open, Some(to_k8s_time(at(2026, 12, 2, 9))));
        assert_eq!(
            condition(&patch, READY).last_transition_time,
            to_k8s_time(at(2026, 12, 1, 10))
        );
    }

    #[test]
    fn an_invalid_calendar_is_stalled_with_the_field_named() {
        let calendar = calendar(json!({
            "timeZone": "UTC",
            "windows": [{"name": "w", "rrule": "FREQ=WEEKLY;BYDAY=XX", "duration": "1h"}],
            "entries": [{"name": "REL-1", "application": "billing", "targetDate": "2026-12-08",
                         "owner": "team-b", "type": "Major", "rollbackPlan": "runbook"}]
        }));
        let desired = desired_status(&calendar, [], at(2026, 12, 1, 10));
        let status = &desired.status;
        assert_eq!(desired.next_change, None);
        assert_eq!(status.open, Some(false));
        assert_eq!(status.reason.as_deref(), Some(REASON_INVALID));
        let stalled = condition(status, STALLED);
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.reason, "InvalidRRule");
        assert!(
            stalled.message.starts_with("spec.windows[0].rrule"),
            "{stalled:?}"
        );
        assert_eq!(condition(status, READY).status, "False");
        // The entries are still listed.
        assert_eq!(status.releases.len(), 1);
    }

    #[test]
    fn a_calendar_that_never_changes_is_looked_at_again_after_the_lookahead() {
        let calendar = calendar(json!({"timeZone": "UTC"}));
        let now = at(2026, 12, 1, 10);
        let desired = desired_status(&calendar, [], now);
        assert_eq!(desired.status.reason.as_deref(), Some("NoWindows"));
        assert_eq!(desired.status.next_change, None);
        assert_eq!(
            desired.next_change,
            Some(now + chrono::TimeDelta::days(LOOKAHEAD_DAYS))
        );
    }

    #[test]
    fn a_calendar_of_ten_thousand_releases_lists_the_unfinished_ones_and_stays_small() {
        use crate::api::release::ReleasePhase;
        let now = at(2026, 12, 2, 10);
        // 9,800 finished releases over the years, and 200 still under way.
        let releases: Vec<Release> = (0..10_000)
            .map(|i| {
                let day = format!(
                    "20{:02}-{:02}-{:02}",
                    10 + i / 400,
                    1 + i / 31 % 12,
                    1 + i % 28
                );
                let mut r = release(
                    "shop",
                    &format!("checkout-{i}"),
                    "checkout",
                    &format!("1.{i}.0"),
                    &day,
                );
                if i < 9_800 {
                    r.status.as_mut().unwrap().phase = Some(ReleasePhase::Succeeded);
                }
                r
            })
            .collect();
        let desired = desired_status(&weekdays(), &releases, now);
        let status = &desired.status;
        assert_eq!(status.releases.len(), MAX_STATUS_ROWS);
        // The calendar's entry and every release under way are listed; the rest are counted.
        assert_eq!(
            status.releases_not_listed,
            Some(10_001 - MAX_STATUS_ROWS as u32)
        );
        for i in 9_800..10_000 {
            let name = format!("shop/checkout-{i}");
            assert!(
                status
                    .releases
                    .iter()
                    .any(|r| r.release.as_deref() == Some(name.as_str())),
                "{name} is under way and must be listed"
            );
        }
        assert!(status.conflicts.len() <= MAX_STATUS_CONFLICTS);
        let bytes = serde_json::to_vec(status).unwrap().len();
        println!("calendar status with 10,000 Releases: {bytes} bytes");
        assert!(bytes < 256 * 1024, "{bytes} bytes");
    }
}
