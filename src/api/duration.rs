//! Go-style durations ("90s", "10m", "1h30m", "1.5h"), as written in relman's manifests
//! (`rolloutTimeout`, Job `timeout`, `bake`, calendar window lengths) and in its settings. One
//! parser for all of them, a superset of what the CRDs' CEL rules admit, so anything the API
//! server accepts parses here.
//!
//! The grammar is Go's `time.ParseDuration` without the sign: one or more decimal numbers, each
//! with an optional fraction and a unit (`h`, `m`, `s`, `ms`, `us`/`µs`, `ns`), or a bare `0`.
//! Fractions are computed exactly in nanoseconds, so `1.5h` is exactly 5400 seconds.

use std::time::Duration;

use thiserror::Error;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The most fractional digits that still change the result (a nanosecond of an hour is 1e-12 h).
const MAX_FRACTION_DIGITS: usize = 18;

/// Why a duration could not be parsed. The message names the input and shows a valid example.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("the duration is empty; write one such as 90s, 10m or 1h30m")]
    Empty,
    /// A sign was written; durations here are never negative.
    #[error("{input:?} is negative; a duration must be positive, such as 90s, 10m or 1h30m")]
    Negative {
        /// The text as written.
        input: String,
    },
    /// A number has no unit after it, e.g. `90`.
    #[error("{input:?} has a number without a unit; write it with one, such as 90s, 10m or 1h30m")]
    MissingUnit {
        /// The text as written.
        input: String,
    },
    /// A unit is not one Go knows, e.g. `3d`.
    #[error(
        "{input:?} has the unknown unit {unit:?}; use h, m, s, ms, us or ns (a day is 24h), such as 90s, 10m or 1h30m"
    )]
    UnknownUnit {
        /// The text as written.
        input: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// A unit has no number before it, or the text has characters that belong to no number.
    #[error("{input:?} is not a duration; write one such as 90s, 10m, 1.5h or 1h30m")]
    Malformed {
        /// The text as written.
        input: String,
    },
    /// The duration does not fit in a `std::time::Duration`.
    #[error("{input:?} is too long to represent")]
    Overflow {
        /// The text as written.
        input: String,
    },
}

/// Parses a Go-style duration such as `90s`, `10m`, `1h30m`, `1.5h` or `250ms`.
///
/// A bare `0` is accepted (as in Go); a sign, spaces, an empty string, a number without a unit
/// and units Go does not know (such as `d`) are rejected.
///
/// ```
/// use std::time::Duration;
/// use relman::api::duration::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("3d").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input.starts_with('-') || input.starts_with('+') {
        return Err(DurationError::Negative {
            input: input.to_owned(),
        });
    }
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let (nanos, remaining) = parse_component(rest, input)?;
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| overflow(input))?;
        rest = remaining;
    }
    nanos_to_duration(total_nanos).ok_or_else(|| overflow(input))
}

/// Parses one `<number><unit>` component from the front of `text`; returns its length in
/// nanoseconds and the text after it.
fn parse_component<'a>(text: &'a str, input: &str) -> Result<(u128, &'a str), DurationError> {
    let (whole, after_whole) = split_digits(text);
    let (fraction, after_number) = match after_whole.strip_prefix('.') {
        Some(after_dot) => split_digits(after_dot),
        None => ("", after_whole),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(DurationError::Malformed {
            input: input.to_owned(),
        });
    }
    let unit_len = after_number
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(after_number.len());
    let (unit, remaining) = after_number.split_at(unit_len);
    if unit.is_empty() {
        return Err(DurationError::MissingUnit {
            input: input.to_owned(),
        });
    }
    let unit_nanos = unit_in_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
        input: input.to_owned(),
        unit: unit.to_owned(),
    })?;
    let nanos = component_nanos(whole, fraction, unit_nanos).ok_or_else(|| overflow(input))?;
    Ok((nanos, remaining))
}

/// Splits the leading ASCII digits off `text`.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The length of one `unit` in nanoseconds, for the units Go's `time.ParseDuration` knows.
fn unit_in_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// `whole.fraction` units in nanoseconds, rounding the fraction down to whole nanoseconds.
fn component_nanos(whole: &str, fraction: &str, unit_nanos: u128) -> Option<u128> {
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let numerator: u128 = fraction.parse().ok()?;
        let digits = u32::try_from(fraction.len()).ok()?;
        numerator.checked_mul(unit_nanos)? / 10u128.checked_pow(digits)?
    };
    whole_value
        .checked_mul(unit_nanos)?
        .checked_add(fraction_nanos)
}

/// Converts nanoseconds to a `Duration`, or `None` if the seconds do not fit in a `u64`.
fn nanos_to_duration(nanos: u128) -> Option<Duration> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).ok()?;
    Some(Duration::new(seconds, subsec))
}

fn overflow(input: &str) -> DurationError {
    DurationError::Overflow {
        input: input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_go_style_durations() {
        let cases = [
            ("90s", secs(90)),
            ("6h", secs(6 * 3600)),
            ("90m", secs(90 * 60)),
            ("1h30m", secs(5400)),
            ("1.5h", secs(5400)),
            ("2h45m30s", secs(2 * 3600 + 45 * 60 + 30)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            (".5m", secs(30)),
            ("1.m", secs(60)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h1h", secs(7200)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("1.0000000000000000000001h", secs(3600)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for input in ["-1h", "+1h"] {
            assert!(
                matches!(parse_duration(input), Err(DurationError::Negative { .. })),
                "{input}"
            );
        }
        for input in ["90", "1h30"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(DurationError::MissingUnit { .. })
                ),
                "{input}"
            );
        }
        for input in ["3d", "1w", "5H", "1h 30m", "10sec"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(DurationError::UnknownUnit { .. })
                ),
                "{input}"
            );
        }
        for input in ["h", ".h", "1h.", " 1h", "abc", "1..5h"] {
            assert!(parse_duration(input).is_err(), "{input}");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("9999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn messages_show_the_input_and_an_example() {
        let message = parse_duration("3d").map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("\"3d\""), "{message}");
        assert!(message.contains("24h"), "{message}");
        assert!(message.contains("1h30m"), "{message}");
    }
}
