//! The real `relman` binary as a child process, so a scenario can SIGKILL it.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use relman_testenv::ControlPlane;

/// Leader election timings for the leader scenario: a takeover within about five seconds.
pub const LEADER_TIMINGS: [(&str, &str); 4] = [
    ("RELMAN_LEADER_ELECTION_LEASE_DURATION", "4s"),
    ("RELMAN_LEADER_ELECTION_RENEW_DEADLINE", "3s"),
    ("RELMAN_LEADER_ELECTION_RENEW_PERIOD", "1s"),
    ("RELMAN_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
];

/// A `relman` process, SIGKILLed when dropped.
pub struct Relman {
    pub name: String,
    pub child: Child,
}

impl Relman {
    /// Starts the controller binary (its copy in `log_dir`) for `namespace` as instance `name`
    /// (its `POD_NAME`), with leader election on `lease` or off, logging to
    /// `<log_dir>/<name>.log`.
    pub fn spawn(
        cp: &ControlPlane,
        namespace: &str,
        name: &str,
        lease: Option<&str>,
        log_dir: &Path,
    ) -> Self {
        Self::spawn_as(namespace, name, lease, log_dir, &cp.kubeconfig_path())
    }

    /// [`Relman::spawn`], talking to the API server with `kubeconfig` (a user of its own, so
    /// the audit log tells this process's requests from another's).
    pub fn spawn_as(
        namespace: &str,
        name: &str,
        lease: Option<&str>,
        log_dir: &Path,
        kubeconfig: &Path,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .expect("open the controller log");
        let mut command = Command::new(log_dir.join("relman"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RELMAN_NAMESPACE", namespace)
            .env("RELMAN_HTTP_ADDR", "127.0.0.1:0")
            .env("RELMAN_PROBE_ADDR", "127.0.0.1:0")
            .env(
                "RELMAN_LOG",
                std::env::var("RELMAN_CHAOS_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        match lease {
            Some(lease) => {
                command
                    .env("RELMAN_LEADER_ELECTION", "true")
                    .env("RELMAN_LEADER_ELECTION_LEASE", lease)
                    .envs(LEADER_TIMINGS);
            }
            None => {
                command.env("RELMAN_LEADER_ELECTION", "false");
            }
        }
        let child = command.spawn().expect("start the relman binary");
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process the way a GC pause, CPU throttling or a frozen node does (SIGSTOP):
    /// it keeps its state and its connections and does nothing until [`Relman::resume`].
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen process go on (SIGCONT), unaware that time passed.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} {} failed", self.name);
        Ok(())
    }

    /// Fails when the process exited by itself: relman must never give up.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!("relman {} exited by itself: {status}", self.name),
        }
    }
}

impl Drop for Relman {
    fn drop(&mut self) {
        self.kill();
    }
}
