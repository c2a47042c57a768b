//! What the planner decides: one step for the act layer, the status to write, when to look
//! again, and the Events to record.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::ReleaseStatus;

/// The planner's decision for one reconcile.
///
/// The controller applies it in this order: write `status` (server-side apply on the status
/// subresource, skipped when equal to the status it observed), then perform `action`, then
/// record `events`, then requeue after `requeue_after` if set (otherwise wait for a watch
/// event). Writing the status first is what makes a step restart-safe: the decision to take
/// it (a failure to revert for, a Job to wait for) is persisted before the world changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The one side-effecting step to take now.
    pub action: Action,
    /// The complete status the Release should have.
    pub status: ReleaseStatus,
    /// When something time-based matters (a timeout expires, a pod problem outlasts its grace
    /// period, a window opens). `Some(Duration::ZERO)` means "look again right after writing
    /// the status": the step was status-only (e.g. capturing the known-good state) and the
    /// next one depends on it being persisted.
    pub requeue_after: Option<Duration>,
    /// Kubernetes Events to record on the Release, one per transition.
    pub events: Vec<PlannedEvent>,
}

/// The one side-effecting step of a plan. Every action is idempotent: repeating it (after a
/// restart, or because a cache lagged) changes nothing more.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Nothing to do: wait for a watch event or the requeue.
    None,
    /// Create a backup or smoke-test Job. Its name is deterministic, so the act layer treats
    /// `AlreadyExists` as success.
    CreateJob {
        /// Backup or smoke test.
        kind: JobKind,
        /// The stage it belongs to.
        stage: String,
        /// The Job's namespace (the stage's namespace).
        namespace: String,
        /// The Job's name.
        name: String,
        /// The Job to create, labelled and named; `metadata.namespace` is the stage's.
        job: Box<Job>,
    },
    /// Set the release's images on one Deployment: only `spec.template.spec.containers[*].image`
    /// (and init containers) of the named containers, nothing else.
    RollOut {
        /// The stage it belongs to.
        stage: String,
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// Container name → image, for the containers the Deployment has.
        images: BTreeMap<String, String>,
    },
    /// Restore a Deployment's captured known-good pod template, as `kubectl rollout undo` does.
    Revert {
        /// The stage it belongs to.
        stage: String,
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// The revision the template was captured from.
        revision: Option<String>,
        /// The pod template to restore.
        template: Box<PodTemplateSpec>,
        /// The Deployment's `metadata.generation` when the revert was decided: the patch applies
        /// only while its spec is unchanged, so a Deployment someone changed since is read
        /// again, never overwritten.
        generation: i64,
        /// The Release (`namespace/name`) that drove the Deployment before this release: the
        /// `relman.io/driven-by` annotation is set back to it (emptied when `None`).
        driver: Option<String>,
    },
    /// Mark a Deployment's current revision known-good: merge-patch `annotations` onto the
    /// Deployment's metadata (not its pod template, so no rollout happens).
    MarkKnownGood {
        /// The stage it belongs to.
        stage: String,
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// The revision that passed.
        revision: Option<String>,
        /// The annotations to set.
        annotations: BTreeMap<String, String>,
    },
}

/// Which check a Job performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// The optional backup before a stage's rollout.
    Backup,
    /// The smoke test (post-deploy verification) after a stage's rollout.
    SmokeTest,
}

impl JobKind {
    /// The value of the `relman.io/job-kind` label, also used in Job names.
    pub fn label(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::SmokeTest => "smoke",
        }
    }
}

/// A Kubernetes Event to record on the Release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// A CamelCase reason, the same as the history entry's event (usually an
    /// [`crate::api::reason::Reason`]).
    pub reason: String,
    /// The stage the Event is about, if any: what a reader matches on, never the message.
    pub stage: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// The type of a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Progress.
    Normal,
    /// Something failed or needs attention.
    Warning,
}
