//! `bench/results.json` and the table printed at the end.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::audit::PerUnit;
use crate::floor::FloorResult;
use crate::lifecycle::LifecycleResult;
use crate::machine::Machine;
use crate::memory::MemoryResult;
use crate::stats::Percentiles;

/// Every figure of the benchmark. A phase that did not run keeps the figures of the last run
/// that did.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Results {
    /// The machine, and its load.
    pub machine: Option<Machine>,
    /// Throughput, reaction latency, API cost and steady state.
    pub lifecycle: Option<LifecycleResult>,
    /// The minimal client's figures.
    pub floor: Option<FloorResult>,
    /// Memory and CPU by Release count.
    pub memory: Option<MemoryResult>,
}

impl Results {
    /// The results in `path`, or none when it does not exist (or is from an older layout).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "earlier results unreadable; starting afresh");
                Self::default()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    /// Writes the results as pretty JSON.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
    }

    /// The figures as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(m) = &self.machine {
            let load = |l: &Option<[f64; 3]>| {
                l.map_or_else(
                    || "?".to_owned(),
                    |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"),
                )
            };
            let _ = writeln!(
                out,
                "machine: {} CPUs ({}), {} MiB; load before {} / after {}",
                m.cpus,
                m.cpu_model,
                m.memory_mib,
                load(&m.load_before),
                load(&m.load_after)
            );
        }
        if let Some(l) = &self.lifecycle {
            let _ = writeln!(
                out,
                "\nLIFECYCLE: {} Releases in {} namespaces",
                l.releases, l.namespaces
            );
            row(&mut out, "created in", format!("{:.1} s", l.create_seconds));
            row(
                &mut out,
                "all Ready after",
                format!("{:.1} s", l.all_ready_seconds),
            );
            if let Some(f) = &self.floor {
                row(
                    &mut out,
                    "floor: all Ready after",
                    format!(
                        "{:.1} s (relman adds {:.1} s)",
                        f.all_ready_seconds,
                        l.all_ready_seconds - f.all_ready_seconds
                    ),
                );
            }
            row(&mut out, "reaction, every gate", latency(&l.reaction));
            for (gate, p) in &l.reaction_by_gate {
                row(&mut out, &format!("  {gate:?}"), latency(p));
            }
            row(&mut out, "  late gate events", l.reaction_late.to_string());
            if let Some(f) = &self.floor {
                row(&mut out, "floor reaction, every gate", latency(&f.reaction));
            }
            if let Some(per) = &l.requests_per_release {
                requests(&mut out, "requests per Release", per);
            }
            if let Some(per) = self
                .floor
                .as_ref()
                .and_then(|f| f.requests_per_release.as_ref())
            {
                requests(&mut out, "floor requests per Release", per);
            }
            row(
                &mut out,
                "reconciles per Release",
                format!(
                    "{:.2} (a reconcile takes {:.1} ms on average)",
                    l.reconciles_per_release, l.reconcile_mean_ms
                ),
            );
            let s = &l.steady_state;
            row(
                &mut out,
                "steady state",
                format!(
                    "{} reconciles, {} writes (relman counts {}): {:.3} writes per reconcile",
                    s.reconciles,
                    s.writes_audit
                        .map_or_else(|| "?".to_owned(), |w| w.to_string()),
                    s.writes_metrics,
                    s.writes_per_reconcile
                ),
            );
            if let Some(per) = &s.requests_per_reconcile {
                requests(&mut out, "requests per reconcile", per);
            }
            row(
                &mut out,
                "relman RSS idle / all Ready",
                format!(
                    "{:.1} / {:.1} MiB (peak {:.1})",
                    l.usage_idle.rss_mib, l.usage_all_ready.rss_mib, l.usage_all_ready.peak_rss_mib
                ),
            );
            row(
                &mut out,
                "relman CPU, lifecycle",
                format!("{:.1} s", l.cpu_seconds_lifecycle),
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                out,
                "\nMEMORY: Releases waiting for a sign-off, {} namespaces",
                m.namespaces
            );
            let _ = writeln!(
                out,
                "  {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}",
                "releases",
                "RSS MiB",
                "peak MiB",
                "CPU s",
                "step s",
                "settle s",
                "idle CPU %",
                "MiB/1000"
            );
            for p in &m.points {
                let _ = writeln!(
                    out,
                    "  {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.2} {:>9}",
                    p.releases,
                    p.usage.rss_mib,
                    p.usage.peak_rss_mib,
                    p.usage.cpu_seconds,
                    p.cpu_seconds_step,
                    p.settle_seconds,
                    p.idle_cpu_percent,
                    p.rss_mib_per_1000
                        .map_or_else(|| "-".to_owned(), |g| format!("{g:.1}"))
                );
            }
        }
        out
    }
}

fn row(out: &mut String, name: &str, value: String) {
    let _ = writeln!(out, "  {name:<32} {value}");
}

fn latency(p: &Percentiles) -> String {
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms, p.count
    )
}

fn requests(out: &mut String, name: &str, per: &PerUnit) {
    let verbs = per
        .by_verb
        .iter()
        .map(|(verb, n)| format!("{verb} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    row(
        out,
        name,
        format!("{:.2} ({verbs}; writes {:.2})", per.total, per.writes),
    );
    for (what, n) in &per.by_request {
        let _ = writeln!(out, "  {:<34} {what}: {n:.2}", "");
    }
}
