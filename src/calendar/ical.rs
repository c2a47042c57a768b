//! The iCalendar feed (RFC 5545) of a `ReleaseCalendar`, so people can subscribe to it. Pure:
//! the caller gathers the releases and the window and freeze occurrences, and passes `now`.
//!
//! - Each release or planned entry with a target date is an all-day `VEVENT` on that date.
//!   Its `UID` is derived from the entry (when one is planned) or the Release, so a calendar app
//!   updates the event in place when the release moves through its phases or its date changes.
//! - Each occurrence of a window or freeze is a timed `VEVENT` in UTC (`...Z`), so no
//!   `VTIMEZONE` is needed and every client shows it in its own time zone. An emergency stop
//!   (a freeze with no end) ends at the end of the range the feed covers. These events are
//!   `TRANSP:TRANSPARENT`: they do not make subscribers look busy.
//! - Text is escaped as RFC 5545 section 3.3.11 asks, lines end in CRLF and are folded at 75
//!   octets without splitting a UTF-8 character (section 3.1).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::api::release::ReleaseType;

use super::compiled::{Interval, IntervalKind};

/// The longest a content line may be, in octets, without its CRLF.
pub const MAX_LINE_OCTETS: usize = 75;

/// The product identifier in every feed.
const PRODID: &str = concat!("-//relman.io//relman ", env!("CARGO_PKG_VERSION"), "//EN");

/// The domain part of every `UID`.
const UID_DOMAIN: &str = "relman.io";

/// Everything one feed shows.
#[derive(Clone, Debug)]
pub struct Feed<'a> {
    /// The ReleaseCalendar's name: the feed's title and part of every `UID`.
    pub calendar: &'a str,
    /// The calendar's IANA time zone, as a hint for clients (`X-WR-TIMEZONE`).
    pub time_zone: &'a str,
    /// When the feed was rendered (`DTSTAMP`).
    pub generated_at: DateTime<Utc>,
    /// Where the window and freeze occurrences end: the end of an emergency stop.
    pub range_end: DateTime<Utc>,
    /// The releases and planned entries.
    pub releases: &'a [FeedRelease],
    /// The occurrences of windows and freezes, see
    /// [`CompiledCalendar::occurrences`](super::CompiledCalendar::occurrences).
    pub intervals: &'a [Interval],
}

/// A release or planned entry in the feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedRelease {
    /// The application.
    pub application: String,
    /// The version, if known.
    pub version: Option<String>,
    /// Patch, Minor or Major.
    pub release_type: Option<ReleaseType>,
    /// Who owns it.
    pub owner: Option<String>,
    /// The day it is planned for; releases without one are not in the feed.
    pub target_date: Option<NaiveDate>,
    /// `namespace/name` of the Release, if one exists.
    pub release: Option<String>,
    /// The calendar entry's name, if planned in the calendar.
    pub entry: Option<String>,
    /// The Release's phase, or Planned.
    pub phase: Option<String>,
    /// How to roll back.
    pub rollback_plan: Option<String>,
    /// Release notes.
    pub notes: Option<String>,
}

/// Renders the feed: a `VCALENDAR` with one `VEVENT` per dated release and per occurrence.
pub fn render(feed: &Feed<'_>) -> String {
    let mut out = ContentLines::default();
    out.line("BEGIN", "VCALENDAR");
    out.line("VERSION", "2.0");
    out.line("PRODID", &escape_text(PRODID));
    out.line("CALSCALE", "GREGORIAN");
    out.line("METHOD", "PUBLISH");
    let title = escape_text(&format!("Releases: {}", feed.calendar));
    out.line("NAME", &title);
    out.line("X-WR-CALNAME", &title);
    out.line(
        "X-WR-CALDESC",
        &escape_text(&format!(
            "Planned releases, deployment windows and freezes of ReleaseCalendar {}",
            feed.calendar
        )),
    );
    out.line("X-WR-TIMEZONE", &escape_text(feed.time_zone));
    out.line("REFRESH-INTERVAL;VALUE=DURATION", "PT1H");
    out.line("X-PUBLISHED-TTL", "PT1H");
    let stamp = format_utc(feed.generated_at);
    for release in feed.releases {
        if let Some(date) = release.target_date {
            release_event(&mut out, feed.calendar, &stamp, release, date);
        }
    }
    for interval in feed.intervals {
        interval_event(&mut out, feed, &stamp, interval);
    }
    out.line("END", "VCALENDAR");
    out.finish()
}

