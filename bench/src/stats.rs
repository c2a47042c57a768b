//! Percentiles of latency samples.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Percentiles of a set of durations, in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// The nearest-rank percentiles of `samples` (all zero when there are none).
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least p of the samples at or below it.
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            round(sorted[index])
        };
        Self {
            count: sorted.len(),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: sorted.last().copied().map_or(0.0, round),
        }
    }
}

/// Rounds to 0.1 ms (the JSON stays readable).
pub fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(
            (p.count, p.p50_ms, p.p95_ms, p.p99_ms),
            (100, 50.0, 95.0, 99.0)
        );
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(Percentiles::of(&[]).count, 0);
    }
}
