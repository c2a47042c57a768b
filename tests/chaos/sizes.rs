//! How big a chaos run is, and the seeded random choices it makes.

use std::str::FromStr;
use std::time::Duration;

/// How big the run is and which random choices it makes.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub seed: u64,
    /// Releases of the controller-kill scenario.
    pub releases: usize,
    /// Controller kills in that scenario.
    pub kills: usize,
    /// Releases of the API server scenario.
    pub restart_releases: usize,
    /// Rounds of (etcd restart, kube-apiserver restart).
    pub restarts: usize,
    /// Releases of the leader scenario.
    pub leader_releases: usize,
    /// Leader kills.
    pub leader_kills: usize,
    /// Releases of the leader-pause scenario.
    pub pause_releases: usize,
    /// Leader pauses.
    pub leader_pauses: usize,
    /// Releases of the throttled-API-server scenario.
    pub throttled_releases: usize,
    /// Sign-offs arrive at random moments within this long after the releases were created.
    pub approval_window: Duration,
}

impl Sizes {
    /// From `RELMAN_CHAOS_*`; the defaults are the short run of `make test`.
    pub fn from_env() -> Self {
        let seed = env_or("RELMAN_CHAOS_SEED", || {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            (nanos % 1_000_000_007) as u64
        });
        let releases = env_or("RELMAN_CHAOS_RELEASES", || 12);
        Self {
            seed,
            releases,
            kills: env_or("RELMAN_CHAOS_KILLS", || 8),
            restart_releases: env_or("RELMAN_CHAOS_RESTART_RELEASES", || releases.div_ceil(3)),
            restarts: env_or("RELMAN_CHAOS_RESTARTS", || 1),
            leader_releases: env_or("RELMAN_CHAOS_LEADER_RELEASES", || releases.div_ceil(3)),
            leader_kills: env_or("RELMAN_CHAOS_LEADER_KILLS", || 2),
            pause_releases: env_or("RELMAN_CHAOS_PAUSE_RELEASES", || releases.div_ceil(3)),
            leader_pauses: env_or("RELMAN_CHAOS_LEADER_PAUSES", || 2),
            throttled_releases: env_or("RELMAN_CHAOS_THROTTLED_RELEASES", || releases),
            approval_window: Duration::from_secs(env_or("RELMAN_CHAOS_APPROVAL_WINDOW", || 15)),
        }
    }
}

/// The variable `name` parsed, or `default()` when it is unset or empty.
pub fn env_or<T: FromStr>(name: &str, default: impl FnOnce() -> T) -> T {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid number")),
        _ => default(),
    }
}

/// SplitMix64: small, seedable, good enough to pick kill moments and fates.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A duration in `[low, high]`, to the millisecond.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = u64::try_from((high - low).as_millis()).unwrap_or(u64::MAX);
        low + Duration::from_millis(self.next_u64() % (span + 1))
    }

    /// A derived generator, so one scenario's draws do not shift another's.
    pub fn fork(&mut self) -> Self {
        Self(self.next_u64())
    }
}
