//! Local time in the calendar's time zone: parsing what people write, turning local wall-clock
//! times into instants, and formatting instants for messages.
//!
//! # Daylight-saving time
//! Local times that do not exist or exist twice are resolved the way RFC 5545 (section 3.3.5)
//! and the `rrule` crate do, so a calendar means the same in relman, in its iCalendar feed and in
//! the calendar apps that subscribe to it:
//! - a time in a spring-forward gap is read with the UTC offset in force before the gap, which
//!   moves it forward by the length of the gap (02:30 on the last Sunday of March in
//!   Europe/Berlin becomes 03:30 CEST);
//! - a time in a fall-back overlap means its first occurrence (02:30 on the last Sunday of
//!   October in Europe/Berlin is 02:30 CEST, not CET).

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::error::CalendarError;

/// Parses an IANA time zone name such as `Europe/Berlin`.
pub(crate) fn parse_time_zone(field: &str, name: &str) -> Result<Tz, CalendarError> {
    name.parse::<Tz>().map_err(|_| CalendarError::TimeZone {
        field: field.to_owned(),
        value: name.to_owned(),
        suggestion: time_zone_suggestion(name),
    })
}

/// The correctly spelled zone when only the case is wrong, otherwise examples.
fn time_zone_suggestion(name: &str) -> String {
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .map_or_else(
            || "Europe/Berlin, America/New_York or UTC".to_owned(),
            |tz| tz.name().to_owned(),
        )
}

/// The instant a local wall-clock time means in `tz`, resolving gaps and overlaps as described
/// in the module documentation. `None` only at the edges of the representable range.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => resolve_in_gap(tz, local),
    }
}

/// A local time inside a spring-forward gap, read with the offset in force before the gap.
fn resolve_in_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // An instant well before the gap: `local` read as UTC, minus more than the largest UTC
    // offset (14h) plus the largest gap. No zone changes its offset twice within two days.
    let before_gap = local.checked_sub_signed(TimeDelta::hours(30))?;
    let offset_before = tz.offset_from_utc_datetime(&before_gap).fix();
    let utc = local.checked_sub_signed(TimeDelta::seconds(i64::from(
        offset_before.local_minus_utc(),
    )))?;
    Some(Utc.from_utc_datetime(&utc))
}

/// The local wall-clock time of `instant` in `tz`.
pub(crate) fn local_of(tz: Tz, instant: DateTime<Utc>) -> NaiveDateTime {
    instant.with_timezone(&tz).naive_local()
}

/// A date or date-time as written in the spec: local to the calendar, or with its own offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WrittenDateTime {
    /// No offset: a wall-clock time in the calendar's time zone (a date alone means midnight).
    Local(NaiveDateTime),
    /// With `Z` or `+HH:MM`: one instant, whatever the calendar's time zone.
    Fixed(DateTime<FixedOffset>),
}

