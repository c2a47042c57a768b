//! Publishing a release's notes: the ConfigMap `<release>-notes` in the Release's namespace,
//! owned by the Release, written with server-side apply only when its content changed.
//!
//! The controller calls [`publish`] after planning and before writing the status, so a
//! release never records a started production stage before its notes are out: when the
//! ConfigMap cannot be written, the reconcile fails and nothing is recorded.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Context;
use crate::api::{Release, ReleaseStatus};
use crate::error::{Error, Result};

use crate::api::labels::{FIELD_MANAGER, LABEL_RELEASE, LABEL_RELEASE_NAMESPACE};
use crate::metrics::{ControllerKind, WriteKind};
use crate::notes::{NOTES_KEY, config_map_name, notes_date, publish_due, render};
use crate::plan::jobs::fit_name;

/// The label saying who manages the notes ConfigMap.
const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Publishes the notes of `release` when `status` (the status about to be written) says they
/// are due and the ConfigMap does not hold them yet. Costs a read at most every
/// [`super::memo::NOTES_RECHECK`] per release and a write only when the notes changed;
/// records a `NotesPublished` Event when it writes.
pub(super) async fn publish(
    ctx: &Context,
    release: &Release,
    status: &ReleaseStatus,
) -> Result<()> {
    if !publish_due(status) {
        return Ok(());
    }
    let desired = desired_config_map(release, status)?;
    let name = desired.name_any();
    let namespace = desired.namespace().unwrap_or_default();
    // What relman wrote or read last stands for the ConfigMap for a while (see `memo`).
    let content = serde_json::to_string(&desired)?;
    if ctx.memos.notes.is_current(&namespace, &name, &content) {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    if api
        .get_opt(&name)
        .await?
        .is_some_and(|current| is_current(&current, &desired))
    {
        ctx.memos.notes.confirmed(&namespace, &name, &content);
        return Ok(());
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await?;
    ctx.memos.notes.confirmed(&namespace, &name, &content);
    // Counted with the planned steps: a side effect of the release, not a status write.
    ctx.metrics
        .wrote(ControllerKind::Release, WriteKind::Action);
    let event = Event {
        type_: EventType::Normal,
        reason: "NotesPublished".into(),
        note: Some(format!(
            "release notes of {} {} published in ConfigMap {namespace}/{name} (key {NOTES_KEY})",
            release.spec.application, release.spec.version
        )),
        action: "PublishNotes".into(),
        secondary: Some(desired.object_ref(&())),
    };
    match ctx.recorder.publish(&event, &release.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote(ControllerKind::Release, WriteKind::Event),
        Err(e) => tracing::warn!(error = %e, "could not record the NotesPublished Event"),
    }
    Ok(())
}

/// The notes ConfigMap as relman wants it: the rendered Markdown, relman's labels, and an owner
/// reference to the Release so it goes when the Release goes.
fn desired_config_map(release: &Release, status: &ReleaseStatus) -> Result<ConfigMap> {
    let name = release.name_any();
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let uid = release.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let started = status
        .stages
        .iter()
        .filter_map(|s| s.started_at.as_ref())
        .filter_map(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        .map(|t| t.date_naive())
        .min()
        .unwrap_or_else(|| Utc::now().date_naive());
    let markdown = render(release, &notes_date(release, started));
    let owner = OwnerReference {
        api_version: Release::api_version(&()).into_owned(),
        kind: Release::kind(&()).into_owned(),
        name: name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(false),
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(&name),
            "namespace": namespace,
            "labels": {
                LABEL_RELEASE: fit_name(&name),
                LABEL_RELEASE_NAMESPACE: namespace,
                LABEL_MANAGED_BY: FIELD_MANAGER,
            },
            "ownerReferences": [owner],
        },
        "data": { NOTES_KEY: markdown },
    }))?)
}

/// Whether `current` already holds everything relman sets on `desired`. Fields others added
/// (labels, annotations, other keys) do not count: relman leaves them alone.
fn is_current(current: &ConfigMap, desired: &ConfigMap) -> bool {
    let data_matches = desired
        .data
        .iter()
        .flatten()
        .all(|(key, value)| current.data.as_ref().and_then(|d| d.get(key)) == Some(value));
    let labels_match = desired
        .labels()
        .iter()
        .all(|(key, value)| current.labels().get(key) == Some(value));
    let owned = desired
        .owner_references()
        .iter()
        .all(|owner| current.owner_references().contains(owner));
    data_matches && labels_match && owned
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::release::{ReleasePhase, StagePhase, StageStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn release() -> Release {
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web-2-0-0", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "application": "web", "version": "2.0.0", "type": "Major", "owner": "team-web",
                "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
                "images": [{"container": "api", "image": "web:2.0.0"}],
                "stages": [{"name": "production", "deployments": ["web"]}]
            }
        }))
        .unwrap()
    }

    fn started_status() -> ReleaseStatus {
        ReleaseStatus {
            phase: Some(ReleasePhase::Progressing),
            stages: vec![StageStatus {
                name: "production".into(),
                phase: Some(StagePhase::BackingUp),
                started_at: Some(Time("2026-03-04T05:06:07Z".parse().unwrap())),
                ..StageStatus::default()
            }],
            ..ReleaseStatus::default()
        }
    }

    #[test]
    fn the_config_map_is_named_labelled_owned_and_dated_by_the_start() {
        let cm = desired_config_map(&release(), &started_status()).unwrap();
        assert_eq!(cm.name_any(), "web-2-0-0-notes");
        assert_eq!(cm.namespace().as_deref(), Some("shop"));
        assert_eq!(cm.labels()[LABEL_RELEASE], "web-2-0-0");
        let owner = &cm.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Release", "u-1")
        );
        let notes = &cm.data.as_ref().unwrap()[NOTES_KEY];
        assert!(notes.contains("- **Date:** 2026-03-04"), "{notes}");
    }

    #[test]
    fn a_config_map_with_the_same_notes_is_current_whatever_others_added() {
        let desired = desired_config_map(&release(), &started_status()).unwrap();
        let mut current = desired.clone();
        current
            .metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "web".into());
        current
            .data
            .get_or_insert_default()
            .insert("extra".into(), "kept".into());
        assert!(is_current(&current, &desired));

        let mut edited = desired.clone();
        edited
            .data
            .get_or_insert_default()
            .insert(NOTES_KEY.into(), "edited by hand".into());
        assert!(!is_current(&edited, &desired));
    }
}
