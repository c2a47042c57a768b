//! Taking the planned step, and recording the plan's Events.

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Resource, ResourceExt};

use super::context::Context;
use crate::api::Release;
use crate::error::{Error, Result};
use crate::k8s::{self, deployment::Driver};
use crate::metrics::{ControllerKind, WriteKind};
use crate::plan::{Action, EventType, Plan};

/// Takes the planned step. A Deployment write's resourceVersion is remembered, so the next
/// reconcile does not plan from a cached copy older than it.
pub(super) async fn act(ctx: &Context, release: &Release, action: &Action) -> Result<()> {
    let client = &ctx.client;
    let written = |deployment: Deployment| {
        ctx.memos.written.wrote(
            &deployment.namespace().unwrap_or_default(),
            &deployment.name_any(),
            deployment.metadata.resource_version.as_deref(),
        );
    };
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    let driver = Driver {
        namespace: &namespace,
        name: &name,
    };
    let reverter = &driver;
    match action {
        Action::None => Ok(()),
        Action::CreateJob { namespace, job, .. } => {
            k8s::job::create_job(client, namespace, job).await
        }
        Action::RollOut {
            namespace,
            deployment,
            images,
            ..
        } => k8s::deployment::roll_out(client, namespace, deployment, images, &driver)
            .await
            .map(written),
        Action::Revert {
            namespace,
            deployment,
            template,
            generation,
            driver,
            ..
        } => {
            let reverted = k8s::deployment::revert_to_known_good(
                client,
                namespace,
                deployment,
                template,
                *generation,
                driver.as_deref(),
                &format!("{}/{}", reverter.namespace, reverter.name),
            )
            .await;
            if matches!(reverted, Err(Error::DeploymentChanged { .. })) {
                // Plan again from the API's copy, not from a cache that may lag the change.
                ctx.memos.written.wrote(namespace, deployment, None);
            }
            reverted.map(written)
        }
        Action::MarkKnownGood {
            namespace,
            deployment,
            annotations,
            ..
        } => k8s::deployment::mark_known_good(client, namespace, deployment, annotations)
            .await
            .map(written),
    }
}

pub(super) fn action_name(action: &Action) -> &'static str {
    match action {
        Action::None => "None",
        Action::CreateJob { .. } => "CreateJob",
        Action::RollOut { .. } => "RollOut",
        Action::Revert { .. } => "Revert",
        Action::MarkKnownGood { .. } => "MarkKnownGood",
    }
}

/// Records the plan's Events on the Release. A failure to record is logged, never fatal.
pub(super) async fn publish_events(ctx: &Context, release: &Release, plan: &Plan) {
    let reference = release.object_ref(&());
    for event in &plan.events {
        if ctx.ensure_leader().is_err() {
            return;
        }
        let type_ = match event.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        let kube_event = Event {
            type_,
            reason: event.reason.clone(),
            note: Some(event.message.chars().take(1000).collect()),
            action: action_name(&plan.action).to_owned(),
            secondary: None,
        };
        match ctx.recorder.publish(&kube_event, &reference).await {
            Ok(()) => ctx.metrics.wrote(ControllerKind::Release, WriteKind::Event),
            Err(e) => {
                tracing::warn!(error = %e, reason = %event.reason, "could not record an Event")
            }
        }
    }
}
