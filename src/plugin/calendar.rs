//! `kubectl relman calendar [NAME] [--days N]`: whether releases may go out now, the upcoming
//! releases, and the deployment windows and freezes, in the calendar's time zone.
//!
//! The releases come from the calendar's status, which relman keeps (it merges the Releases
//! that name the calendar with its planned entries); before relman has written one, the
//! planned entries are shown. Windows and freezes are computed from the spec here, so they are
//! current even when relman is not running.

use std::io::Write;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use clap::Args;
use kube::api::{Api, ListParams};

use crate::api::calendar::CalendarRelease;
use crate::api::release::ReleaseType;
use crate::api::{ReleaseCalendar, ReleaseCalendarStatus};
use crate::calendar::board::rows::calendar_rows;
use crate::calendar::{CompiledCalendar, Interval, IntervalKind, WindowStatus};

use super::error::PluginError;
use super::session::Session;
use super::table::Table;

/// The arguments of `kubectl relman calendar`.
#[derive(Debug, Clone, Args)]
pub struct CalendarArgs {
    /// The ReleaseCalendar to show. Without it: the only calendar, or a list of them all.
    pub name: Option<String>,
    /// How many days ahead to show, from today.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

/// Runs `kubectl relman calendar`.
pub async fn run(
    session: &Session,
    args: &CalendarArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let api: Api<ReleaseCalendar> = Api::all(session.client.clone());
    let now = Utc::now();
    let calendar = match &args.name {
        Some(name) => api
            .get_opt(name)
            .await?
            .ok_or_else(|| PluginError::CalendarNotFound(name.clone()))?,
        None => {
            let mut calendars = api.list(&ListParams::default()).await?.items;
            match calendars.len() {
                0 => return Err(PluginError::NoCalendars),
                1 => calendars.remove(0),
                _ => {
                    out.write_all(render_calendar_list(&calendars, now).as_bytes())?;
                    return Ok(());
                }
            }
        }
    };
    out.write_all(render_calendar(&calendar, now, args.days).as_bytes())?;
    Ok(())
}

/// Every calendar on one line each, with a hint to pick one.
pub fn render_calendar_list(calendars: &[ReleaseCalendar], now: DateTime<Utc>) -> String {
    let mut table = Table::new([
        "NAME",
        "TIME ZONE",
        "OPEN",
        "REASON",
        "NEXT CHANGE",
        "RELEASES",
        "CONFLICTS",
    ]);
    for calendar in calendars {
        let tz = time_zone(calendar);
        let status = calendar.status.clone().unwrap_or_default();
        let next_change = status
            .next_change
            .as_ref()
            .and_then(|time| DateTime::from_timestamp(time.0.as_second(), 0))
            .map(|at| local(tz, at))
            .unwrap_or_else(|| "-".into());
        table.row(vec![
            calendar.metadata.name.clone().unwrap_or_default(),
            calendar.spec.time_zone.clone(),
            status
                .open
                .map_or_else(|| "-".into(), |open| open.to_string()),
            status.reason.unwrap_or_else(|| "-".into()),
            next_change,
            (status.releases.len() + status.releases_not_listed.unwrap_or(0) as usize).to_string(),
            (status.conflicts.len() + status.conflicts_not_listed.unwrap_or(0) as usize)
                .to_string(),
        ]);
    }
    format!(
        "{}\n{} calendars at {}; show one with: kubectl relman calendar NAME\n",
        table.render().trim_end(),
        calendars.len(),
        now.format("%Y-%m-%d %H:%M UTC")
    )
}

/// The calendar as people read it: now, the releases of the next `days` days, the windows
/// and freezes in that time, and the conflicts relman found.
pub fn render_calendar(calendar: &ReleaseCalendar, now: DateTime<Utc>, days: u32) -> String {
    let tz = time_zone(calendar);
    let until = now + TimeDelta::days(i64::from(days));
    let name = calendar.metadata.name.as_deref().unwrap_or_default();
    let mut out = format!(
        "ReleaseCalendar {name} (time zone {}), now {}\n",
        calendar.spec.time_zone,
        local(tz, now)
    );
    let compiled = CompiledCalendar::compile(&calendar.spec);
    match &compiled {
        Ok(compiled) => out.push_str(&render_now(compiled, now)),
        Err(error) => out.push_str(&format!(
            "\nINVALID: {error}\nReleases that use this calendar wait until it is fixed.\n"
        )),
    }
    out.push_str(&render_releases(calendar, now, tz, days));
    if let Ok(compiled) = &compiled {
        out.push_str(&render_intervals(
            &compiled.occurrences(now, until),
            tz,
            days,
        ));
    }
    let conflicts = &calendar
        .status
        .as_ref()
        .map(|status| status.conflicts.clone())
        .unwrap_or_default();
    if !conflicts.is_empty() {
        out.push_str("\nConflicts\n");
        for conflict in conflicts {
            out.push_str(&format!("- {conflict}\n"));
        }
    }
    out
}

/// Whether each release type may go out now, and until when; types that share the answer
/// share a line.
fn render_now(calendar: &CompiledCalendar, now: DateTime<Utc>) -> String {
    let mut answers: Vec<(Vec<String>, WindowStatus)> = Vec::new();
    for release_type in [ReleaseType::Patch, ReleaseType::Minor, ReleaseType::Major] {
        let status = calendar.status_at(now, release_type);
        match answers.iter_mut().find(|(_, seen)| *seen == status) {
            Some((types, _)) => types.push(release_type.to_string()),
            None => answers.push((vec![release_type.to_string()], status)),
        }
    }
    let mut table = Table::new(["TYPES", "NOW", "REASON", "DETAILS"]);
    for (types, status) in answers {
        table.row(vec![
            types.join(", "),
            if status.open { "open" } else { "closed" }.into(),
            status.reason.to_string(),
            status.message,
        ]);
    }
    format!("\n{}", table.render())
}

/// The releases with a target date from today to `days` days ahead (in the calendar's time
/// zone), and how many others there are.
fn render_releases(calendar: &ReleaseCalendar, now: DateTime<Utc>, tz: Tz, days: u32) -> String {
    let today = now.with_timezone(&tz).date_naive();
    let last = today + TimeDelta::days(i64::from(days));
    let (rows, reported) = calendar_releases(calendar);
    let (upcoming, others): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| target_day(row).is_some_and(|date| today <= date && date <= last));
    let mut out = format!("\nReleases from {today} to {last}\n");
    if !reported {
        out.push_str("(relman has not reported on this calendar yet: planned entries only)\n");
    }
    if upcoming.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new([
            "DATE",
            "APPLICATION",
            "VERSION",
            "TYPE",
            "OWNER",
            "PHASE",
            "RELEASE",
            "ENTRY",
        ]);
        for row in &upcoming {
            table.row(vec![
                cell(&row.target_date),
                row.application.clone(),
                cell(&row.version),
                row.release_type
                    .map_or_else(|| "-".into(), |t| t.to_string()),
                cell(&row.owner),
                cell(&row.phase),
                cell(&row.release),
                cell(&row.entry),
            ]);
        }
        out.push_str(&table.render());
    }
    if !others.is_empty() {
        out.push_str(&format!(
            "({} more on other dates or without a target date)\n",
            others.len()
        ));
    }
    out
}

