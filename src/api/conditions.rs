//! The Release's conditions: their types, and the one way to set them.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::time::to_k8s_time;

/// kstatus: True only when every stage is verified.
pub const READY: &str = "Ready";
/// kstatus: True while relman is making progress or waiting for a gate.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: True when the release cannot go on without a person.
pub const STALLED: &str = "Stalled";
/// The requirements were met before the first stage.
pub const REQUIREMENTS_MET: &str = "RequirementsMet";
/// The sign-off a stage asks for was given.
pub const APPROVED: &str = "Approved";
/// The calendar's deployment window is open for the stage that waits for it.
pub const WINDOW_OPEN: &str = "WindowOpen";
/// A revert to the last known-good revision happened.
pub const ROLLED_BACK: &str = "RolledBack";
/// Another Release drives one of the Deployments this succeeded release changed. Set only
/// once it holds; a superseded release stays `Ready`.
pub const SUPERSEDED: &str = "Superseded";
/// One of the Deployments this succeeded release still drives runs other images than the
/// release's (changed by hand or by a GitOps sync). Set only once it holds.
pub const DRIFTED: &str = "Drifted";

/// The `<Stage>Deployed` condition type of a stage: `StagingDeployed`, `ProductionDeployed`,
/// or the CamelCase stage name followed by `Deployed` (`canary-eu` → `CanaryEuDeployed`).
pub fn stage_deployed(stage: &str) -> String {
    format!("{}Deployed", camel_case(stage))
}

/// The `<Stage>Verified` condition type of a stage, see [`stage_deployed`].
pub fn stage_verified(stage: &str) -> String {
    format!("{}Verified", camel_case(stage))
}

/// `canary-eu.1` → `CanaryEu1`: a stage name as the first word of a condition type.
pub fn camel_case(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Whether a condition holds, as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// "True".
    True,
    /// "False".
    False,
}

impl Status {
    /// "True" when `holds`.
    pub fn from_bool(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
        }
    }
}

/// Sets the condition `type_` in `conditions`, appending it when absent.
///
/// `lastTransitionTime` moves to `now` only when the status flips (or the condition is new):
/// a condition whose reason or message changes keeps its transition time, as the API
/// conventions ask. `observedGeneration` is always the generation this status describes.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let status = status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.status = status.to_owned();
                existing.last_transition_time = to_k8s_time(now);
            }
            reason.clone_into(&mut existing.reason);
            message.clone_into(&mut existing.message);
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time: to_k8s_time(now),
        }),
    }
}

/// The condition `type_`, if set.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn stage_condition_types() {
        assert_eq!(stage_deployed("staging"), "StagingDeployed");
        assert_eq!(stage_verified("production"), "ProductionVerified");
        assert_eq!(stage_deployed("canary-eu"), "CanaryEuDeployed");
        assert_eq!(camel_case("a.b-c1"), "ABC1");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            READY,
            Status::False,
            "Progressing",
            "a",
            Some(1),
            at(10),
        );
        assert_eq!(conditions[0].last_transition_time, to_k8s_time(at(10)));

        set_condition(
            &mut conditions,
            READY,
            Status::False,
            "Other",
            "b",
            Some(2),
            at(20),
        );
        assert_eq!(conditions[0].last_transition_time, to_k8s_time(at(10)));
        assert_eq!(conditions[0].reason, "Other");
        assert_eq!(conditions[0].message, "b");
        assert_eq!(conditions[0].observed_generation, Some(2));

        set_condition(
            &mut conditions,
            READY,
            Status::True,
            "Succeeded",
            "c",
            Some(2),
            at(30),
        );
        assert_eq!(conditions[0].last_transition_time, to_k8s_time(at(30)));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions.len(), 1);
    }
}
