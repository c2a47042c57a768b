//! Whether a Deployment still runs the release that changed it.
//!
//! Every revert asks this first: a release reverts a Deployment only while the Deployment is
//! still driven by it (its `relman.io/driven-by` annotation names the release) and still runs
//! its images. A Deployment another Release took over, or one someone changed by hand or
//! through a GitOps sync, is left alone: reverting it would destroy a newer release or a
//! person's change. A finished release reports the same answer as its `Superseded` and
//! `Drifted` conditions.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::action::EventType;
use super::observed::{ObservedDeployment, template_images};
use super::rollout::runs_release_images;
use crate::api::ReleaseSpec;
use crate::api::conditions::{DRIFTED, SUPERSEDED, Status, find_condition, set_condition};
use crate::api::reason::Reason;
use crate::api::release::{ImageSpec, ReleaseStatus};

/// How a Deployment a release changed stands now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Driven by the release and running its images.
    Current,
    /// Another Release (`namespace/name`) drove it since.
    SupersededBy(String),
    /// No Release is marked as driving it: the marker was removed, or the release never
    /// rolled out to it.
    Unmarked,
    /// Driven by the release, but `container` runs `image`, not the release's image (a
    /// `kubectl set image`, a GitOps sync).
    Drifted {
        /// The container that changed.
        container: String,
        /// What it runs now.
        image: String,
    },
}

impl Standing {
    /// Why a revert leaves the Deployment `target` (`namespace/name`) alone; `None` when the
    /// release still drives it.
    pub fn why_left_alone(&self, target: &str) -> Option<String> {
        match self {
            Self::Current => None,
            Self::SupersededBy(other) => Some(format!(
                "{target} was left alone: Release {other} drives it now"
            )),
            Self::Unmarked => Some(format!(
                "{target} was left alone: it is not marked as driven by this release (relman.io/driven-by)"
            )),
            Self::Drifted { container, image } => Some(format!(
                "{target} was left alone: it was changed since this release rolled it out (container {container} runs {image})"
            )),
        }
    }
}

/// How `deployment` stands for the release `release` (`namespace/name`) that ships `images`.
pub fn standing(release: &str, images: &[ImageSpec], deployment: &ObservedDeployment) -> Standing {
    match deployment.driven_by.as_deref() {
        None => return Standing::Unmarked,
        Some(driver) if driver != release => return Standing::SupersededBy(driver.to_owned()),
        Some(_) => {}
    }
    let running = template_images(&deployment.template);
    images
        .iter()
        .find_map(|wanted| {
            running
                .get(&wanted.container)
                .filter(|image| **image != wanted.image)
                .map(|image| Standing::Drifted {
                    container: wanted.container.clone(),
                    image: image.clone(),
                })
        })
        .unwrap_or(Standing::Current)
}

/// Whether the release changed a Deployment whose known-good template was `known_good`: a
/// Deployment that already ran the release's images before it started was never rolled out.
pub fn release_changed(known_good: &PodTemplateSpec, images: &[ImageSpec]) -> bool {
    !runs_release_images(known_good, images)
}

/// How each Deployment the release `me` (`namespace/name`) changed stands now, once per
/// Deployment in status order, as (`namespace/name`, standing). Deployments that are gone, or
/// that already ran the release's images before it started, are not listed.
pub fn standings_of(
    me: &str,
    spec: &ReleaseSpec,
    status: &ReleaseStatus,
    deployments: &[ObservedDeployment],
) -> Vec<(String, Standing)> {
    let mut seen = BTreeSet::new();
    status
        .stages
        .iter()
        .flat_map(|s| &s.deployments)
        .filter_map(|d| {
            let known_good = d.known_good_template.as_ref()?.get();
            if !seen.insert((d.namespace.as_str(), d.name.as_str()))
                || !release_changed(&known_good, &spec.images)
            {
                return None;
            }
            let observed = deployments
                .iter()
                .find(|o| o.namespace == d.namespace && o.name == d.name)?;
            Some((
                format!("{}/{}", d.namespace, d.name),
                standing(me, &spec.images, observed),
            ))
        })
        .collect()
}

/// A transition of a finished release's standing, to record as a history entry and an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Normal or Warning.
    pub type_: EventType,
    /// `Superseded`, `Drifted` or `Current`.
    pub reason: &'static str,
    /// What changed, for people.
    pub message: String,
}

