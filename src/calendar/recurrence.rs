//! RFC 5545 recurrence rules (RRULE) with a duration: the recurring windows and freezes.
//!
//! The `rrule` crate expands the rule in *floating* local time: wall-clock times of the calendar's
//! time zone, handed to the crate labelled as UTC so it never sees a daylight-saving change. Each
//! occurrence is then placed in the time zone by [`resolve_local`], like weekly ranges and freeze
//! dates, so a rule at 09:00 stays at 09:00 local time and local times in a gap or an overlap are
//! resolved as described in [`super::local`] (the crate's own resolution drops occurrences in
//! zones that change at midnight). The duration is elapsed time: a 6h window that spans a
//! daylight-saving change ends 5 or 7 hours later on the wall clock.
//!
//! To stay fast however old `start` is, a rule without COUNT is iterated from the first period
//! boundary (year, month, week, day, ...) at or before the range asked for, keeping the phase of
//! INTERVAL. This gives the same occurrences as iterating from `start`, because every default the
//! rule took from `start` (BYHOUR, BYMINUTE, BYSECOND, BYDAY, BYMONTHDAY, BYMONTH) is pinned at
//! compile time. A rule with COUNT has to be counted from `start`; COUNT is limited to
//! [`MAX_COUNT`] so that stays cheap.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, Month, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use rrule::{
    Frequency, ParseError, RRule, RRuleError, RRuleSet, Unvalidated, Validated, ValidationError,
};

use super::error::CalendarError;
use super::local::{WrittenDateTime, local_of, parse_written_date_time, resolve_local};
use super::schedule::{Coverage, FOREVER, Span};
use crate::api::duration::parse_duration;

/// The largest COUNT a rule may have: rules with COUNT are iterated from their start.
pub const MAX_COUNT: u32 = 10_000;

/// How far before the wall-clock time of the earliest wanted start iteration begins: more than
/// any daylight-saving gap, so an occurrence moved forward out of a gap is not missed.
const ITERATION_MARGIN: TimeDelta = TimeDelta::hours(3);

/// A query examines at most this many times its budget of occurrences, counting those before
/// the range (a period can hold many of them, e.g. FREQ=YEARLY;BYHOUR=...;BYMINUTE=...).
const EXAMINED_PER_BUDGETED: usize = 4;

/// DTSTART when a window or freeze does not set `start`.
const DEFAULT_START: &str = "2000-01-01T00:00";

/// A compiled RRULE with its start and duration.
#[derive(Clone, Debug)]
pub(crate) struct Recurrence {
    tz: Tz,
    /// The rule, with every default it took from `start` written out.
    rule: RRule<Unvalidated>,
    /// DTSTART as a wall-clock time in `tz`.
    start: NaiveDateTime,
    duration: TimeDelta,
}

/// The fields of a window or freeze that describe a recurrence, with their paths for errors.
pub(crate) struct RecurrenceFields<'a> {
    /// The path of the window or freeze, e.g. `spec.windows[0]`.
    pub(crate) path: &'a str,
    pub(crate) rrule: &'a str,
    pub(crate) start: Option<&'a str>,
    pub(crate) duration: &'a str,
}

impl Recurrence {
    /// Parses and validates the rule, its start and its duration.
    pub(crate) fn compile(fields: &RecurrenceFields<'_>, tz: Tz) -> Result<Self, CalendarError> {
        let rrule_field = format!("{}.rrule", fields.path);
        let duration = compile_duration(&format!("{}.duration", fields.path), fields.duration)?;
        let start = compile_start(&format!("{}.start", fields.path), fields.start, tz)?;
        let rule_text = normalize_rule_text(&rrule_field, fields.rrule, tz)?;
        let rule = RRule::<Unvalidated>::from_str(&rule_text)
            .map_err(|error| CalendarError::rrule(&rrule_field, describe_rrule_error(&error)))?;
        if rule.get_count().is_some_and(|count| count > MAX_COUNT) {
            return Err(CalendarError::rrule(
                &rrule_field,
                format!(
                    "COUNT above {MAX_COUNT} is not supported; end the rule with UNTIL instead"
                ),
            ));
        }
        let dt_start = floating(start);
        let validated = rule
            .clone()
            .validate(dt_start)
            .map_err(|error| CalendarError::rrule(&rrule_field, describe_rrule_error(&error)))?;
        ensure_it_occurs(&rrule_field, dt_start, validated.clone())?;
        Ok(Self {
            tz,
            rule: pin_defaults(rule, &validated),
            start,
            duration,
        })
    }

