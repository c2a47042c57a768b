//! Child processes that cannot outlive the process that started them.
//!
//! Every component runs under a small bash watchdog. The watchdog's stdin is a pipe whose only
//! writer is this process: it is never written to, only closed, which happens when the
//! [`Supervised`] handle is dropped *or* when this process exits in any way (panic, `exit`,
//! SIGKILL), because the kernel closes a dead process's descriptors. On end-of-file the watchdog
//! kills the component. This covers a control plane kept in a `static`, whose destructor never
//! runs, without `unsafe` (no `prctl(PR_SET_PDEATHSIG)` in `pre_exec`).
//!
//! A [`Janitor`] uses the same pipe trick to delete the scratch directory once the watchdogs
//! are gone, so that a test process that never drops its control plane leaves no etcd data
//! behind.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Runs `"$@"` and kills it when stdin reaches end-of-file; exits with its status.
const WATCHDOG: &str = r#"
exec 3<&0 </dev/null
"$@" 3<&- &
child=$!
{ read -r -u 3 _; kill -KILL "$child" 2>/dev/null; } &
watcher=$!
exec 3<&-
wait "$child"
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit "$status"
"#;

/// Reads process ids from stdin until end-of-file, waits (up to 10 s each) for them to exit,
/// removes `$1`. A zombie counts as exited: nobody may be left to reap it.
const JANITOR: &str = r#"
gone() {
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 0
  stat=${stat##*) }
  [ "${stat%% *}" = Z ]
}
pids=()
while read -r pid; do pids+=("$pid"); done
for pid in "${pids[@]}"; do
  for _ in {1..200}; do gone "$pid" && break; sleep 0.05; done
done
rm -rf -- "$1"
"#;

/// How long a stopping process may take before its process group is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How many log lines an error message quotes.
const LOG_TAIL_LINES: usize = 25;

/// What to run: a component of the control plane.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The component's name, used in messages and as its log file's name.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running component under its watchdog; dropping the handle stops it.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: String,
    child: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    /// Starts `launch` with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub(crate) fn spawn(launch: Launch, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{}.log", launch.name));
        let stdout = open_log(&log)?;
        let stderr = stdout
            .try_clone()
            .map_err(Error::io(format!("open {}", log.display())))?;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(format!("relman-testenv-{}", launch.name))
            .arg(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(Error::io(format!("start {}", launch.program.display())))?;
        let lifeline = child.stdin.take();
        Ok(Self {
            name: launch.name,
            child,
            lifeline,
            log,
        })
    }

    /// The watchdog's process id (also the process group of the component).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The component's name, e.g. `etcd`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Kills the component (SIGKILL, as a crash does) and waits until it is gone. The handle
    /// stays usable: [`Supervised::check_running`] reports the exit.
    pub(crate) fn kill(&mut self) {
        self.release();
        self.reap(Instant::now() + STOP_GRACE);
    }

    /// Fails with the exit status and log tail if the component has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                component: self.name.clone(),
                status,
                log: self.log_tail(),
            }),
            Ok(None) => Ok(()),
            Err(source) => Err(Error::Io {
                action: format!("check on {}", self.name),
                source,
            }),
        }
    }

    /// The last lines of the component's log.
    pub(crate) fn log_tail(&self) -> String {
        crate::fs::tail(&self.log, LOG_TAIL_LINES)
    }

    /// An [`Error::NotReady`] for this component.
    pub(crate) fn not_ready(&self, timeout: Duration) -> Error {
        Error::NotReady {
            component: self.name.clone(),
            timeout,
            log: self.log_tail(),
        }
    }

    /// Closes the lifeline: the watchdog kills the component and exits.
    fn release(&mut self) {
        self.lifeline = None;
    }

    /// Waits for the watchdog to exit; past `deadline` kills the whole process group.
    fn reap(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
        tracing::warn!(component = %self.name, "did not stop in time; killing its process group");
        kill_process_group(self.child.id());
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.release();
        self.reap(Instant::now() + STOP_GRACE);
    }
}

