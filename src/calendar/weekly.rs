//! Weekly windows: days of the week with a local time range, e.g. Mon-Thu 09:00-16:00.
//!
//! Both ends are wall-clock times in the calendar's time zone, so a 22:00-06:00 range over the
//! night of a daylight-saving change lasts 7 or 9 hours. An end at or before the start runs past
//! midnight into the next day; `24:00` is midnight at the end of the day. Times in a gap or an
//! overlap are resolved as described in [`super::local`]; a range whose resolved end is not after
//! its resolved start (possible only inside a gap) has no occurrence that day.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::api::calendar::{Weekday, WeeklyRange};

use super::error::CalendarError;
use super::local::{local_of, parse_time_of_day, resolve_local};
use super::schedule::{Coverage, Span};

/// How many days before `from` a range may start and still reach it (it can run past midnight).
const LOOKBACK_DAYS: u64 = 2;

/// A compiled weekly range.
#[derive(Clone, Debug)]
pub(crate) struct WeeklySchedule {
    tz: Tz,
    /// Indexed by days from Monday.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    /// 0 when the range ends on the day it starts, 1 when it runs past midnight.
    end_day_offset: u64,
}

impl WeeklySchedule {
    /// Parses a weekly range; `path` is the path of the range, e.g. `spec.windows[0].weekly`.
    pub(crate) fn compile(path: &str, range: &WeeklyRange, tz: Tz) -> Result<Self, CalendarError> {
        if range.days.is_empty() {
            return Err(CalendarError::shape(
                &format!("{path}.days"),
                "list at least one day, e.g. [Mon, Tue, Wed, Thu, Fri]",
            ));
        }
        let start = parse_time_of_day(&format!("{path}.start"), &range.start, false)?
            .unwrap_or(NaiveTime::MIN);
        let end = parse_time_of_day(&format!("{path}.end"), &range.end, true)?;
        let (end, end_day_offset) = match end {
            None => (NaiveTime::MIN, 1),
            Some(end) if end == start => {
                return Err(CalendarError::date_time(
                    &format!("{path}.end"),
                    "must differ from start; an end before the start runs past midnight, and \
                     00:00 to 24:00 is the whole day",
                ));
            }
            Some(end) if end < start => (end, 1),
            Some(end) => (end, 0),
        };
        let mut days = [false; 7];
        for day in &range.days {
            days[days_from_monday(*day)] = true;
        }
        Ok(Self {
            tz,
            days,
            start,
            end,
            end_day_offset,
        })
    }

    /// The ranges overlapping `[from, to)`, examining at most `budget` days with a range.
    pub(crate) fn spans(&self, from: DateTime<Utc>, to: DateTime<Utc>, budget: usize) -> Coverage {
        let mut spans = Vec::new();
        let mut examined = 0;
        let first = local_of(self.tz, from)
            .date()
            .checked_sub_days(Days::new(LOOKBACK_DAYS));
        let last = local_of(self.tz, to).date();
        let dates = first
            .into_iter()
            .flat_map(|first| first.iter_days())
            .take_while(|date| *date <= last);
        for date in dates.filter(|date| self.days[date.weekday().num_days_from_monday() as usize]) {
            let Some(span) = self.span_on(date) else {
                continue;
            };
            examined += 1;
            if span.overlaps(from, to) {
                spans.push(span);
            }
            if examined >= budget {
                return Coverage {
                    spans,
                    complete_until: span.start,
                };
            }
        }
        Coverage::complete(spans)
    }

    /// The range starting on `date`, if it has one (it may vanish in a daylight-saving gap).
    fn span_on(&self, date: NaiveDate) -> Option<Span> {
        let start = resolve_local(self.tz, date.and_time(self.start))?;
        let end_date = date.checked_add_days(Days::new(self.end_day_offset))?;
        let end = resolve_local(self.tz, end_date.and_time(self.end))?;
        (end > start).then_some(Span { start, end })
    }
}

fn days_from_monday(day: Weekday) -> usize {
    match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn range(days: &[Weekday], start: &str, end: &str) -> WeeklyRange {
        WeeklyRange {
            days: days.to_vec(),
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }

    fn spans(
        schedule: &WeeklySchedule,
        from: &str,
        to: &str,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        schedule
            .spans(utc(from), utc(to), 1000)
            .spans
            .iter()
            .map(|span| (span.start, span.end))
            .collect()
    }

    #[test]
    fn a_range_past_midnight_ends_the_next_day() {
        let schedule = WeeklySchedule::compile(
            "w",
            &range(&[Weekday::Fri], "22:00", "06:00"),
            chrono_tz::UTC,
        )
        .unwrap();
        // Friday 2026-01-02 22:00 to Saturday 06:00, found from Saturday morning.
        assert_eq!(
            spans(&schedule, "2026-01-03T01:00:00Z", "2026-01-03T02:00:00Z"),
            [(utc("2026-01-02T22:00:00Z"), utc("2026-01-03T06:00:00Z"))]
        );
    }

    #[test]
    fn end_at_24_00_is_midnight() {
        let schedule = WeeklySchedule::compile(
            "w",
            &range(&[Weekday::Sat], "18:00", "24:00"),
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(
            spans(&schedule, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            [(utc("2026-01-03T18:00:00Z"), utc("2026-01-04T00:00:00Z"))]
        );
    }

    #[test]
    fn ranges_keep_local_time_across_dst() {
        let berlin = chrono_tz::Europe::Berlin;
        let schedule = WeeklySchedule::compile(
            "w",
            &range(&[Weekday::Sat, Weekday::Sun], "22:00", "06:00"),
            berlin,
        )
        .unwrap();
        let found = spans(&schedule, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z");
        // Saturday 22:00 CET to Sunday 06:00 CEST: 7 hours.
        assert_eq!(
            found,
            [(
                utc("2026-03-28T22:00:00+01:00"),
                utc("2026-03-29T06:00:00+02:00")
            )]
        );
    }

    #[test]
    fn a_range_inside_a_gap_vanishes() {
        let berlin = chrono_tz::Europe::Berlin;
        let schedule =
            WeeklySchedule::compile("w", &range(&[Weekday::Sun], "02:30", "03:10"), berlin)
                .unwrap();
        assert!(spans(&schedule, "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z").is_empty());
        assert_eq!(
            spans(&schedule, "2026-04-04T00:00:00Z", "2026-04-06T00:00:00Z").len(),
            1
        );
    }

    #[test]
    fn errors_name_the_field() {
        let error = WeeklySchedule::compile(
            "spec.windows[0].weekly",
            &range(&[], "09:00", "17:00"),
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert_eq!(error.field(), "spec.windows[0].weekly.days");
        let error = WeeklySchedule::compile(
            "spec.windows[0].weekly",
            &range(&[Weekday::Mon], "09:00", "09:00"),
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert_eq!(error.field(), "spec.windows[0].weekly.end");
        let error = WeeklySchedule::compile(
            "spec.windows[0].weekly",
            &range(&[Weekday::Mon], "24:00", "09:00"),
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert_eq!(error.field(), "spec.windows[0].weekly.start");
        let error = WeeklySchedule::compile(
            "spec.windows[0].weekly",
            &range(&[Weekday::Mon], "09:00", "5pm"),
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert_eq!(error.field(), "spec.windows[0].weekly.end");
    }
}