    /// The occurrences overlapping `[from, to)` as spans: at most `budget` of them, examining
    /// at most [`EXAMINED_PER_BUDGETED`] times as many occurrences.
    pub(crate) fn spans(&self, from: DateTime<Utc>, to: DateTime<Utc>, budget: usize) -> Coverage {
        let earliest_start = from
            .checked_sub_signed(self.duration)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let Some(set) = self.rule_set_from(earliest_start) else {
            return Coverage::complete(Vec::new());
        };
        let mut spans = Vec::new();
        let mut examined = 0;
        for occurrence in &set {
            let Some(start) = resolve_local(self.tz, occurrence.naive_utc()) else {
                continue;
            };
            if start >= to {
                break;
            }
            examined += 1;
            let end = start.checked_add_signed(self.duration).unwrap_or(FOREVER);
            if end > from {
                spans.push(Span { start, end });
            }
            if spans.len() >= budget || examined >= budget.saturating_mul(EXAMINED_PER_BUDGETED) {
                return Coverage {
                    spans,
                    complete_until: start,
                };
            }
        }
        Coverage::complete(spans)
    }

    /// The rule set to iterate for occurrences starting at or after `earliest_start`, or `None`
    /// when the rule has ended (UNTIL) before then.
    fn rule_set_from(&self, earliest_start: DateTime<Utc>) -> Option<RRuleSet> {
        let target = local_of(self.tz, earliest_start)
            .checked_sub_signed(ITERATION_MARGIN)
            .unwrap_or(NaiveDateTime::MIN);
        let start = iteration_start(&self.rule, self.start, target);
        let dt_start = floating(start);
        if self.rule.get_until().is_some_and(|until| *until < dt_start) {
            return None;
        }
        let rule = self.rule.clone().validate(dt_start).ok()?;
        Some(RRuleSet::new(dt_start).rrule(rule).limit())
    }
}

/// Parses the duration of each occurrence; it must be positive.
fn compile_duration(field: &str, text: &str) -> Result<TimeDelta, CalendarError> {
    let duration = parse_duration(text).map_err(|error| CalendarError::duration(field, &error))?;
    let duration = TimeDelta::from_std(duration).map_err(|_| CalendarError::Duration {
        field: field.to_owned(),
        message: format!("{text:?} is too long"),
    })?;
    if duration <= TimeDelta::zero() {
        return Err(CalendarError::Duration {
            field: field.to_owned(),
            message: format!(
                "{text:?} is zero; each occurrence needs a positive duration such as 90m or 6h"
            ),
        });
    }
    Ok(duration)
}

/// DTSTART as a wall-clock time in `tz` (a start with an offset is converted to `tz`).
fn compile_start(field: &str, text: Option<&str>, tz: Tz) -> Result<NaiveDateTime, CalendarError> {
    let written = parse_written_date_time(field, text.unwrap_or(DEFAULT_START))?;
    Ok(match written {
        WrittenDateTime::Local(local) => local,
        fixed @ WrittenDateTime::Fixed(_) => fixed.local(tz),
    })
}

/// A wall-clock time in floating form for the `rrule` crate: labelled UTC, never shifted.
fn floating(local: NaiveDateTime) -> DateTime<rrule::Tz> {
    Utc.from_utc_datetime(&local).with_timezone(&rrule::Tz::UTC)
}

