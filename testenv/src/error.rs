//! The harness's error type.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong while starting or using the local control plane.
///
/// Messages are written for the person reading a failed test: they say what the harness was
/// doing and, for a component that failed, end with the last lines of its log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `testenv/build.sh` failed, or the binary directory it named is incomplete.
    #[error("could not build the control-plane binaries: {0}")]
    Build(String),

    /// A file-system or process operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What the harness was doing, e.g. "write /tmp/x/ca.crt".
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Generating or signing a certificate failed.
    #[error("could not generate a certificate: {0}")]
    Certificate(#[from] rcgen::Error),

    /// A component did not become ready in time.
    #[error(
        "{component} did not become ready in {}s; last log lines:\n{log}",
        timeout.as_secs()
    )]
    NotReady {
        /// The component, e.g. "kube-apiserver".
        component: String,
        /// How long the harness waited.
        timeout: Duration,
        /// The last lines of the component's log.
        log: String,
    },

    /// A component exited while the harness still needed it.
    #[error("{component} exited unexpectedly ({status}); last log lines:\n{log}")]
    Exited {
        /// The component, e.g. "etcd".
        component: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines of the component's log.
        log: String,
    },

    /// A kubeconfig the harness wrote could not be loaded.
    #[error("could not load a kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    /// A request to the API server failed.
    #[error("could not {action}: {source}")]
    Kube {
        /// What the harness was doing, e.g. "create namespace demo-x1y2z".
        action: String,
        /// The underlying error.
        source: kube::Error,
    },

    /// Waiting for an object's condition failed or timed out.
    #[error("gave up waiting for {what} after {}s{}", timeout.as_secs(), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Wait {
        /// What the harness waited for, e.g. "node kwok-node-0 to be Ready".
        what: String,
        /// How long it waited.
        timeout: Duration,
        /// The watch error, when the wait ended because of one.
        detail: Option<String>,
    },

    /// A manifest in the CRD directory could not be parsed.
    #[error("could not parse {path} as CustomResourceDefinitions: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_yaml::Error,
    },

    /// The control plane has no component of that name.
    #[error("the control plane has no component {0}")]
    NoSuchComponent(String),

    /// The shared control plane of this test process failed to start earlier.
    #[error("the shared control plane failed to start: {0}")]
    Shared(Arc<Error>),

    /// The thread that starts the shared control plane died.
    #[error("the control-plane start-up thread failed: {0}")]
    StartThread(String),
}

impl Error {
    /// An [`Error::Io`] for `action`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    /// An [`Error::Kube`] for `action`.
    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
