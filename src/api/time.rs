//! Conversions between the planner's clock type (`chrono`) and Kubernetes `Time` (`jiff`).

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// A Kubernetes `Time` for `at`, truncated to whole seconds as the API server stores it, so
/// that a status read back compares equal to the one written.
pub fn to_k8s_time(at: DateTime<Utc>) -> Time {
    let timestamp = Timestamp::from_second(at.timestamp()).unwrap_or(if at.timestamp() < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    Time(timestamp)
}

/// The instant a Kubernetes `Time` names.
pub fn from_k8s_time(time: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(
        time.0.as_second(),
        time.0.subsec_nanosecond().unsigned_abs(),
    )
    .unwrap_or_default()
}

/// `start + duration`, saturating instead of overflowing.
pub fn add(start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How long from `now` until `at`; zero when `at` has passed.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let at = DateTime::from_timestamp(1_790_000_000, 123_000_000).unwrap();
        let back = from_k8s_time(&to_k8s_time(at));
        assert_eq!(back, DateTime::from_timestamp(1_790_000_000, 0).unwrap());
    }

    #[test]
    fn until_is_never_negative() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert_eq!(
            until(now, add(now, Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            until(now, DateTime::from_timestamp(10, 0).unwrap()),
            Duration::ZERO
        );
    }
}
