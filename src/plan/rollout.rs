//! Reading a Deployment's rollout the way `kubectl rollout status` does, and comparing what it
//! runs with what a release or its known-good state asks for.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::observed::{ObservedDeployment, PodProblem, template_images};
use crate::api::release::ImageSpec;

/// Where a Deployment's rollout is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutProgress {
    /// Every replica runs the current template and is available; no old replica is left.
    Complete,
    /// Still rolling; the message says what it waits for.
    InProgress(String),
    /// The Deployment controller gave up: its Progressing condition has the reason
    /// ProgressDeadlineExceeded.
    DeadlineExceeded(String),
}

/// The rollout status of `deployment`, with `kubectl rollout status` semantics.
pub fn rollout_progress(deployment: &ObservedDeployment) -> RolloutProgress {
    let name = &deployment.name;
    if deployment.observed_generation < deployment.generation {
        return RolloutProgress::InProgress(format!(
            "waiting for the Deployment controller to observe {name}'s new spec"
        ));
    }
    if let Some(progressing) = deployment.conditions.iter().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return RolloutProgress::DeadlineExceeded(format!(
            "Deployment {name} exceeded its progress deadline: {}",
            progressing.message.as_deref().unwrap_or("no progress")
        ));
    }
    let desired = deployment.desired_replicas;
    if deployment.updated_replicas < desired {
        return RolloutProgress::InProgress(format!(
            "{name}: {} of {desired} new replicas updated",
            deployment.updated_replicas
        ));
    }
    if deployment.replicas > deployment.updated_replicas {
        return RolloutProgress::InProgress(format!(
            "{name}: {} old replicas pending termination",
            deployment.replicas - deployment.updated_replicas
        ));
    }
    if deployment.available_replicas < deployment.updated_replicas {
        return RolloutProgress::InProgress(format!(
            "{name}: {} of {} updated replicas available",
            deployment.available_replicas, deployment.updated_replicas
        ));
    }
    RolloutProgress::Complete
}

/// The release's images for the containers `template` has: what a rollout sets. Empty when
/// the Deployment has none of the release's containers.
pub fn images_to_roll_out(
    template: &PodTemplateSpec,
    images: &[ImageSpec],
) -> BTreeMap<String, String> {
    let current = template_images(template);
    images
        .iter()
        .filter(|i| current.contains_key(&i.container))
        .map(|i| (i.container.clone(), i.image.clone()))
        .collect()
}

/// Whether `template` runs the release's image in every container of the release it has.
pub fn runs_release_images(template: &PodTemplateSpec, images: &[ImageSpec]) -> bool {
    let current = template_images(template);
    images.iter().all(|i| {
        current
            .get(&i.container)
            .is_none_or(|image| *image == i.image)
    })
}

/// Whether `template` runs what `known_good` ran.
///
/// Only the images are compared: they are all a release changes, and comparing whole
/// templates would see defaulting or a mutating webhook as a difference and revert forever.
pub fn runs_known_good(template: &PodTemplateSpec, known_good: &PodTemplateSpec) -> bool {
    template_images(template) == template_images(known_good)
}

/// Whether pods that cannot start fail a check yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodProblems<'a> {
    /// No pod has a problem.
    None,
    /// This problem has lasted longer than the grace period: the check fails.
    Lasting(&'a PodProblem),
    /// Problems exist; the first outlasts the grace period at this moment.
    GraceUntil(DateTime<Utc>),
}

/// Judges `problems` at `now` against a `grace` period.
pub fn judge_pod_problems(
    problems: &[PodProblem],
    grace: std::time::Duration,
    now: DateTime<Utc>,
) -> PodProblems<'_> {
    let deadline = |p: &PodProblem| crate::api::time::add(p.since, grace);
    if let Some(lasting) = problems.iter().find(|p| deadline(p) <= now) {
        return PodProblems::Lasting(lasting);
    }
    match problems.iter().map(deadline).min() {
        Some(first) => PodProblems::GraceUntil(first),
        None => PodProblems::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentCondition;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(images: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|(name, image)| Container {
                        name: (*name).into(),
                        image: Some((*image).into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn image(container: &str, image: &str) -> ImageSpec {
        ImageSpec {
            container: container.into(),
            image: image.into(),
        }
    }

    fn settled() -> ObservedDeployment {
        ObservedDeployment {
            name: "api".into(),
            generation: 2,
            observed_generation: 2,
            desired_replicas: 3,
            replicas: 3,
            updated_replicas: 3,
            ready_replicas: 3,
            available_replicas: 3,
            ..Default::default()
        }
    }

    #[test]
    fn rollout_status_like_kubectl() {
        assert_eq!(rollout_progress(&settled()), RolloutProgress::Complete);
        let cases = [
            ObservedDeployment {
                observed_generation: 1,
                ..settled()
            },
            ObservedDeployment {
                updated_replicas: 1,
                ..settled()
            },
            ObservedDeployment {
                replicas: 4,
                ..settled()
            },
            ObservedDeployment {
                available_replicas: 2,
                ..settled()
            },
        ];
        for case in cases {
            assert!(matches!(
                rollout_progress(&case),
                RolloutProgress::InProgress(_)
            ));
        }
        let stuck = ObservedDeployment {
            updated_replicas: 1,
            conditions: vec![DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("False".into()),
                reason: Some("ProgressDeadlineExceeded".into()),
                ..Default::default()
            }],
            ..settled()
        };
        assert!(matches!(
            rollout_progress(&stuck),
            RolloutProgress::DeadlineExceeded(_)
        ));
    }

    #[test]
    fn compares_images_only_of_the_release_containers() {
        let images = [image("api", "api:2"), image("sidecar", "sc:2")];
        let old = template(&[("api", "api:1"), ("proxy", "envoy")]);
        assert_eq!(
            images_to_roll_out(&old, &images),
            BTreeMap::from([("api".to_owned(), "api:2".to_owned())])
        );
        assert!(!runs_release_images(&old, &images));
        let new = template(&[("api", "api:2"), ("proxy", "envoy")]);
        assert!(runs_release_images(&new, &images));
        assert!(runs_known_good(&old, &old.clone()));
        assert!(!runs_known_good(&new, &old));
        assert!(images_to_roll_out(&template(&[("web", "w")]), &images).is_empty());
    }

    #[test]
    fn pod_problems_fail_after_their_grace() {
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        let problem = |since| PodProblem {
            pod: "p".into(),
            reason: super::super::observed::PodProblemReason::ImagePullBackOff,
            message: String::new(),
            since: at(since),
        };
        let grace = std::time::Duration::from_secs(60);
        assert_eq!(judge_pod_problems(&[], grace, at(100)), PodProblems::None);
        assert_eq!(
            judge_pod_problems(&[problem(50), problem(70)], grace, at(100)),
            PodProblems::GraceUntil(at(110))
        );
        assert!(matches!(
            judge_pod_problems(&[problem(40)], grace, at(100)),
            PodProblems::Lasting(_)
        ));
    }
}