/// The calendar's rows: from its status when relman wrote one, else its planned entries.
/// The flag says whether they come from relman.
fn calendar_releases(calendar: &ReleaseCalendar) -> (Vec<CalendarRelease>, bool) {
    match &calendar.status {
        Some(ReleaseCalendarStatus {
            observed_generation: Some(_),
            releases,
            ..
        }) => (releases.clone(), true),
        _ => {
            let rows = calendar_rows(&calendar.spec.entries, []);
            (rows.iter().map(|row| row.to_status()).collect(), false)
        }
    }
}

/// The windows and freezes, one occurrence a line.
fn render_intervals(intervals: &[Interval], tz: Tz, days: u32) -> String {
    let mut out = format!("\nWindows and freezes in the next {days} days\n");
    if intervals.is_empty() {
        out.push_str("none\n");
        return out;
    }
    let mut table = Table::new(["FROM", "TO", "KIND", "NAME", "NOTES"]);
    for interval in intervals {
        let (kind, notes) = match interval.kind {
            IntervalKind::Window => ("window", String::new()),
            IntervalKind::Freeze => ("freeze", freeze_notes(interval)),
        };
        table.row(vec![
            local(tz, interval.start),
            interval
                .end
                .map_or_else(|| "until removed".into(), |end| local(tz, end)),
            kind.into(),
            interval.name.clone(),
            notes,
        ]);
    }
    out.push_str(&table.render());
    out
}

