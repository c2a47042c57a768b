//! Conflicts a Release Manager should look at. Pure.
//!
//! - Two rows of one application on the same target date.
//! - A row whose target date is blocked: no moment of that day (in the calendar's time zone)
//!   is open for its type, because a freeze that does not let its type through holds (or no
//!   window is open that day). A day that is only partly frozen is not a conflict: the
//!   release can still go out in the open part. Releases that are over are not checked.
//! - A planned entry without a rollback plan (and no Release that documents one).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::api::release::ReleaseType;
use crate::calendar::{CompiledCalendar, IntervalKind};

use super::rows::CalendarRow;

/// Every conflict among `rows`, in a stable order. `calendar` is `None` when the calendar does
/// not compile; its dates are then not checked.
pub fn conflicts(rows: &[CalendarRow], calendar: Option<&CompiledCalendar>) -> Vec<String> {
    let mut found = same_day_conflicts(rows);
    if let Some(calendar) = calendar {
        found.extend(blocked_date_conflicts(rows, calendar));
    }
    found.extend(missing_rollback_plans(rows));
    found
}

/// Two or more rows of one application on one target date.
fn same_day_conflicts(rows: &[CalendarRow]) -> Vec<String> {
    let mut by_day: BTreeMap<(&str, &str), Vec<&CalendarRow>> = BTreeMap::new();
    for row in rows {
        if let Some(date) = row.target_date.as_deref() {
            by_day
                .entry((row.application.as_str(), date))
                .or_default()
                .push(row);
        }
    }
    by_day
        .into_iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|((application, date), rows)| {
            let labels: Vec<String> = rows.iter().map(|row| row.label()).collect();
            format!(
                "{application} has {} releases on {date}: {}",
                rows.len(),
                labels.join(", ")
            )
        })
        .collect()
}

/// Rows whose target date has no open moment for their type.
fn blocked_date_conflicts(rows: &[CalendarRow], calendar: &CompiledCalendar) -> Vec<String> {
    let mut days: HashMap<(NaiveDate, ReleaseType), Option<String>> = HashMap::new();
    rows.iter()
        .filter(|row| !row.finished())
        .filter_map(|row| {
            let date = row.target_day()?;
            let why = days
                .entry((date, row.release_type))
                .or_insert_with(|| why_day_is_blocked(calendar, date, row.release_type))
                .clone()?;
            Some(format!("{}: target date {date} is {why}", row.label()))
        })
        .collect()
}

/// Why no `release_type` release can go out on `date`, or `None` when one can.
fn why_day_is_blocked(
    calendar: &CompiledCalendar,
    date: NaiveDate,
    release_type: ReleaseType,
) -> Option<String> {
    let tz = calendar.time_zone();
    let start = local_midnight(tz, date)?;
    let end = date.succ_opt().and_then(|next| local_midnight(tz, next))?;
    let status = calendar.status_at(start, release_type);
    let opens_that_day = status.open || status.next_open.is_some_and(|open| open < end);
    if opens_that_day {
        return None;
    }
    let mut freezes: Vec<String> = calendar
        .occurrences(start, end)
        .into_iter()
        .filter(|interval| {
            interval.kind == IntervalKind::Freeze && !interval.allow_types.contains(&release_type)
        })
        .map(|interval| interval.name)
        .collect();
    freezes.dedup();
    Some(if freezes.is_empty() {
        format!("closed all day for a {release_type} release: no deployment window is open")
    } else {
        format!(
            "inside freeze {}, which does not let {release_type} releases through",
            freezes.join(", ")
        )
    })
}

/// The first instant of `date` in `tz` (a day that starts in a daylight-saving gap starts
/// when the gap ends).
fn local_midnight(tz: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => (1..=3)
            .filter_map(|hour| date.and_hms_opt(hour, 0, 0))
            .find_map(|later| tz.from_local_datetime(&later).earliest())
            .map(|at| at.with_timezone(&Utc)),
    }
}