/// Strips an `RRULE:` prefix and rewrites UNTIL in floating form (see the module
/// documentation): a UTC UNTIL (`...Z`) becomes the wall-clock time it has in `tz`; a local
/// UNTIL stays as written; a date-only UNTIL includes that whole day.
fn normalize_rule_text(field: &str, text: &str, tz: Tz) -> Result<String, CalendarError> {
    let text = text.trim();
    let text = match text.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => text.get(6..).unwrap_or_default(),
        _ => text,
    };
    if text.contains(['\n', ':']) {
        return Err(CalendarError::rrule(
            field,
            "write only the rule, such as FREQ=WEEKLY;BYDAY=TU;BYHOUR=9; put DTSTART in start",
        ));
    }
    let parts: Vec<String> = text
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("UNTIL") => {
                format!(
                    "{key}={}",
                    floating_until(value, tz).unwrap_or_else(|| value.to_owned())
                )
            }
            _ => part.to_owned(),
        })
        .collect();
    Ok(parts.join(";"))
}

/// An UNTIL value (`20261231T170000Z`, `20261231T180000` or `20261231`) as a floating
/// wall-clock time in `tz` (`20261231T180000Z`); `None` when it does not parse (the `rrule`
/// crate then reports it).
fn floating_until(value: &str, tz: Tz) -> Option<String> {
    let parse = |text: &str| NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S").ok();
    let local = match value.strip_suffix(['Z', 'z']) {
        Some(utc) => local_of(tz, Utc.from_utc_datetime(&parse(utc)?)),
        None => parse(value).or_else(|| {
            let date = NaiveDate::parse_from_str(value, "%Y%m%d").ok()?;
            Some(date.and_time(NaiveTime::from_hms_opt(23, 59, 59)?))
        })?,
    };
    Some(local.format("%Y%m%dT%H%M%SZ").to_string())
}

/// Rejects a rule that never produces an occurrence, e.g. BYMONTH=2;BYMONTHDAY=30.
fn ensure_it_occurs(
    field: &str,
    dt_start: DateTime<rrule::Tz>,
    rule: RRule<Validated>,
) -> Result<(), CalendarError> {
    let set = RRuleSet::new(dt_start).rrule(rule).limit();
    match (&set).into_iter().next() {
        Some(_) => Ok(()),
        None => Err(CalendarError::rrule(
            field,
            "the rule has no occurrences after start; check BYMONTH, BYMONTHDAY, BYDAY, UNTIL \
             and COUNT (for example, February has no 30th)",
        )),
    }
}

/// Writes out every default the validated rule took from DTSTART, so the rule means the same
/// whatever DTSTART it is later validated with.
fn pin_defaults(rule: RRule<Unvalidated>, validated: &RRule<Validated>) -> RRule<Unvalidated> {
    let mut rule = rule;
    if rule.get_by_month().is_empty() && !validated.get_by_month().is_empty() {
        let months: Vec<Month> = validated
            .get_by_month()
            .iter()
            .filter_map(|month| Month::try_from(*month).ok())
            .collect();
        rule = rule.by_month(&months);
    }
    if rule.get_by_month_day().is_empty() && !validated.get_by_month_day().is_empty() {
        rule = rule.by_month_day(validated.get_by_month_day().to_vec());
    }
    if rule.get_by_weekday().is_empty() && !validated.get_by_weekday().is_empty() {
        rule = rule.by_weekday(validated.get_by_weekday().to_vec());
    }
    if rule.get_by_hour().is_empty() && !validated.get_by_hour().is_empty() {
        rule = rule.by_hour(validated.get_by_hour().to_vec());
    }
    if rule.get_by_minute().is_empty() && !validated.get_by_minute().is_empty() {
        rule = rule.by_minute(validated.get_by_minute().to_vec());
    }
    if rule.get_by_second().is_empty() && !validated.get_by_second().is_empty() {
        rule = rule.by_second(validated.get_by_second().to_vec());
    }
    rule
}

