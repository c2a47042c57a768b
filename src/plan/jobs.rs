//! The backup and smoke-test Jobs: their deterministic names and how they are built from a
//! stage's Job template.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::action::JobKind;
use crate::api::Release;
use crate::api::labels::{
    LABEL_ATTEMPT, LABEL_JOB_KIND, LABEL_RELEASE, LABEL_RELEASE_NAMESPACE, LABEL_RELEASE_UID,
    LABEL_STAGE,
};

/// The longest name (and label value) Kubernetes accepts for a Job: its name is copied into
/// the `job-name` label of its pods.
const MAX_NAME: usize = 63;

/// The name of a check's Job: `<release>-<stage>-<kind>-<attempt>`, e.g.
/// `checkout-2-3-0-staging-smoke-1`, shortened with a hash when longer than 63 characters.
/// The same inputs always give the same name, which is how a restarted controller finds the
/// Job it already created.
pub fn job_name(release: &str, stage: &str, kind: JobKind, attempt: u32) -> String {
    fit_name(&format!("{release}-{stage}-{}-{attempt}", kind.label()))
}

/// `name` if it has at most 63 characters; otherwise its first characters, a `-` and eight
/// hex digits of a stable hash of the whole name, 63 characters in all, ending with a letter
/// or digit.
pub fn fit_name(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_owned();
    }
    let hash = format!("{:08x}", fnv1a_32(name.as_bytes()));
    let keep = MAX_NAME - hash.len() - 1;
    let prefix: String = name.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// FNV-1a: tiny, and stable across Rust versions and platforms (unlike `DefaultHasher`).
fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The labels of a check's Job (and of its pods).
pub fn job_labels(
    release: &Release,
    stage: &str,
    kind: JobKind,
    attempt: u32,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            LABEL_RELEASE.to_owned(),
            fit_name(release.meta().name.as_deref().unwrap_or_default()),
        ),
        (
            LABEL_RELEASE_NAMESPACE.to_owned(),
            release.meta().namespace.clone().unwrap_or_default(),
        ),
        (
            LABEL_RELEASE_UID.to_owned(),
            release.meta().uid.clone().unwrap_or_default(),
        ),
        (LABEL_STAGE.to_owned(), stage.to_owned()),
        (LABEL_ATTEMPT.to_owned(), attempt.to_string()),
        (LABEL_JOB_KIND.to_owned(), kind.label().to_owned()),
    ])
}

