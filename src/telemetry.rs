//! Logging: structured `tracing` output, text or JSON, with the filter and format of the
//! settings (`RELMAN_LOG`, `RELMAN_LOG_FORMAT`: see [`crate::settings`]).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber: `filter` (e.g. `info` or `relman=debug,kube=info`; unset,
/// `RUST_LOG`, else `info`), one JSON object per line when `json`. Call once, from `main`.
pub fn init(
    filter: Option<&str>,
    json: bool,
) -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .map(EnvFilter::new)
        .unwrap_or_else(|| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    }
}
