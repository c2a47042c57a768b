//! Logging: structured `tracing` output, text or JSON, level from the environment.
//!
//! `RELMAN_LOG` (or `RUST_LOG`) sets the filter, e.g. `info` or `relman=debug,kube=info`;
//! `RELMAN_LOG_FORMAT=json` switches to one JSON object per line.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Call once, from `main`.
pub fn init() -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter = std::env::var("RELMAN_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("RELMAN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    }
}