/// An all-day event for a release on its target date.
fn release_event(
    out: &mut ContentLines,
    calendar: &str,
    stamp: &str,
    release: &FeedRelease,
    date: NaiveDate,
) {
    let next_day = date.succ_opt().unwrap_or(date);
    out.line("BEGIN", "VEVENT");
    out.line("UID", &escape_text(&release_uid(calendar, release)));
    out.line("DTSTAMP", stamp);
    out.line("DTSTART;VALUE=DATE", &format_date(date));
    out.line("DTEND;VALUE=DATE", &format_date(next_day));
    out.line("SUMMARY", &escape_text(&release_summary(release)));
    out.line("DESCRIPTION", &escape_text(&release_description(release)));
    out.line("CATEGORIES", "Release");
    // A planned entry without its Release is not certain yet.
    let status = if release.release.is_some() {
        "CONFIRMED"
    } else {
        "TENTATIVE"
    };
    out.line("STATUS", status);
    out.line("TRANSP", "TRANSPARENT");
    out.line("END", "VEVENT");
}

/// `checkout 2.3.0 (Minor)`.
fn release_summary(release: &FeedRelease) -> String {
    let mut summary = release.application.clone();
    if let Some(version) = &release.version {
        summary.push(' ');
        summary.push_str(version);
    }
    if let Some(release_type) = release.release_type {
        let _ = write!(summary, " ({release_type})");
    }
    summary
}

