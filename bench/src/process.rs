//! relman as a process of its own: started against the control plane, measured through /proc
//! and its `/metrics`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long relman may take to list everything and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running relman; it is killed when dropped.
pub struct Relman {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    clock_ticks: f64,
}

/// What relman uses, read from /proc.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident memory now (VmRSS), MiB.
    pub rss_mib: f64,
    /// The most resident memory so far (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// User plus system CPU time so far, seconds.
    pub cpu_seconds: f64,
}

/// relman's own counters, from `/metrics`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// `relman_reconciles_total{controller="release"}`.
    pub reconciles: u64,
    /// `relman_api_writes_total{controller="release"}`, every kind.
    pub writes: u64,
    /// `relman_reconcile_duration_seconds_sum{controller="release"}`.
    pub reconcile_seconds: f64,
}

impl Relman {
    /// Starts `bin` with `kubeconfig` (leader election off, logs at `warn` into `log`) and
    /// waits until `/readyz` answers 200.
    pub async fn start(bin: &Path, kubeconfig: &Path, log: &Path) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let log_file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(bin)
            .env("KUBECONFIG", kubeconfig)
            .env("RELMAN_LEADER_ELECTION", "false")
            .env("RELMAN_HTTP_ADDR", addr.to_string())
            .env("RELMAN_PROBE_ADDR", "127.0.0.1:0")
            .env("RELMAN_LOG", "warn")
            .env_remove("RELMAN_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicate the log file")?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let pid = child.id().context("relman exited at once")?;
        let mut relman = Self {
            child,
            pid,
            addr,
            clock_ticks: clock_ticks().await,
        };
        relman.wait_ready(log).await?;
        Ok(relman)
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "relman exited ({status}) before it was ready; see {}",
                    log.display()
                );
            }
            if matches!(http_get(self.addr, "/readyz").await, Ok((200, _))) {
                return Ok(());
            }
            anyhow::ensure!(
                began.elapsed() < READY_TIMEOUT,
                "relman was not ready after {READY_TIMEOUT:?}; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails when relman has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => anyhow::bail!("relman exited ({status})"),
            None => Ok(()),
        }
    }

    /// Memory and CPU now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("read relman's /proc status")?;
        let kib = |key: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .context("read relman's /proc stat")?;
        // Fields after the command name (which may contain spaces) start at `state`, the
        // third field; utime and stime are the 14th and 15th.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Usage {
            rss_mib: round2(kib("VmRSS:") / 1024.0),
            peak_rss_mib: round2(kib("VmHWM:") / 1024.0),
            cpu_seconds: round2((ticks(11) + ticks(12)) / self.clock_ticks),
        })
    }

    /// relman's reconcile and write counters now.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        let (code, body) = http_get(self.addr, "/metrics").await?;
        anyhow::ensure!(code == 200, "relman's /metrics answered {code}");
        let mut counters = Counters::default();
        for line in body.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if !name.contains("controller=\"release\"") {
                continue;
            }
            if name.starts_with("relman_reconciles_total") {
                counters.reconciles += value as u64;
            } else if name.starts_with("relman_api_writes_total") {
                counters.writes += value as u64;
            } else if name.starts_with("relman_reconcile_duration_seconds_sum") {
                counters.reconcile_seconds += value;
            }
        }
        Ok(counters)
    }

    /// Stops relman (SIGKILL: nothing it does at exit is measured).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("stop relman")
    }
}

/// Rounds to 0.01.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A free loopback address for relman's HTTP server.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("pick a free port")?;
    Ok(listener.local_addr()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux default, if that fails).
async fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `GET path` on `addr`: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("relman's HTTP server did not answer within 10 s")??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("relman's HTTP answer has no header end")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("relman's HTTP answer has no status")?;
    Ok((code, body.to_owned()))
}
