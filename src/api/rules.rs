//! The domain rules every layer asks the same way, as methods on the API types: whether a
//! release has started or finished, which namespace a stage acts in, which stages count as
//! production. One definition each, so the planner, the controller, the notes and the metrics
//! never disagree.

use super::labels::ANNOTATION_CREATED_BY;
use super::release::{
    Release, ReleaseNotes, ReleasePhase, ReleaseStatus, Stage, StagePhase, StageStatus,
};

impl Release {
    /// Whether the release has ended for good: Succeeded or RolledBack. A finished release no
    /// longer holds the Deployments it drove.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_ref().and_then(|s| s.phase),
            Some(ReleasePhase::Succeeded | ReleasePhase::RolledBack)
        )
    }

    /// Whether a stage has started according to the stored status: from then on the spec is
    /// frozen, the requirements keep what they said and the notes are out.
    pub fn has_started(&self) -> bool {
        self.status.as_ref().is_some_and(ReleaseStatus::has_started)
    }

    /// Who created the Release, as the admission policy recorded it
    /// ([`ANNOTATION_CREATED_BY`]); `None` when it is not recorded.
    pub fn creator(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CREATED_BY))
            .map(String::as_str)
            .filter(|c| !c.is_empty())
    }
}

impl ReleaseStatus {
    /// Whether any stage has left `Pending`.
    pub fn has_started(&self) -> bool {
        self.stages.iter().any(StageStatus::has_started)
    }
}

impl StageStatus {
    /// Whether the stage has left `Pending` (a backup, a rollout or a check began).
    pub fn has_started(&self) -> bool {
        self.phase.is_some_and(|p| p != StagePhase::Pending)
    }
}

impl Stage {
    /// The namespace the stage acts in: `spec.stages[].namespace`, or `release_namespace`
    /// (the Release's own) when unset.
    pub fn namespace_or<'a>(&'a self, release_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(release_namespace)
    }
}

/// Whether `index` is a production stage: every stage after the first. The first stage is
/// staging, where the release is verified before it reaches users.
fn is_production_stage(index: usize) -> bool {
    index > 0
}

impl ReleaseNotes {
    /// Whether the notes list migration steps or state that there are none (a single item
    /// `none`, in any case). A Major release must do one or the other before staging.
    pub fn lists_migration_steps(&self) -> bool {
        self.migration_steps
            .iter()
            .any(|step| !step.trim().is_empty())
    }
}

impl ReleaseStatus {
    /// Whether the release has changed production: it captured the known-good state of a
    /// Deployment in a stage after the first. A failure then opens an incident, and the DORA
    /// metrics count the release as a change.
    pub fn changed_production(&self) -> bool {
        self.stages
            .iter()
            .enumerate()
            .filter(|(index, _)| is_production_stage(*index))
            .any(|(_, stage)| {
                stage
                    .deployments
                    .iter()
                    .any(|deployment| deployment.known_good_template.is_some())
            })
    }
}

impl super::release::ConditionStatus {
    /// The status as Kubernetes writes it in a condition: `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl super::release::JobStatus {
    /// `result` of a Job that has not finished.
    pub const RUNNING: &'static str = "Running";
    /// `result` of a Job that succeeded.
    pub const SUCCEEDED: &'static str = "Succeeded";
    /// `result` of a Job that failed or timed out.
    pub const FAILED: &'static str = "Failed";

    /// Whether the Job failed (or timed out).
    pub fn failed(&self) -> bool {
        self.result.as_deref() == Some(Self::FAILED)
    }
}
