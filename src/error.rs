//! The controller's errors, each with a stable category for metrics and Event reasons.

/// What can go wrong while reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be turned into JSON for a patch.
    #[error("could not serialize a patch: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The object relman was given lacks a field every stored object has.
    #[error("the object has no {0}")]
    MissingField(&'static str),
    /// The status write raced with a newer version of the Release; the next event retries.
    #[error("the Release changed while it was reconciled; retrying with the newer version")]
    Conflict,
    /// A Deployment changed after relman read it, so a write decided from that read was not
    /// made; the next reconcile reads it again.
    #[error("Deployment {namespace}/{name} changed since it was read; reading it again")]
    DeploymentChanged {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Job relman was to create exists under its deterministic name but was not made for
    /// this Release object; it is never counted.
    #[error(
        "Job {namespace}/{name} exists but belongs to another Release object (release uid {owner:?})"
    )]
    JobNameTaken {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its `relman.io/release-uid` label, if any.
        owner: Option<String>,
    },
    /// This replica does not hold the leader Lease (or just lost it): it must not write.
    #[error("this replica is not the leader; the leader reconciles")]
    NotLeader,
    /// A reconcile did not finish within its budget (a hung or throttled API server): it was
    /// given up, its slot freed, and it is tried again.
    #[error("the reconcile did not finish within {0:?}; it is tried again")]
    TimedOut(std::time::Duration),
}

impl Error {
    /// A short, stable name for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) if status.code == 403 => "Forbidden",
            Self::Kube(kube::Error::Api(status)) if status.code == 404 => "NotFound",
            Self::Kube(kube::Error::Api(status)) if status.code == 422 => "Invalid",
            Self::Kube(kube::Error::Api(_)) => "ApiError",
            Self::Kube(_) => "ApiUnreachable",
            Self::Serialize(_) => "Serialize",
            Self::MissingField(_) => "MissingField",
            Self::Conflict | Self::DeploymentChanged { .. } | Self::JobNameTaken { .. } => {
                "Conflict"
            }
            Self::NotLeader => "NotLeader",
            Self::TimedOut(_) => "TimedOut",
        }
    }
}

/// Results of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;