/// Owner, type, where it comes from, phase, rollback plan and notes, one per line.
fn release_description(release: &FeedRelease) -> String {
    let fields = [
        ("Owner", release.owner.clone()),
        ("Type", release.release_type.map(|t| t.to_string())),
        ("Release", release.release.clone()),
        ("Calendar entry", release.entry.clone()),
        ("Phase", release.phase.clone()),
        (
            "Rollback plan",
            Some(
                release
                    .rollback_plan
                    .clone()
                    .filter(|plan| !plan.trim().is_empty())
                    .unwrap_or_else(|| "none documented".to_owned()),
            ),
        ),
        ("Notes", release.notes.clone()),
    ];
    fields
        .iter()
        .filter_map(|(label, value)| value.as_ref().map(|value| format!("{label}: {value}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entry's UID when it was planned in the calendar (it exists first), else the Release's.
fn release_uid(calendar: &str, release: &FeedRelease) -> String {
    match (&release.entry, &release.release) {
        (Some(entry), _) => format!("entry-{entry}.{calendar}@{UID_DOMAIN}"),
        (None, Some(reference)) => {
            format!(
                "release-{}.{calendar}@{UID_DOMAIN}",
                reference.replace('/', ".")
            )
        }
        (None, None) => format!(
            "release-{}-{}.{calendar}@{UID_DOMAIN}",
            release.application,
            release.version.as_deref().unwrap_or("unversioned")
        ),
    }
}

/// A timed event for one occurrence of a window or freeze.
fn interval_event(out: &mut ContentLines, feed: &Feed<'_>, stamp: &str, interval: &Interval) {
    let end = interval.end.unwrap_or(feed.range_end).max(
        interval
            .start
            .checked_add_signed(TimeDelta::minutes(1))
            .unwrap_or(interval.start),
    );
    let (kind, summary) = match interval.kind {
        IntervalKind::Window => ("window", format!("Deployment window: {}", interval.name)),
        IntervalKind::Freeze => ("freeze", freeze_summary(interval)),
    };
    out.line("BEGIN", "VEVENT");
    out.line(
        "UID",
        &escape_text(&format!(
            "{kind}-{}-{}.{}@{UID_DOMAIN}",
            interval.name,
            format_utc(interval.start),
            feed.calendar
        )),
    );
    out.line("DTSTAMP", stamp);
    out.line("DTSTART", &format_utc(interval.start));
    out.line("DTEND", &format_utc(end));
    out.line("SUMMARY", &escape_text(&summary));
    out.line("DESCRIPTION", &escape_text(&interval_description(interval)));
    out.line(
        "CATEGORIES",
        match interval.kind {
            IntervalKind::Window => "Deployment window",
            IntervalKind::Freeze => "Freeze",
        },
    );
    out.line("TRANSP", "TRANSPARENT");
    out.line("END", "VEVENT");
}

/// `Freeze: year-end (Patch allowed)`.
fn freeze_summary(interval: &Interval) -> String {
    let mut summary = format!("Freeze: {}", interval.name);
    if !interval.allow_types.is_empty() {
        let _ = write!(summary, " ({} allowed)", type_list(&interval.allow_types));
    }
    summary
}

fn interval_description(interval: &Interval) -> String {
    let mut lines = Vec::new();
    match interval.kind {
        IntervalKind::Window => lines.push("Releases may go out.".to_owned()),
        IntervalKind::Freeze => {
            if let Some(reason) = &interval.reason {
                lines.push(reason.clone());
            }
            lines.push(if interval.allow_types.is_empty() {
                "No release may go out.".to_owned()
            } else {
                format!(
                    "Only {} releases may go out.",
                    type_list(&interval.allow_types)
                )
            });
            if interval.end.is_none() {
                lines.push("Emergency stop: no end, it holds until the freeze is removed.".into());
            }
        }
    }
    lines.join("\n")
}

fn type_list(types: &[ReleaseType]) -> String {
    types
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A UTC date-time as RFC 5545 writes it: `20261201T090000Z`.
fn format_utc(instant: DateTime<Utc>) -> String {
    instant.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A date as RFC 5545 writes it: `20261201`.
fn format_date(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// Escapes a TEXT value (RFC 5545 section 3.3.11): backslash, semicolon, comma and newline;
/// a CRLF or lone CR becomes a newline, and other control characters (which TEXT may not
/// contain) become spaces.
pub fn escape_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                escaped.push_str("\\n");
            }
            '\t' => escaped.push('\t'),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Folds one content line (without its line break) into lines of at most
/// [`MAX_LINE_OCTETS`] octets, each ending in CRLF; continuation lines start with a space.
/// A UTF-8 character is never split.
pub fn fold_line(line: &str) -> String {
    let mut folded = String::with_capacity(line.len() + line.len() / 64 * 3 + 2);
    let mut octets = 0;
    for c in line.chars() {
        let width = c.len_utf8();
        if octets + width > MAX_LINE_OCTETS {
            folded.push_str("\r\n ");
            octets = 1;
        }
        folded.push(c);
        octets += width;
    }
    folded.push_str("\r\n");
    folded
}

/// The feed being written, one folded content line at a time.
#[derive(Default)]
struct ContentLines {
    text: String,
}

impl ContentLines {
    /// Appends `NAME:value`; `value` must already be escaped where its type asks for it.
    fn line(&mut self, name: &str, value: &str) {
        self.text.push_str(&fold_line(&format!("{name}:{value}")));
    }

    fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn release() -> FeedRelease {
        FeedRelease {
            application: "checkout".into(),
            version: Some("2.3.0".into()),
            release_type: Some(ReleaseType::Minor),
            owner: Some("team-payments".into()),
            target_date: NaiveDate::from_ymd_opt(2026, 12, 1),
            release: Some("shop/checkout-2-3-0".into()),
            entry: Some("REL-142".into()),
            phase: Some("AwaitingWindow".into()),
            rollback_plan: Some("kubectl relman abort; see https://wiki.example/rollback".into()),
            notes: Some(
                "New basket, faster; fewer clicks.\nSecond line \\ with a backslash".into(),
            ),
        }
    }

    fn intervals() -> Vec<Interval> {
        vec![
            Interval {
                kind: IntervalKind::Window,
                name: "business-hours".into(),
                start: at(2026, 12, 1, 8),
                end: Some(at(2026, 12, 1, 15)),
                reason: None,
                allow_types: Vec::new(),
            },
            Interval {
                kind: IntervalKind::Freeze,
                name: "incident".into(),
                start: at(2026, 12, 2, 10),
                end: None,
                reason: Some("Payments outage, see INC-7".into()),
                allow_types: vec![ReleaseType::Patch],
            },
        ]
    }

    fn render_sample() -> String {
        let releases = [release()];
        let intervals = intervals();
        render(&Feed {
            calendar: "q4-2026",
            time_zone: "Europe/Berlin",
            generated_at: at(2026, 11, 30, 12),
            range_end: at(2027, 5, 30, 0),
            releases: &releases,
            intervals: &intervals,
        })
    }

    /// The feed's logical lines: continuation lines joined back.
    fn unfold(feed: &str) -> Vec<String> {
        feed.replace("\r\n ", "")
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn escapes_text_values() {
        assert_eq!(escape_text("a,b;c\\d"), "a\\,b\\;c\\\\d");
        assert_eq!(
            escape_text("one\ntwo\r\nthree\rfour"),
            "one\\ntwo\\nthree\\nfour"
        );
        assert_eq!(escape_text("tab\there\u{7}bell"), "tab\there bell");
        assert_eq!(escape_text("Grüße: ok"), "Grüße: ok");
    }

    #[test]
    fn short_lines_are_not_folded() {
        assert_eq!(fold_line("SUMMARY:short"), "SUMMARY:short\r\n");
        let exactly = "X".repeat(MAX_LINE_OCTETS);
        assert_eq!(fold_line(&exactly), format!("{exactly}\r\n"));
    }

    #[test]
    fn long_lines_fold_at_75_octets() {
        let line = format!("DESCRIPTION:{}", "a".repeat(200));
        let folded = fold_line(&line);
        let physical: Vec<&str> = folded.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(physical.len() > 2, "{folded:?}");
        assert_eq!(physical[0].len(), MAX_LINE_OCTETS);
        for continuation in &physical[1..] {
            assert!(continuation.starts_with(' '));
            assert!(continuation.len() <= MAX_LINE_OCTETS);
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), line);
    }

    #[test]
    fn folding_never_splits_a_utf8_character() {
        // 12 + 2*40 octets: the 75th octet would cut an 'ü' (two octets) in half.
        let line = format!("SUMMARY:abc{}", "ü".repeat(40));
        let folded = fold_line(&line);
        for physical in folded.split("\r\n") {
            assert!(physical.len() <= MAX_LINE_OCTETS, "{physical:?}");
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), line);
    }

    #[test]
    fn every_line_ends_in_crlf_and_fits() {
        let feed = render_sample();
        assert!(feed.ends_with("END:VCALENDAR\r\n"));
        assert!(
            !feed.replace("\r\n", "").contains('\n'),
            "bare LF in {feed:?}"
        );
        for line in feed.split("\r\n") {
            assert!(line.len() <= MAX_LINE_OCTETS, "{line:?}");
        }
    }

    #[test]
    fn a_release_is_an_all_day_event_with_its_details() {
        let lines = unfold(&render_sample());
        let has = |wanted: &str| lines.iter().any(|line| line == wanted);
        assert!(has("BEGIN:VCALENDAR") && has("VERSION:2.0"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("PRODID:-//relman.io//relman "))
        );
        assert!(has("DTSTART;VALUE=DATE:20261201"));
        assert!(has("DTEND;VALUE=DATE:20261202"));
        assert!(has("SUMMARY:checkout 2.3.0 (Minor)"));
        assert!(has("UID:entry-REL-142.q4-2026@relman.io"));
        assert!(has("STATUS:CONFIRMED"));
        let description = lines
            .iter()
            .find(|l| l.starts_with("DESCRIPTION:Owner"))
            .unwrap();
        assert!(description.contains("Owner: team-payments\\nType: Minor"));
        assert!(description.contains("Release: shop/checkout-2-3-0"));
        assert!(description.contains("Rollback plan: kubectl relman abort\\; see https://"));
        assert!(
            description.contains("New basket\\, faster\\; fewer clicks.\\nSecond line \\\\ with")
        );
    }

    #[test]
    fn windows_and_freezes_are_timed_utc_events() {
        let lines = unfold(&render_sample());
        let has = |wanted: &str| lines.iter().any(|line| line == wanted);
        assert!(has("SUMMARY:Deployment window: business-hours"));
        assert!(has("DTSTART:20261201T080000Z"));
        assert!(has("DTEND:20261201T150000Z"));
        assert!(has(
            "UID:window-business-hours-20261201T080000Z.q4-2026@relman.io"
        ));
        assert!(has("SUMMARY:Freeze: incident (Patch allowed)"));
        // The emergency stop runs to the end of the feed's range.
        assert!(has("DTSTART:20261202T100000Z"));
        assert!(has("DTEND:20270530T000000Z"));
        assert!(lines.iter().any(|l| l.contains("Emergency stop")));
        let events = lines.iter().filter(|l| *l == "BEGIN:VEVENT").count();
        assert_eq!(events, 3);
        assert_eq!(events, lines.iter().filter(|l| *l == "END:VEVENT").count());
    }

    #[test]
    fn uids_are_stable_and_do_not_depend_on_the_phase() {
        let mut moved_on = release();
        moved_on.phase = Some("Succeeded".into());
        assert_eq!(
            release_uid("cal", &release()),
            release_uid("cal", &moved_on)
        );
        let mut unplanned = release();
        unplanned.entry = None;
        assert_eq!(
            release_uid("cal", &unplanned),
            "release-shop.checkout-2-3-0.cal@relman.io"
        );
    }

    #[test]
    fn releases_without_a_target_date_are_left_out() {
        let mut undated = release();
        undated.target_date = None;
        let releases = [undated];
        let feed = render(&Feed {
            calendar: "cal",
            time_zone: "UTC",
            generated_at: at(2026, 1, 1, 0),
            range_end: at(2026, 6, 1, 0),
            releases: &releases,
            intervals: &[],
        });
        assert!(!feed.contains("BEGIN:VEVENT"), "{feed}");
        assert!(feed.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
    }
}