impl WrittenDateTime {
    /// The instant this means in the calendar's time zone.
    pub(crate) fn instant(self, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Self::Local(local) => resolve_local(tz, local),
            Self::Fixed(fixed) => Some(fixed.with_timezone(&Utc)),
        }
    }

    /// The wall-clock time this means in the calendar's time zone.
    pub(crate) fn local(self, tz: Tz) -> NaiveDateTime {
        match self {
            Self::Local(local) => local,
            Self::Fixed(fixed) => fixed.with_timezone(&tz).naive_local(),
        }
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`, each optionally followed by
/// `Z` or an offset `+HH:MM` / `-HH:MM`.
pub(crate) fn parse_written_date_time(
    field: &str,
    text: &str,
) -> Result<WrittenDateTime, CalendarError> {
    let invalid = || {
        CalendarError::date_time(
            field,
            format!(
                "{text:?} is not a date or date-time; write it as 2026-12-20 or 2026-12-20T18:00, \
                 optionally with an offset such as Z or +01:00"
            ),
        )
    };
    let (body, offset) = split_offset(text).ok_or_else(invalid)?;
    let local = parse_local_date_time(body).ok_or_else(invalid)?;
    match offset {
        None => Ok(WrittenDateTime::Local(local)),
        Some(offset) => offset
            .from_local_datetime(&local)
            .single()
            .map(WrittenDateTime::Fixed)
            .ok_or_else(invalid),
    }
}

/// Splits a trailing `Z` or `+HH:MM`/`-HH:MM` off `text`. `None` if the offset is malformed.
fn split_offset(text: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(body) = text.strip_suffix('Z') {
        return Some((body, FixedOffset::east_opt(0)));
    }
    let Some(split) = text.len().checked_sub(6) else {
        return Some((text, None));
    };
    let (body, suffix) = (text.get(..split)?, text.get(split..)?);
    let bytes = suffix.as_bytes();
    let looks_like_offset =
        matches!(bytes.first(), Some(b'+' | b'-')) && bytes.get(3) == Some(&b':');
    if !looks_like_offset {
        return Some((text, None));
    }
    let hours: i32 = suffix.get(1..3)?.parse().ok()?;
    let minutes: i32 = suffix.get(4..6)?.parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    let offset = if bytes.first() == Some(&b'-') {
        FixedOffset::west_opt(seconds)
    } else {
        FixedOffset::east_opt(seconds)
    };
    offset.map(|offset| (body, Some(offset)))
}

/// Parses a date (midnight) or a date-time with minutes or seconds, without an offset.
fn parse_local_date_time(text: &str) -> Option<NaiveDateTime> {
    if text.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(date.and_time(NaiveTime::MIN));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

/// A time of day as written in a weekly range: `HH:MM`, 00:00 to 23:59, plus `24:00` when
/// `allow_end_of_day` (returned as `None`: the end of the day).
pub(crate) fn parse_time_of_day(
    field: &str,
    text: &str,
    allow_end_of_day: bool,
) -> Result<Option<NaiveTime>, CalendarError> {
    if allow_end_of_day && text == "24:00" {
        return Ok(None);
    }
    let parsed = (text.len() == 5)
        .then(|| NaiveTime::parse_from_str(text, "%H:%M").ok())
        .flatten();
    parsed.map(Some).ok_or_else(|| {
        let range = if allow_end_of_day {
            "00:00 to 24:00"
        } else {
            "00:00 to 23:59"
        };
        CalendarError::date_time(
            field,
            format!(
                "{text:?} is not a local time HH:MM ({range}); write it such as 09:00 or 17:30"
            ),
        )
    })
}

/// An instant as people read it in the calendar: `Tue 2026-12-01 09:00 Europe/Berlin`.
pub(crate) fn format_local(tz: Tz, instant: DateTime<Utc>) -> String {
    let local = instant.with_timezone(&tz);
    let pattern = if local.second() == 0 {
        "%a %Y-%m-%d %H:%M"
    } else {
        "%a %Y-%m-%d %H:%M:%S"
    };
    format!("{} {}", local.format(pattern), tz.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> NaiveDateTime {
        parse_local_date_time(text).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn gap_moves_forward_by_the_gap() {
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            resolve_local(berlin, local("2026-03-29T02:30")),
            Some(utc("2026-03-29T03:30:00+02:00"))
        );
        assert_eq!(
            resolve_local(berlin, local("2026-03-29T02:00")),
            Some(utc("2026-03-29T03:00:00+02:00"))
        );
        let new_york = chrono_tz::America::New_York;
        assert_eq!(
            resolve_local(new_york, local("2026-03-08T02:15")),
            Some(utc("2026-03-08T03:15:00-04:00"))
        );
    }

    #[test]
    fn overlap_means_the_first_occurrence() {
        assert_eq!(
            resolve_local(chrono_tz::Europe::Berlin, local("2026-10-25T02:30")),
            Some(utc("2026-10-25T02:30:00+02:00"))
        );
        assert_eq!(
            resolve_local(chrono_tz::America::New_York, local("2026-11-01T01:30")),
            Some(utc("2026-11-01T01:30:00-04:00"))
        );
    }

    #[test]
    fn parses_written_dates() {
        assert_eq!(
            parse_written_date_time("f", "2026-12-20").unwrap(),
            WrittenDateTime::Local(local("2026-12-20T00:00"))
        );
        assert_eq!(
            parse_written_date_time("f", "2026-12-20T18:00:30").unwrap(),
            WrittenDateTime::Local(local("2026-12-20T18:00:30"))
        );
        let fixed = parse_written_date_time("f", "2026-12-20T18:00+01:00").unwrap();
        assert_eq!(
            fixed.instant(chrono_tz::America::New_York),
            Some(utc("2026-12-20T17:00:00Z"))
        );
        let zulu = parse_written_date_time("f", "2026-12-20T18:00Z").unwrap();
        assert_eq!(
            zulu.instant(chrono_tz::Asia::Tokyo),
            Some(utc("2026-12-20T18:00:00Z"))
        );
        let negative = parse_written_date_time("f", "2026-12-20-05:00").unwrap();
        assert_eq!(
            negative.instant(chrono_tz::UTC),
            Some(utc("2026-12-20T05:00:00Z"))
        );
    }

    #[test]
    fn rejects_malformed_dates() {
        for text in [
            "2026-13-01",
            "2026-12-20T25:00",
            "20261220",
            "2026-12-20T18:00+01:60",
            "",
            "2026-02-30",
        ] {
            let error = parse_written_date_time("spec.freezes[0].start", text).unwrap_err();
            assert_eq!(error.field(), "spec.freezes[0].start", "{text}");
            assert!(error.to_string().contains("2026-12-20T18:00"), "{error}");
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(
            parse_time_of_day("f", "09:30", false).unwrap(),
            NaiveTime::from_hms_opt(9, 30, 0)
        );
        assert_eq!(parse_time_of_day("f", "24:00", true).unwrap(), None);
        assert!(parse_time_of_day("f", "24:00", false).is_err());
        assert!(parse_time_of_day("f", "9:30", false).is_err());
        assert!(parse_time_of_day("f", "09:60", false).is_err());
    }

    #[test]
    fn time_zone_errors_suggest_a_fix() {
        let error = parse_time_zone("spec.timeZone", "Mars/Base").unwrap_err();
        assert_eq!(
            error.to_string(),
            "spec.timeZone: \"Mars/Base\" is not an IANA time zone; use a name such as \
             Europe/Berlin, America/New_York or UTC"
        );
        let error = parse_time_zone("spec.timeZone", "europe/berlin").unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("use a name such as Europe/Berlin"),
            "{error}"
        );
    }

    #[test]
    fn formats_in_local_time() {
        assert_eq!(
            format_local(chrono_tz::Europe::Berlin, utc("2026-12-01T08:00:00Z")),
            "Tue 2026-12-01 09:00 Europe/Berlin"
        );
    }
}