/// Planned entries with no rollback plan, neither in the entry nor in a merged Release.
fn missing_rollback_plans(rows: &[CalendarRow]) -> Vec<String> {
    rows.iter()
        .filter(|row| row.entry.is_some() && row.rollback_plan.is_none())
        .map(|row| {
            format!(
                "{} has no rollback plan: add rollbackPlan to the entry",
                row.label()
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::super::rows::calendar_rows;
    use super::super::rows::tests::{entry, release};
    use super::*;
    use crate::api::ReleaseCalendarSpec;
    use crate::api::release::ReleasePhase;

    fn calendar(spec: serde_json::Value) -> CompiledCalendar {
        let spec: ReleaseCalendarSpec = serde_json::from_value(spec).unwrap();
        CompiledCalendar::compile(&spec).unwrap()
    }

    fn year_end() -> CompiledCalendar {
        calendar(json!({
            "timeZone": "Europe/Berlin",
            "windows": [{"name": "weekdays", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "16:00"}}],
            "freezes": [{"name": "year-end", "start": "2026-12-20", "end": "2027-01-04", "allowTypes": ["Patch"]}]
        }))
    }

    #[test]
    fn two_releases_of_one_application_on_one_day() {
        let releases = [
            release("shop", "checkout-2-3-0", "checkout", "2.3.0", "2026-12-01"),
            release("shop", "checkout-2-4-0", "checkout", "2.4.0", "2026-12-01"),
            release("shop", "billing-1-0-0", "billing", "1.0.0", "2026-12-01"),
        ];
        let rows = calendar_rows(&[], &releases);
        let found = conflicts(&rows, Some(&year_end()));
        assert_eq!(
            found,
            [
                "checkout has 2 releases on 2026-12-01: shop/checkout-2-3-0 (checkout 2.3.0), \
              shop/checkout-2-4-0 (checkout 2.4.0)"
            ]
        );
    }

    #[test]
    fn a_target_date_inside_a_freeze_that_denies_the_type() {
        let mut patch = release("shop", "hotfix", "checkout", "2.3.1", "2026-12-22");
        patch.spec.release_type = ReleaseType::Patch;
        let releases = [
            release("shop", "minor", "checkout", "2.4.0", "2026-12-23"),
            patch,
        ];
        let rows = calendar_rows(&[], &releases);
        let found = conflicts(&rows, Some(&year_end()));
        assert_eq!(
            found,
            [
                "shop/minor (checkout 2.4.0): target date 2026-12-23 is inside freeze year-end, \
              which does not let Minor releases through"
            ]
        );
    }

    #[test]
    fn a_day_without_a_window_is_blocked_and_a_partly_open_day_is_not() {
        let cal = calendar(json!({
            "timeZone": "UTC",
            "windows": [{"name": "weekdays", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "16:00"}}],
            "freezes": [{"name": "afternoon", "start": "2026-12-01T12:00", "end": "2026-12-01T18:00"}]
        }));
        let releases = [
            // Sunday.
            release("shop", "sunday", "a", "1.0.0", "2026-12-06"),
            // Tuesday, frozen only in the afternoon: the morning is open.
            release("shop", "tuesday", "b", "1.0.0", "2026-12-01"),
        ];
        let rows = calendar_rows(&[], &releases);
        let found = conflicts(&rows, Some(&cal));
        assert_eq!(
            found,
            [
                "shop/sunday (a 1.0.0): target date 2026-12-06 is closed all day for a Minor \
              release: no deployment window is open"
            ]
        );
    }

    #[test]
    fn finished_releases_are_not_checked_against_freezes() {
        let mut done = release("shop", "done", "checkout", "2.4.0", "2026-12-23");
        done.status = Some(crate::api::ReleaseStatus {
            phase: Some(ReleasePhase::Succeeded),
            ..Default::default()
        });
        let rows = calendar_rows(&[], &[done]);
        assert!(conflicts(&rows, Some(&year_end())).is_empty());
    }

    #[test]
    fn an_entry_without_a_rollback_plan() {
        let entries = [
            entry("REL-1", "billing", Some("4.0.0"), "2026-12-08", None),
            entry(
                "REL-2",
                "search",
                Some("1.0.0"),
                "2026-12-09",
                Some("runbook"),
            ),
            // Its Release documents a rollback plan: not a conflict.
            entry("REL-3", "checkout", Some("2.3.0"), "2026-12-10", None),
        ];
        let releases = [release(
            "shop",
            "checkout",
            "checkout",
            "2.3.0",
            "2026-12-10",
        )];
        let rows = calendar_rows(&entries, &releases);
        assert_eq!(
            conflicts(&rows, None),
            ["entry REL-1 (billing 4.0.0) has no rollback plan: add rollbackPlan to the entry"]
        );
    }

    #[test]
    fn midnight_in_a_daylight_saving_gap() {
        // America/Santiago springs forward at midnight: 2026-09-06 starts at 01:00.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = local_midnight(tz, date).unwrap();
        assert_eq!(
            start.with_timezone(&tz).date_naive(),
            date,
            "{start} is on the day"
        );
    }
}
