//! The machine the figures were measured on.

use serde::{Deserialize, Serialize};

/// What the report says about the machine.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Machine {
    /// CPUs available to the benchmark.
    pub cpus: usize,
    /// The CPU model (`model name` in /proc/cpuinfo).
    pub cpu_model: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
    /// The 1, 5 and 15 minute load averages when the benchmark started.
    pub load_before: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_after: Option<[f64; 3]>,
    /// When the benchmark ran (RFC 3339, UTC).
    pub date: String,
}

impl Machine {
    /// Describes this machine now.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_mib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_default(),
            load_before: load_average(),
            load_after: None,
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The 1, 5 and 15 minute load averages (/proc/loadavg).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}
