//! What can go wrong in `kubectl relman`, each said in one line.

use kube::config::{InferConfigError, KubeconfigError};

/// An error of the plugin; `main` prints it as one line on stderr and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error("cannot find a cluster to talk to (set --kubeconfig or KUBECONFIG): {0}")]
    NoConfig(#[from] InferConfigError),
    /// The API server refused or failed a request, or could not be reached.
    #[error("{0}")]
    Api(String),
    /// The ReleaseCalendar named does not exist.
    #[error("ReleaseCalendar {0:?} not found (kubectl get releasecalendars lists them)")]
    CalendarNotFound(String),
    /// No ReleaseCalendar exists at all.
    #[error("no ReleaseCalendar exists yet; create one (see docs/calendar.md)")]
    NoCalendars,
    /// The Release named does not exist in the namespace.
    #[error(
        "Release {name:?} not found in namespace {namespace:?} (kubectl relman list shows them)"
    )]
    ReleaseNotFound {
        /// The name asked for.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// No gate was named and the release has none waiting for a decision.
    #[error("{0}")]
    NoGate(String),
    /// The same decision by the same user already exists.
    #[error(
        "ReleaseApproval {0:?} already exists: decisions are immutable, so this one is recorded already"
    )]
    AlreadyDecided(String),
    /// The release could not be printed as JSON or YAML.
    #[error("cannot print the release: {0}")]
    Encode(String),
    /// Writing to stdout failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<kube::Error> for PluginError {
    fn from(error: kube::Error) -> Self {
        Self::Api(match &error {
            kube::Error::Api(status) if status.code == 403 => {
                format!("forbidden: {}", status.message)
            }
            kube::Error::Api(status) if status.code == 404 && status.message.contains("the server could not find the requested resource") => {
                "the cluster does not serve relman's resources: install the CRDs (kubectl apply -f crds/)".to_owned()
            }
            kube::Error::Api(status) => status.message.clone(),
            other => format!("cannot reach the Kubernetes API: {other}"),
        })
    }
}

impl PluginError {
    /// The message on a single line, as printed on stderr.
    pub fn one_line(&self) -> String {
        self.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