/// Stops `processes` together, in reverse start order, waiting for each to exit.
pub(crate) fn stop_all(processes: &mut [Supervised]) {
    processes.iter_mut().rev().for_each(Supervised::release);
    let deadline = Instant::now() + STOP_GRACE;
    processes.iter_mut().rev().for_each(|p| p.reap(deadline));
}

/// Removes a directory once this process and the watched processes are gone.
#[derive(Debug)]
pub(crate) struct Janitor {
    child: Child,
    pids: Option<ChildStdin>,
}

impl Janitor {
    /// Starts a janitor for `dir`.
    pub(crate) fn spawn(dir: &Path) -> Result<Self> {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(JANITOR)
            .arg("relman-testenv-janitor")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::io("start the scratch-directory janitor"))?;
        let pids = child.stdin.take();
        Ok(Self { child, pids })
    }

    /// Makes the janitor wait for `pid` to exit before it removes the directory.
    pub(crate) fn watch(&mut self, pid: u32) -> Result<()> {
        let Some(pids) = self.pids.as_mut() else {
            return Ok(());
        };
        writeln!(pids, "{pid}").map_err(Error::io("tell the janitor about a process"))
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.pids = None;
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens (appending) a component's log file.
fn open_log(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io(format!("open {}", path.display())))
}

/// Sends SIGKILL to every process in the group led by `pid`.
fn kill_process_group(pid: u32) {
    let _ = Command::new("bash")
        .args(["-c", r#"kill -KILL -- "-$1" 2>/dev/null"#, "kill"])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(name: &str) -> Launch {
        Launch {
            name: name.to_owned(),
            program: PathBuf::from("sleep"),
            args: vec!["300".to_owned()],
            env: Vec::new(),
        }
    }

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// The component's pid: the only child of the watchdog that is not the bash watcher.
    fn component_pid(watchdog: u32) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let children =
                std::fs::read_to_string(format!("/proc/{watchdog}/task/{watchdog}/children"))
                    .unwrap_or_default();
            for pid in children.split_whitespace() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return pid.parse().unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the watchdog never started its component");
    }

    #[test]
    fn dropping_the_handle_kills_the_component() {
        let dir = tempfile::tempdir().unwrap();
        let process = Supervised::spawn(sleeper("sleeper"), dir.path()).unwrap();
        let component = component_pid(process.pid());
        assert!(alive(component));
        drop(process);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(component) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(component));
    }

    #[test]
    fn a_killed_component_is_gone_and_reported_as_exited() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Supervised::spawn(sleeper("sleeper"), dir.path()).unwrap();
        let component = component_pid(process.pid());
        process.kill();
        assert!(!alive(component));
        assert!(process.check_running().is_err());
        assert_eq!(process.name(), "sleeper");
    }

    #[test]
    fn an_exited_component_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            name: "failing".to_owned(),
            program: PathBuf::from("bash"),
            args: vec!["-c".to_owned(), "echo boom; exit 3".to_owned()],
            env: Vec::new(),
        };
        let mut process = Supervised::spawn(launch, dir.path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            if let Err(e) = process.check_running() {
                break e;
            }
            assert!(Instant::now() < deadline, "the component never exited");
            std::thread::sleep(Duration::from_millis(10));
        };
        let message = err.to_string();
        assert!(message.contains("failing exited unexpectedly"), "{message}");
        assert!(message.contains("boom"), "{message}");
    }

    #[test]
    fn the_janitor_removes_the_directory_after_the_processes() {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("data"), "x").unwrap();
        let mut janitor = Janitor::spawn(&dir).unwrap();
        let process = Supervised::spawn(sleeper("sleeper"), &dir).unwrap();
        janitor.watch(process.pid()).unwrap();
        drop(process);
        drop(janitor);
        assert!(!dir.exists());
    }

    #[test]
    fn the_janitor_does_not_wait_for_zombies() {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut janitor = Janitor::spawn(&dir).unwrap();
        // Never waited for, so it stays a zombie: nobody reaps it while this test runs.
        let mut zombie = Command::new("true").spawn().unwrap();
        janitor.watch(zombie.id()).unwrap();
        let began = Instant::now();
        drop(janitor);
        assert!(!dir.exists());
        assert!(began.elapsed() < Duration::from_secs(3));
        zombie.wait().unwrap();
    }
}