/// The DTSTART to iterate from so that every occurrence at or after `target` is produced,
/// exactly as iterating from `start` would: the beginning of the latest period at or before
/// `target` that is a whole number of INTERVALs after `start`'s period. Rules with COUNT, and
/// targets before `start`, iterate from `start`.
fn iteration_start(
    rule: &RRule<Unvalidated>,
    start: NaiveDateTime,
    target: NaiveDateTime,
) -> NaiveDateTime {
    if rule.get_count().is_some() || target <= start {
        return start;
    }
    let interval = i64::from(rule.get_interval().max(1));
    let skipped = match rule.get_freq() {
        Frequency::Yearly => skip_years(start, target, interval),
        Frequency::Monthly => skip_months(start, target, interval),
        Frequency::Weekly => skip_weeks(start, target, interval, rule.get_week_start()),
        Frequency::Daily => skip_days(start, target, interval),
        Frequency::Hourly => skip_fixed(start, target, interval, TimeDelta::hours(1)),
        Frequency::Minutely => skip_fixed(start, target, interval, TimeDelta::minutes(1)),
        Frequency::Secondly => skip_fixed(start, target, interval, TimeDelta::seconds(1)),
    };
    skipped.filter(|skipped| *skipped > start).unwrap_or(start)
}

/// How many whole INTERVALs of periods fit in `periods`.
fn whole_intervals(periods: i64, interval: i64) -> Option<i64> {
    let intervals = periods.checked_div(interval)?;
    (intervals > 0).then_some(intervals.checked_mul(interval)?)
}

fn skip_years(start: NaiveDateTime, target: NaiveDateTime, interval: i64) -> Option<NaiveDateTime> {
    let years = whole_intervals(i64::from(target.year() - start.year()), interval)?;
    let year = i32::try_from(i64::from(start.year()).checked_add(years)?).ok()?;
    Some(NaiveDate::from_ymd_opt(year, 1, 1)?.and_time(NaiveTime::MIN))
}

fn skip_months(
    start: NaiveDateTime,
    target: NaiveDateTime,
    interval: i64,
) -> Option<NaiveDateTime> {
    let month_index = |at: NaiveDateTime| i64::from(at.year()) * 12 + i64::from(at.month0());
    let months = whole_intervals(month_index(target) - month_index(start), interval)?;
    let first_of_month = start.date().with_day(1)?;
    let date = first_of_month.checked_add_months(Months::new(u32::try_from(months).ok()?))?;
    Some(date.and_time(NaiveTime::MIN))
}

fn skip_weeks(
    start: NaiveDateTime,
    target: NaiveDateTime,
    interval: i64,
    week_start: chrono::Weekday,
) -> Option<NaiveDateTime> {
    let into_week = u64::from(start.weekday().days_since(week_start));
    let first_day_of_week = start.date().checked_sub_days(Days::new(into_week))?;
    let weeks = (target.date() - first_day_of_week).num_days() / 7;
    let days = whole_intervals(weeks, interval)?.checked_mul(7)?;
    let date = first_day_of_week.checked_add_days(Days::new(u64::try_from(days).ok()?))?;
    Some(date.and_time(NaiveTime::MIN))
}

fn skip_days(start: NaiveDateTime, target: NaiveDateTime, interval: i64) -> Option<NaiveDateTime> {
    let days = whole_intervals((target.date() - start.date()).num_days(), interval)?;
    let date = start
        .date()
        .checked_add_days(Days::new(u64::try_from(days).ok()?))?;
    Some(date.and_time(NaiveTime::MIN))
}

/// Hours, minutes or seconds: periods of fixed length on the wall clock.
fn skip_fixed(
    start: NaiveDateTime,
    target: NaiveDateTime,
    interval: i64,
    period: TimeDelta,
) -> Option<NaiveDateTime> {
    let period_start = truncate(start, period)?;
    let periods = (target - period_start).num_seconds() / period.num_seconds();
    let skipped_seconds = whole_intervals(periods, interval)?.checked_mul(period.num_seconds())?;
    period_start.checked_add_signed(TimeDelta::try_seconds(skipped_seconds)?)
}

/// `at` truncated to a whole hour, minute or second.
fn truncate(at: NaiveDateTime, period: TimeDelta) -> Option<NaiveDateTime> {
    let at = at.with_nanosecond(0)?;
    if period >= TimeDelta::hours(1) {
        at.with_minute(0)?.with_second(0)
    } else if period >= TimeDelta::minutes(1) {
        at.with_second(0)
    } else {
        Some(at)
    }
}

/// A message for an `rrule` error that says what to write instead.
fn describe_rrule_error(error: &RRuleError) -> String {
    match error {
        RRuleError::ParserError(error) => describe_parse_error(error),
        RRuleError::ValidationError(error) => describe_validation_error(error),
        RRuleError::IterError(message) => message.clone(),
    }
}

