//! Go-style durations (`90s`, `10m`, `1h30m`, `1.5h`), as written in `rolloutTimeout` and Job
//! `timeout` fields.
//!
//! Private to the planner until `crate::calendar` offers a shared parser; the accepted syntax
//! is the one the CRD's CEL rule admits (`([0-9]+([.][0-9]+)?(ms|s|m|h))+`) plus Go's `ns` and
//! `us`/`µs`, so anything the API server accepts parses here.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration")]
    Empty,
    /// A number or a unit is missing or unknown.
    #[error(
        "invalid duration {0:?}: expected numbers with units ns, us, ms, s, m or h, e.g. 90s, 10m or 1h30m"
    )]
    Syntax(String),
    /// The value does not fit.
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Parses a Go-style duration such as `90s`, `10m`, `1h30m` or `1.5h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let mut rest = text;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
            if frac_part.is_empty() {
                return Err(syntax());
            }
        }
        if int_part.is_empty() {
            return Err(syntax());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_nanos: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(syntax()),
        };
        rest = &rest[unit_len..];
        let whole: u128 = int_part.parse().map_err(|_| overflow())?;
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // The fraction is exact to the nanosecond: digits beyond the unit's precision are dropped.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes().take(20) {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(overflow)?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| overflow())?;
    let subsec = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m0.5s"), Ok(Duration::from_millis(120_500)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in ["10", "m", "10x", "1h 30m", ".5s", "5.s", "-5s", "10M", "1d"] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
