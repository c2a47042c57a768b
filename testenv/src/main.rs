//! `relman-testenv up --kubeconfig <path>`: runs the local control plane until SIGTERM or
//! SIGINT, with the admin kubeconfig at `<path>` and this process's id in
//! `<dir of path>/relman-testenv.pid`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use relman_testenv::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

/// The name of the pid file written next to the kubeconfig.
const PID_FILE: &str = "relman-testenv.pid";

const USAGE: &str = "\
usage: relman-testenv up --kubeconfig <path>

Starts a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok with one fake node), writes its admin kubeconfig to <path> and this
process's id to relman-testenv.pid next to it, and runs until SIGTERM or SIGINT.

Environment:
  RELMAN_TESTENV_BIN_DIR  use the binaries in this directory instead of running testenv/build.sh
  RUST_LOG                log filter (default: info)";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube's client logs every failed /readyz probe during start-up as an error.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Ok(Some(kubeconfig)) => up(&kubeconfig).await,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relman-testenv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The kubeconfig path of `up --kubeconfig <path>`; `None` when help was asked for.
fn parse(args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    match args {
        [flag] if flag == "-h" || flag == "--help" || flag == "help" => Ok(None),
        [up, flag, path] if up == "up" && flag == "--kubeconfig" => Ok(Some(PathBuf::from(path))),
        [up, flag] if up == "up" => match flag.strip_prefix("--kubeconfig=") {
            Some(path) if !path.is_empty() => Ok(Some(PathBuf::from(path))),
            _ => bail!("unexpected arguments {args:?}\n\n{USAGE}"),
        },
        _ => bail!("unexpected arguments {args:?}\n\n{USAGE}"),
    }
}

/// Starts the control plane, publishes its kubeconfig and pid, and waits for a signal.
async fn up(kubeconfig: &Path) -> anyhow::Result<()> {
    // Listen before starting so that a signal during start-up is not lost.
    let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    let control_plane = tokio::select! {
        started = ControlPlane::start() => started.context("start the control plane")?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    let pid_file = publish(&control_plane, kubeconfig)?;
    print_instructions(&control_plane, kubeconfig, &pid_file);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    eprintln!("relman-testenv: stopping the control plane");
    drop(control_plane);
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(kubeconfig);
    Ok(())
}

/// Copies the admin kubeconfig to `kubeconfig` and writes the pid file; returns its path.
fn publish(control_plane: &ControlPlane, kubeconfig: &Path) -> anyhow::Result<PathBuf> {
    let dir = kubeconfig
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::copy(control_plane.kubeconfig_path(), kubeconfig)
        .with_context(|| format!("write {}", kubeconfig.display()))?;
    let pid_file = dir.join(PID_FILE);
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("write {}", pid_file.display()))?;
    Ok(pid_file)
}

/// Tells the user where the cluster is and how to stop it.
fn print_instructions(control_plane: &ControlPlane, kubeconfig: &Path, pid_file: &Path) {
    println!(
        "relman-testenv: control plane ready in {:.1}s at {}
  kubeconfig: {kubeconfig}        (export KUBECONFIG={kubeconfig})
  kubectl:    {kubectl}
  logs:       {logs}
  stop:       kill $(cat {pid_file})   (or Ctrl-C)",
        control_plane.startup_time().as_secs_f64(),
        control_plane.server_url(),
        kubeconfig = kubeconfig.display(),
        kubectl = control_plane.bin_dir().join("kubectl").display(),
        logs = control_plane.log_dir().display(),
        pid_file = pid_file.display(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_up_with_a_kubeconfig() {
        let expected = Some(PathBuf::from("target/cluster/kubeconfig"));
        let separate = parse(&args(&["up", "--kubeconfig", "target/cluster/kubeconfig"]));
        assert_eq!(separate.unwrap(), expected);
        let joined = parse(&args(&["up", "--kubeconfig=target/cluster/kubeconfig"]));
        assert_eq!(joined.unwrap(), expected);
        assert_eq!(parse(&args(&["--help"])).unwrap(), None);
        assert!(parse(&args(&["up"])).is_err());
        assert!(parse(&args(&["down"])).is_err());
    }
}