/// The Job to create for a check: the template's spec, named [`job_name`], in the stage's
/// `namespace` whatever the template says, labelled with [`job_labels`] (on the Job and its
/// pods), and owned by the Release when they share a namespace (owner references cannot
/// cross namespaces).
pub fn build_job(
    release: &Release,
    stage: &str,
    namespace: &str,
    kind: JobKind,
    attempt: u32,
    template: &JobTemplateSpec,
) -> Job {
    let release_name = release.meta().name.clone().unwrap_or_default();
    let labels = job_labels(release, stage, kind, attempt);
    let template_meta = template.metadata.clone().unwrap_or_default();

    let mut job_labels_all = template_meta.labels.unwrap_or_default();
    job_labels_all.extend(labels.clone());

    let mut spec = template.spec.clone().unwrap_or_default();
    let pod_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels);
    // Pod templates may not carry these; the Job controller fills them in.
    pod_meta.name = None;
    pod_meta.namespace = None;

    let owner = (release.meta().namespace.as_deref() == Some(namespace))
        .then(|| release.meta().uid.clone())
        .flatten()
        .map(|uid| {
            vec![OwnerReference {
                api_version: Release::api_version(&()).into_owned(),
                kind: Release::kind(&()).into_owned(),
                name: release_name.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(false),
            }]
        });

    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&release_name, stage, kind, attempt)),
            namespace: Some(namespace.to_owned()),
            labels: Some(job_labels_all),
            annotations: template_meta.annotations,
            owner_references: owner,
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Stops `job` when its check's `timeout` runs out: `spec.activeDeadlineSeconds` becomes the
/// timeout (in whole seconds, at least 1), unless the template asks for less. A check that
/// timed out then no longer runs beside the revert it caused.
pub fn set_deadline(job: &mut Job, timeout: std::time::Duration) {
    let limit = i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX);
    let spec = job.spec.get_or_insert_with(Default::default);
    spec.active_deadline_seconds = Some(
        spec.active_deadline_seconds
            .filter(|&own| own > 0)
            .map_or(limit, |own| own.min(limit)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    #[test]
    fn names_are_deterministic_and_fit() {
        assert_eq!(
            job_name("checkout", "staging", JobKind::SmokeTest, 1),
            "checkout-staging-smoke-1"
        );
        let long = "a".repeat(60);
        let name = job_name(&long, "production", JobKind::Backup, 2);
        assert_eq!(name.len(), 63);
        assert_eq!(name, job_name(&long, "production", JobKind::Backup, 2));
        assert_ne!(name, job_name(&long, "production", JobKind::Backup, 3));
        assert!(name.chars().last().unwrap().is_ascii_alphanumeric());
        // A cut that lands on a '-' does not leave "--".
        let dashed = format!("{}-{}", "b".repeat(53), "c".repeat(20));
        assert!(!fit_name(&dashed).contains("--"));
    }

    #[test]
    fn a_template_cannot_escape_the_stage_namespace() {
        let release = Release {
            metadata: ObjectMeta {
                name: Some("checkout".into()),
                namespace: Some("apps".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: serde_json::from_value(serde_json::json!({
                "application": "checkout", "version": "1.0.0", "type": "Patch", "owner": "me",
                "images": [{"container": "api", "image": "api:1"}],
                "stages": [{"name": "staging", "deployments": ["api"]}]
            }))
            .unwrap(),
            status: None,
        };
        let template = JobTemplateSpec {
            metadata: Some(ObjectMeta {
                name: Some("evil".into()),
                namespace: Some("kube-system".into()),
                labels: Some(BTreeMap::from([
                    ("team".to_owned(), "payments".to_owned()),
                    (LABEL_STAGE.to_owned(), "spoofed".to_owned()),
                ])),
                ..Default::default()
            }),
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "smoke".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
        };
        let job = build_job(&release, "staging", "stg", JobKind::SmokeTest, 1, &template);
        assert_eq!(job.metadata.namespace.as_deref(), Some("stg"));
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("checkout-staging-smoke-1")
        );
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "payments");
        assert_eq!(labels[LABEL_STAGE], "staging");
        assert_eq!(labels[LABEL_JOB_KIND], "smoke");
        assert_eq!(labels[LABEL_ATTEMPT], "1");
        assert_eq!(labels[LABEL_RELEASE_UID], "uid-1");
        // Different namespace from the Release: no owner reference.
        assert!(job.metadata.owner_references.is_none());
        let pod_labels = job
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap();
        assert_eq!(
            pod_labels.labels.as_ref().unwrap()[LABEL_RELEASE],
            "checkout"
        );

        let owned = build_job(&release, "staging", "apps", JobKind::Backup, 1, &template);
        let owner = &owned.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Release", "uid-1")
        );
    }

    #[test]
    fn a_job_stops_when_its_check_times_out() {
        let mut job = Job::default();
        set_deadline(&mut job, std::time::Duration::from_secs(300));
        assert_eq!(
            job.spec.as_ref().unwrap().active_deadline_seconds,
            Some(300)
        );
        // A shorter deadline of the template's own is kept; a longer one is cut.
        set_deadline(&mut job, std::time::Duration::from_secs(600));
        assert_eq!(
            job.spec.as_ref().unwrap().active_deadline_seconds,
            Some(300)
        );
        set_deadline(&mut job, std::time::Duration::from_millis(10));
        assert_eq!(job.spec.as_ref().unwrap().active_deadline_seconds, Some(1));
    }
}
