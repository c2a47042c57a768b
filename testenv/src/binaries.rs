//! Finding (and if needed building) the control-plane binaries.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::{Error, Result};

/// Overrides the binary directory; `testenv/build.sh` is not run when it is set.
pub const BIN_DIR_ENV: &str = "RELMAN_TESTENV_BIN_DIR";

/// The binaries the control plane needs, all expected in one directory.
pub(crate) const REQUIRED: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
];

/// How many lines of build output an error message quotes.
const BUILD_LOG_TAIL: usize = 30;

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The directory holding the binaries: `$RELMAN_TESTENV_BIN_DIR`, or the one `build.sh` prints.
pub(crate) async fn locate() -> Result<PathBuf> {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => run_build_script().await?,
    };
    check_complete(&dir)?;
    Ok(dir)
}

/// Runs `testenv/build.sh`, forwarding its progress to stderr, and returns its last stdout line.
async fn run_build_script() -> Result<PathBuf> {
    let script = workspace_root().join("testenv").join("build.sh");
    let mut child = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Build(format!("could not run bash {}: {e}", script.display())))?;
    let stderr_tail = match child.stderr.take() {
        Some(stderr) => tokio::spawn(forward_and_keep_tail(stderr)),
        None => tokio::spawn(async { VecDeque::new() }),
    };
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Build(format!("could not wait for {}: {e}", script.display())))?;
    let tail = stderr_tail.await.unwrap_or_default();
    if !output.status.success() {
        let log: Vec<String> = tail.into_iter().collect();
        return Err(Error::Build(format!(
            "{} failed ({}); its last output lines:\n{}",
            script.display(),
            output.status,
            log.join("\n")
        )));
    }
    last_line(&output.stdout)
        .map(PathBuf::from)
        .ok_or_else(|| Error::Build(format!("{} printed no binary directory", script.display())))
}

/// Copies each line to our stderr (build progress is worth seeing on a cold cache) and keeps
/// the last few for an error message.
async fn forward_and_keep_tail(stderr: tokio::process::ChildStderr) -> VecDeque<String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut tail = VecDeque::with_capacity(BUILD_LOG_TAIL);
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{line}");
        if tail.len() == BUILD_LOG_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail
}

/// The last non-empty line of `bytes`, trimmed.
fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_owned)
}

/// Fails unless every required binary is in `dir`.
fn check_complete(dir: &Path) -> Result<()> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Build(format!(
        "{} lacks {} (set {BIN_DIR_ENV} to a directory holding {}, or unset it to build them)",
        dir.display(),
        missing.join(", "),
        REQUIRED.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_trailing_blank_lines() {
        assert_eq!(
            last_line(b"progress\n/cache/bin\n\n"),
            Some("/cache/bin".to_owned())
        );
        assert_eq!(last_line(b""), None);
    }

    #[test]
    fn missing_binaries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let message = check_complete(dir.path()).unwrap_err().to_string();
        assert!(message.starts_with("could not build the control-plane binaries"));
        assert!(message.contains("kube-apiserver"));
    }
}