/// `Patch allowed; Peak trading.`
fn freeze_notes(interval: &Interval) -> String {
    let mut notes = Vec::new();
    if interval.end.is_none() {
        notes.push("emergency stop".to_owned());
    }
    if !interval.allow_types.is_empty() {
        let types: Vec<String> = interval
            .allow_types
            .iter()
            .map(ToString::to_string)
            .collect();
        notes.push(format!("{} allowed", types.join(", ")));
    }
    if let Some(reason) = &interval.reason {
        notes.push(reason.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    notes.join("; ")
}

/// The calendar's time zone; UTC when it is not a valid name (the calendar says so).
fn time_zone(calendar: &ReleaseCalendar) -> Tz {
    calendar.spec.time_zone.parse().unwrap_or(Tz::UTC)
}

/// `Tue 2026-12-01 09:00` in `tz`.
fn local(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M")
        .to_string()
}

fn target_day(row: &CalendarRelease) -> Option<NaiveDate> {
    row.target_date
        .as_deref()
        .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
}

fn cell(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn calendar(status: Option<serde_json::Value>) -> ReleaseCalendar {
        let mut object = json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseCalendar",
            "metadata": {"name": "q4-2026"},
            "spec": {
                "timeZone": "Europe/Berlin",
                "windows": [{"name": "business-hours", "weekly": {"days": ["Mon", "Tue", "Wed", "Thu"], "start": "09:00", "end": "16:00"}}],
                "freezes": [{"name": "year-end", "reason": "Peak trading.", "start": "2026-12-20", "end": "2027-01-04", "allowTypes": ["Patch"]}],
                "entries": [{"name": "REL-142", "application": "billing", "version": "4.0.0", "targetDate": "2026-12-08",
                             "owner": "team-billing", "type": "Major", "rollbackPlan": "runbook"}]
            }
        });
        if let Some(status) = status {
            object["status"] = status;
        }
        serde_json::from_value(object).unwrap()
    }

    fn now() -> DateTime<Utc> {
        // Monday 2026-12-07 08:00 UTC = 09:00 in Berlin: the window is open.
        Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()
    }

    #[test]
    fn shows_now_the_releases_and_the_windows_in_local_time() {
        let shown = render_calendar(&calendar(None), now(), 3);
        assert!(
            shown.contains(
                "ReleaseCalendar q4-2026 (time zone Europe/Berlin), now Mon 2026-12-07 09:00"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("Patch, Minor, Major   open   InWindow"),
            "{shown}"
        );
        assert!(shown.contains("planned entries only"), "{shown}");
        assert!(shown.contains("2026-12-08   billing"), "{shown}");
        assert!(shown.contains("Planned"), "{shown}");
        assert!(
            shown.contains("Mon 2026-12-07 09:00   Mon 2026-12-07 16:00   window   business-hours"),
            "{shown}"
        );
        assert!(shown.contains("Wed 2026-12-09 09:00"), "{shown}");
        // The freeze starts after the three days shown.
        assert!(!shown.contains("year-end"), "{shown}");
    }

    #[test]
    fn shows_the_status_rows_and_conflicts_relman_reported() {
        let status = json!({
            "observedGeneration": 1,
            "releases": [{"release": "shop/checkout", "application": "checkout", "version": "2.3.0",
                          "type": "Minor", "owner": "team-pay", "targetDate": "2026-12-21", "phase": "AwaitingWindow"}],
            "conflicts": ["shop/checkout (checkout 2.3.0): target date 2026-12-21 is inside freeze year-end"]
        });
        let shown = render_calendar(&calendar(Some(status)), now(), 30);
        assert!(!shown.contains("planned entries only"), "{shown}");
        assert!(shown.contains("shop/checkout"), "{shown}");
        assert!(!shown.contains("billing"), "{shown}");
        assert!(shown.contains("freeze   year-end"), "{shown}");
        assert!(shown.contains("Patch allowed; Peak trading."), "{shown}");
        assert!(shown.contains("Conflicts\n- shop/checkout"), "{shown}");
    }

    #[test]
    fn a_freeze_that_lets_hotfixes_through_splits_the_types() {
        // Monday 2026-12-21 09:00 UTC (10:00 in Berlin): in the window and the year-end freeze.
        let now = Utc.with_ymd_and_hms(2026, 12, 21, 9, 0, 0).unwrap();
        let shown = render_calendar(&calendar(None), now, 1);
        assert!(
            shown.contains("Patch          open     FrozenButAllowed"),
            "{shown}"
        );
        assert!(shown.contains("Minor, Major   closed   Frozen"), "{shown}");
        assert!(shown.contains("freeze   year-end"), "{shown}");
    }

    #[test]
    fn an_invalid_calendar_says_why() {
        let mut invalid = calendar(None);
        invalid.spec.time_zone = "Mars/Olympus".into();
        let shown = render_calendar(&invalid, now(), 3);
        assert!(shown.contains("INVALID: spec.timeZone"), "{shown}");
    }

    #[test]
    fn lists_calendars() {
        let shown = render_calendar_list(&[calendar(None), calendar(None)], now());
        assert!(shown.starts_with("NAME"), "{shown}");
        assert!(shown.contains("kubectl relman calendar NAME"), "{shown}");
    }
}