fn describe_parse_error(error: &ParseError) -> String {
    match error {
        ParseError::InvalidWeekday(value) => format!(
            "unknown BYDAY value {value:?}: use MO,TU,WE,TH,FR,SA,SU, optionally numbered such as 1MO or -1FR"
        ),
        ParseError::InvalidWeekdayStart(value) => {
            format!("unknown WKST value {value:?}: use MO,TU,WE,TH,FR,SA,SU")
        }
        ParseError::InvalidFrequency(value) => format!(
            "unknown FREQ value {value:?}: use YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY or SECONDLY"
        ),
        ParseError::MissingProperty(property) => format!(
            "{property} is missing; write a rule such as FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=9;BYMINUTE=0"
        ),
        ParseError::InvalidDateTime { value, property } => format!(
            "{property} value {value:?} is not a date-time; write it as 20261231T180000 (local) or \
             20261231T170000Z (UTC)"
        ),
        other => format!(
            "{}; see RFC 5545 section 3.3.10",
            other.to_string().replace('`', "\"")
        ),
    }
}

fn describe_validation_error(error: &ValidationError) -> String {
    match error {
        ValidationError::UntilBeforeStart { .. } => {
            "UNTIL is before start, so the rule never occurs; move UNTIL or start".to_owned()
        }
        other => other.to_string().replace('`', "\""),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Weekday;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn compile(
        rrule: &str,
        start: Option<&str>,
        duration: &str,
        tz: Tz,
    ) -> Result<Recurrence, CalendarError> {
        Recurrence::compile(
            &RecurrenceFields {
                path: "spec.windows[1]",
                rrule,
                start,
                duration,
            },
            tz,
        )
    }

    fn starts(recurrence: &Recurrence, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let coverage = recurrence.spans(utc(from), utc(to), 100_000);
        assert_eq!(coverage.complete_until, FOREVER);
        coverage.spans.iter().map(|span| span.start).collect()
    }

    /// Occurrences by iterating from DTSTART, without skipping ahead: the reference.
    fn reference_starts(recurrence: &Recurrence, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let dt_start = floating(recurrence.start);
        let rule = recurrence.rule.clone().validate(dt_start).unwrap();
        let set = RRuleSet::new(dt_start).rrule(rule);
        let (from, to) = (utc(from), utc(to));
        (&set)
            .into_iter()
            .filter_map(|occurrence| resolve_local(recurrence.tz, occurrence.naive_utc()))
            .take_while(|start| *start < to)
            .filter(|start| *start + recurrence.duration > from)
            .collect()
    }

    #[test]
    fn skipping_ahead_matches_iterating_from_start() {
        let rules = [
            ("FREQ=DAILY;BYHOUR=9", None),
            ("FREQ=DAILY;INTERVAL=3;BYHOUR=9", Some("2001-05-17T10:00")),
            (
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;BYHOUR=9;BYMINUTE=30",
                Some("2003-02-05T08:00"),
            ),
            (
                "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,MO",
                Some("2004-07-07T13:15"),
            ),
            ("FREQ=WEEKLY", Some("2005-03-03T14:00")),
            ("FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=-1;BYHOUR=18", None),
            ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=14", None),
            ("FREQ=MONTHLY;INTERVAL=7", Some("2000-01-31T06:00")),
            ("FREQ=YEARLY;INTERVAL=3;BYMONTH=12;BYMONTHDAY=20", None),
            ("FREQ=YEARLY", Some("2000-02-29T12:00")),
            (
                "FREQ=HOURLY;INTERVAL=5;BYMINUTE=15",
                Some("2020-01-01T03:40"),
            ),
            ("FREQ=MINUTELY;INTERVAL=97", Some("2025-12-30T01:02:03")),
            (
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=16",
                None,
            ),
        ];
        for (rule, start) in rules {
            let recurrence = compile(rule, start, "2h", chrono_tz::Europe::Berlin).unwrap();
            for (from, to) in [
                ("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),
                ("2026-03-20T00:00:00Z", "2026-04-10T00:00:00Z"),
                ("2027-10-20T00:00:00Z", "2027-11-05T00:00:00Z"),
            ] {
                assert_eq!(
                    starts(&recurrence, from, to),
                    reference_starts(&recurrence, from, to),
                    "{rule} from {from}"
                );
            }
        }
    }

    #[test]
    fn nine_o_clock_stays_nine_o_clock_across_dst() {
        let berlin = chrono_tz::Europe::Berlin;
        let recurrence = compile("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", None, "8h", berlin).unwrap();
        let local_starts: Vec<String> =
            starts(&recurrence, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z")
                .iter()
                .map(|start| start.with_timezone(&berlin).to_rfc3339())
                .collect();
        assert_eq!(
            local_starts,
            [
                "2026-03-28T09:00:00+01:00",
                "2026-03-29T09:00:00+02:00",
                "2026-03-30T09:00:00+02:00"
            ]
        );
    }

    #[test]
    fn gap_and_overlap_follow_rfc_5545() {
        let berlin = chrono_tz::Europe::Berlin;
        let recurrence = compile("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", None, "10m", berlin).unwrap();
        assert_eq!(
            starts(&recurrence, "2026-03-29T00:00:00Z", "2026-03-29T05:00:00Z"),
            [utc("2026-03-29T03:30:00+02:00")]
        );
        assert_eq!(
            starts(&recurrence, "2026-10-24T23:00:00Z", "2026-10-25T05:00:00Z"),
            [utc("2026-10-25T02:30:00+02:00")]
        );
    }

    #[test]
    fn zones_that_change_at_midnight_keep_every_occurrence() {
        // Cuba springs forward from 00:00 to 01:00 and falls back from 01:00 to 00:00.
        let havana = chrono_tz::America::Havana;
        let recurrence = compile("FREQ=DAILY;BYHOUR=0;BYMINUTE=30", None, "1h", havana).unwrap();
        assert_eq!(
            starts(&recurrence, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
            [
                utc("2026-03-07T00:30:00-05:00"),
                utc("2026-03-08T01:30:00-04:00"),
                utc("2026-03-09T00:30:00-04:00")
            ]
        );
        assert_eq!(
            starts(&recurrence, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
            [
                utc("2026-10-31T00:30:00-04:00"),
                utc("2026-11-01T00:30:00-04:00"),
                utc("2026-11-02T00:30:00-05:00")
            ]
        );
    }

    #[test]
    fn spans_include_the_occurrence_in_progress() {
        let recurrence = compile("FREQ=DAILY;BYHOUR=9", None, "8h", chrono_tz::UTC).unwrap();
        let coverage =
            recurrence.spans(utc("2026-05-05T12:00:00Z"), utc("2026-05-05T13:00:00Z"), 10);
        assert_eq!(
            coverage.spans,
            [Span {
                start: utc("2026-05-05T09:00:00Z"),
                end: utc("2026-05-05T17:00:00Z")
            }]
        );
    }

    #[test]
    fn budget_limits_what_a_query_examines() {
        let recurrence = compile("FREQ=MINUTELY", None, "30s", chrono_tz::UTC).unwrap();
        let coverage = recurrence.spans(
            utc("2026-01-01T00:00:00Z"),
            utc("2026-02-01T00:00:00Z"),
            100,
        );
        assert!(coverage.spans.len() <= 100);
        assert!(coverage.complete_until < utc("2026-01-01T02:00:00Z"));
        let last = coverage.spans.last().unwrap();
        assert!(last.start <= coverage.complete_until);
    }

    #[test]
    fn until_in_local_time_is_converted() {
        let berlin = chrono_tz::Europe::Berlin;
        let recurrence = compile(
            "FREQ=DAILY;BYHOUR=9;UNTIL=20260105",
            Some("2026-01-01T09:00"),
            "1h",
            berlin,
        )
        .unwrap();
        let all = starts(&recurrence, "2025-12-01T00:00:00Z", "2026-02-01T00:00:00Z");
        assert_eq!(all.len(), 5);
        assert_eq!(all.last(), Some(&utc("2026-01-05T09:00:00+01:00")));
        let ended = recurrence.spans(utc("2026-03-01T00:00:00Z"), utc("2026-04-01T00:00:00Z"), 10);
        assert_eq!(ended, Coverage::complete(Vec::new()));
        assert_eq!(
            normalize_rule_text("f", "RRULE:FREQ=DAILY;UNTIL=20260105T110000Z", berlin).unwrap(),
            "FREQ=DAILY;UNTIL=20260105T120000Z"
        );
        assert_eq!(
            normalize_rule_text("f", "FREQ=DAILY;until=20260105", berlin).unwrap(),
            "FREQ=DAILY;until=20260105T235959Z"
        );
    }

    #[test]
    fn count_is_counted_from_start() {
        let recurrence = compile(
            "FREQ=WEEKLY;COUNT=3;BYDAY=MO;BYHOUR=9",
            Some("2026-01-01T00:00"),
            "1h",
            chrono_tz::UTC,
        )
        .unwrap();
        let all = starts(&recurrence, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
        assert_eq!(
            all,
            [
                utc("2026-01-05T09:00:00Z"),
                utc("2026-01-12T09:00:00Z"),
                utc("2026-01-19T09:00:00Z")
            ]
        );
    }

    #[test]
    fn defaults_come_from_start() {
        let recurrence = compile(
            "FREQ=WEEKLY",
            Some("2026-01-06T09:15"),
            "1h",
            chrono_tz::UTC,
        )
        .unwrap();
        let all = starts(&recurrence, "2027-01-01T00:00:00Z", "2027-01-15T00:00:00Z");
        assert_eq!(
            all,
            [utc("2027-01-05T09:15:00Z"), utc("2027-01-12T09:15:00Z")]
        );
        assert!(all.iter().all(|start| start.weekday() == Weekday::Tue));
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let error = compile("FREQ=WEEKLY;BYDAY=MO,XX", None, "1h", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].rrule");
        assert_eq!(
            error.to_string(),
            "spec.windows[1].rrule: unknown BYDAY value \"XX\": use MO,TU,WE,TH,FR,SA,SU, \
             optionally numbered such as 1MO or -1FR"
        );
        let error = compile("FREQ=FORTNIGHTLY", None, "1h", chrono_tz::UTC).unwrap_err();
        assert!(error.to_string().contains("unknown FREQ value"), "{error}");
        let error = compile("BYDAY=MO", None, "1h", chrono_tz::UTC).unwrap_err();
        assert!(error.to_string().contains("FREQ is missing"), "{error}");
        let error = compile("FREQ=DAILY;BYHOUR=25", None, "1h", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].rrule");
        let error = compile(
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            None,
            "1h",
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(error.to_string().contains("no occurrences"), "{error}");
        let error = compile(
            "FREQ=DAILY;UNTIL=19991231T000000Z",
            None,
            "1h",
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("UNTIL is before start"),
            "{error}"
        );
        let error = compile("FREQ=DAILY;COUNT=20000", None, "1h", chrono_tz::UTC).unwrap_err();
        assert!(error.to_string().contains("UNTIL"), "{error}");
        let error = compile(
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
            None,
            "1h",
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("put DTSTART in start"),
            "{error}"
        );
        let error = compile("FREQ=DAILY", None, "0s", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].duration");
        let error = compile("FREQ=DAILY", None, "6x", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].duration");
        let error = compile("FREQ=DAILY", Some("tomorrow"), "1h", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].start");
    }

    #[test]
    fn unknown_properties_are_errors() {
        let error = compile("FREQ=DAILY;BYDAYS=MO", None, "1h", chrono_tz::UTC).unwrap_err();
        assert_eq!(error.field(), "spec.windows[1].rrule");
    }

    #[test]
    fn start_with_offset_is_read_in_the_calendar_zone() {
        let berlin = chrono_tz::Europe::Berlin;
        let recurrence = compile("FREQ=DAILY", Some("2026-06-01T07:00Z"), "1h", berlin).unwrap();
        let all = starts(&recurrence, "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z");
        assert_eq!(all, [Utc.with_ymd_and_hms(2026, 6, 2, 7, 0, 0).unwrap()]);
    }
}