/// Sets the `Superseded` and `Drifted` conditions of a succeeded release from the standing of
/// each Deployment it changed (`namespace/name` and standing). A condition is added when it
/// first holds and kept (False) once it held; a release that was never superseded or drifted
/// carries neither. Returns the transitions, so each is recorded once.
pub fn record_standings(
    status: &mut ReleaseStatus,
    standings: &[(String, Standing)],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Transition> {
    let superseded: Vec<String> = standings
        .iter()
        .filter_map(|(target, s)| match s {
            Standing::SupersededBy(other) => Some(format!("{target} by Release {other}")),
            _ => None,
        })
        .collect();
    let drifted: Vec<String> = standings
        .iter()
        .filter_map(|(target, s)| match s {
            Standing::Drifted { container, image } => {
                Some(format!("{target} (container {container} runs {image})"))
            }
            Standing::Unmarked => Some(format!(
                "{target} (no longer marked relman.io/driven-by this release)"
            )),
            _ => None,
        })
        .collect();
    let mut transitions = Vec::new();
    let rules = [
        (
            SUPERSEDED,
            superseded,
            Reason::Superseded.as_str(),
            EventType::Normal,
            "superseded: ",
            "no newer Release drives its Deployments",
        ),
        (
            DRIFTED,
            drifted,
            Reason::Drifted.as_str(),
            EventType::Warning,
            "its Deployments no longer run its images: ",
            "its Deployments run its images again",
        ),
    ];
    for (type_, items, reason, event_type, prefix, cleared) in rules {
        let old = find_condition(&status.conditions, type_).cloned();
        let (state, reason, message) = if items.is_empty() {
            if old.is_none() {
                continue;
            }
            (Status::False, Reason::Current.as_str(), cleared.to_owned())
        } else {
            (
                Status::True,
                reason,
                format!("{prefix}{}", items.join(", ")),
            )
        };
        let changed = old
            .as_ref()
            .is_none_or(|c| c.status != state.as_str() || c.message != message);
        set_condition(
            &mut status.conditions,
            type_,
            state,
            reason,
            &message,
            generation,
            now,
        );
        if changed {
            transitions.push(Transition {
                type_: if state == Status::True {
                    event_type
                } else {
                    EventType::Normal
                },
                reason: if state == Status::True {
                    if type_ == SUPERSEDED {
                        Reason::Superseded.as_str()
                    } else {
                        Reason::Drifted.as_str()
                    }
                } else {
                    Reason::Current.as_str()
                },
                message,
            });
        }
    }
    transitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sim::{API, NEW_API_IMAGE, OLD_API_IMAGE, pod_template, settled_deployment};

    fn images() -> Vec<ImageSpec> {
        vec![ImageSpec {
            container: "api".into(),
            image: NEW_API_IMAGE.into(),
        }]
    }

    fn driven(by: Option<&str>, image: &str) -> ObservedDeployment {
        let mut d = settled_deployment("prod", API);
        d.template = pod_template(&[("api", image)]);
        d.driven_by = by.map(str::to_owned);
        d
    }

    #[test]
    fn a_deployment_is_current_only_while_driven_by_the_release_and_running_its_images() {
        let me = "apps/checkout";
        assert_eq!(
            standing(me, &images(), &driven(Some(me), NEW_API_IMAGE)),
            Standing::Current
        );
        assert_eq!(
            standing(
                me,
                &images(),
                &driven(Some("apps/checkout-3"), NEW_API_IMAGE)
            ),
            Standing::SupersededBy("apps/checkout-3".into())
        );
        assert_eq!(
            standing(me, &images(), &driven(Some(me), "reg/api:hotfix")),
            Standing::Drifted {
                container: "api".into(),
                image: "reg/api:hotfix".into()
            }
        );
        assert_eq!(
            standing(me, &images(), &driven(None, OLD_API_IMAGE)),
            Standing::Unmarked
        );
    }

    #[test]
    fn standings_add_conditions_once_and_clear_them() {
        let now = crate::plan::sim::at(crate::plan::sim::START);
        let mut status = ReleaseStatus::default();
        let current = vec![("prod/api".to_owned(), Standing::Current)];
        assert!(record_standings(&mut status, &current, Some(1), now).is_empty());
        assert!(status.conditions.is_empty(), "no condition while current");

        let superseded = vec![(
            "prod/api".to_owned(),
            Standing::SupersededBy("apps/checkout-3".into()),
        )];
        let first = record_standings(&mut status, &superseded, Some(1), now);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].reason, "Superseded");
        let condition = find_condition(&status.conditions, SUPERSEDED).unwrap();
        assert_eq!(condition.status, "True");
        assert!(condition.message.contains("apps/checkout-3"));
        assert!(
            record_standings(&mut status, &superseded, Some(1), now).is_empty(),
            "no second transition while nothing changes"
        );

        let back = record_standings(&mut status, &current, Some(1), now);
        assert_eq!(back[0].reason, "Current");
        assert_eq!(
            find_condition(&status.conditions, SUPERSEDED)
                .unwrap()
                .status,
            "False"
        );
        assert!(find_condition(&status.conditions, DRIFTED).is_none());
    }
}
