//! Observe: read everything the planner needs for one Release.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::caches::Caches;
use super::gate_watch::GateWatches;
use super::gates::{self, KnownReleases};
use crate::api::release::ReleasePhase;
use crate::api::{Release, ReleaseApproval};
use crate::error::{Error, Result};
use crate::k8s::ANNOTATION_DRIVEN_BY;
use crate::plan::jobs::{LABEL_RELEASE, LABEL_RELEASE_NAMESPACE, fit_name};
use crate::plan::observed::pod_problems;
use crate::plan::rollout::{RolloutProgress, rollout_progress};
use crate::plan::{
    JobState, NamespaceConsent, Observed, ObservedApproval, ObservedDeployment, ObservedJob,
    PlanConfig,
};

/// Reads the Release's Deployments, Jobs, approvals and gates. `known` is where the release
/// type check finds the application's earlier releases.
pub async fn observe(
    client: &Client,
    release: &Release,
    config: &PlanConfig,
    known: &KnownReleases,
    watches: &GateWatches,
    caches: &Caches,
    now: DateTime<Utc>,
) -> Result<Observed> {
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let namespace_consent = namespace_consent(client, release, &namespace).await?;
    let approvals = approvals(client, caches, release, &namespace).await?;
    let gates = gates::evaluate(
        client,
        release,
        &namespace,
        &namespace_consent,
        &approvals,
        known,
        watches,
        now,
    )
    .await?;
    Ok(Observed {
        deployments: deployments(client, release, &namespace, known).await?,
        jobs: jobs(client, caches, release, &namespace).await?,
        approvals,
        gates,
        namespace_consent,
        config: config.clone(),
        now,
        release: release.clone(),
    })
}

/// The namespace of each stage (the Release's own when a stage names none).
pub fn stage_namespaces(release: &Release, namespace: &str) -> BTreeSet<String> {
    release
        .spec
        .stages
        .iter()
        .map(|s| s.namespace.clone().unwrap_or_else(|| namespace.to_owned()))
        .collect()
}

/// The consent of each stage namespace other than the Release's own: one GET of the Namespace
/// each, so a Release whose stages all stay in its namespace costs nothing more. A Release that
/// was rolled back never acts again and reads none.
async fn namespace_consent(
    client: &Client,
    release: &Release,
    namespace: &str,
) -> Result<BTreeMap<String, NamespaceConsent>> {
    let mut out = BTreeMap::new();
    let rolled_back =
        release.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::RolledBack);
    if rolled_back {
        return Ok(out);
    }
    let api: Api<Namespace> = Api::all(client.clone());
    for other in stage_namespaces(release, namespace) {
        if other == namespace {
            continue;
        }
        let found = api.get_opt(&other).await?;
        let consent = NamespaceConsent::from_namespace(found.as_ref(), namespace);
        out.insert(other, consent);
    }
    Ok(out)
}

async fn deployments(
    client: &Client,
    release: &Release,
    namespace: &str,
    known: &KnownReleases,
) -> Result<Vec<ObservedDeployment>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for stage in &release.spec.stages {
        let ns = stage.namespace.as_deref().unwrap_or(namespace);
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        for name in &stage.deployments {
            if !seen.insert((ns.to_owned(), name.0.clone())) {
                continue;
            }
            let Some(deployment) = api.get_opt(&name.0).await? else {
                continue;
            };
            let mut observed = ObservedDeployment::from_deployment(&deployment, Vec::new());
            observed.driven_by_other =
                other_active_driver(client, release, &deployment, known).await?;
            // Pods are read only while a rollout is under way: that is when a pod that cannot
            // start decides the outcome.
            if matches!(rollout_progress(&observed), RolloutProgress::InProgress(_)) {
                observed.pod_problems = deployment_pod_problems(client, &deployment).await?;
            }
            out.push(observed);
        }
    }
    Ok(out)
}

/// The other Release (`namespace/name`) that drives `deployment` and has not finished, if any.
/// A driver that is gone or has reached Succeeded or RolledBack no longer holds it.
async fn other_active_driver(
    client: &Client,
    release: &Release,
    deployment: &Deployment,
    known: &KnownReleases,
) -> Result<Option<String>> {
    let Some(driver) = deployment.annotations().get(ANNOTATION_DRIVEN_BY) else {
        return Ok(None);
    };
    let Some((namespace, name)) = driver.split_once('/') else {
        return Ok(None);
    };
    if release.namespace().as_deref() == Some(namespace) && release.name_any() == name {
        return Ok(None);
    }
    let active = known
        .get(client, namespace, name)
        .await?
        .is_some_and(|other| !other.is_finished());
    Ok(active.then(|| driver.clone()))
}

async fn deployment_pod_problems(
    client: &Client,
    deployment: &Deployment,
) -> Result<Vec<crate::plan::PodProblem>> {
    let Some(selector) = deployment.spec.selector.match_labels.as_ref() else {
        return Ok(Vec::new());
    };
    let selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let ns = deployment.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.iter().flat_map(pod_problems).collect())
}

/// The Jobs of `release` in its stage namespaces: from the controller's Job cache once it has
/// listed everything, else from the API.
async fn jobs(
    client: &Client,
    caches: &Caches,
    release: &Release,
    namespace: &str,
) -> Result<Vec<ObservedJob>> {
    let release_label = fit_name(&release.name_any());
    let selector = format!("{LABEL_RELEASE}={release_label},{LABEL_RELEASE_NAMESPACE}={namespace}");
    let namespaces = stage_namespaces(release, namespace);
    let cached = caches.jobs.as_ref().and_then(|cache| {
        cache.filter(|job| {
            let labels = job.labels();
            labels.get(LABEL_RELEASE) == Some(&release_label)
                && labels.get(LABEL_RELEASE_NAMESPACE).map(String::as_str) == Some(namespace)
                && job
                    .namespace()
                    .is_some_and(|ns| namespaces.contains(ns.as_str()))
        })
    });
    let found: Vec<Job> = match cached {
        Some(jobs) => jobs.iter().map(|job| (**job).clone()).collect(),
        None => {
            let mut found = Vec::new();
            for ns in &namespaces {
                let api: Api<Job> = Api::namespaced(client.clone(), ns);
                found.extend(api.list(&ListParams::default().labels(&selector)).await?);
            }
            found
        }
    };
    let mut out = Vec::new();
    for job in found {
        let mut observed = ObservedJob::from_job(&job, Vec::new());
        if matches!(observed.state, JobState::Running { .. }) {
            let ns = job.namespace().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let params = ListParams::default().labels(&format!("job-name={}", observed.name));
            observed.pod_problems = pods
                .list(&params)
                .await?
                .items
                .iter()
                .flat_map(pod_problems)
                .collect();
        }
        out.push(observed);
    }
    Ok(out)
}

/// The approvals of `release`: from the controller's approval cache once it has listed
/// everything, else from the API.
async fn approvals(
    client: &Client,
    caches: &Caches,
    release: &Release,
    namespace: &str,
) -> Result<Vec<ObservedApproval>> {
    let name = release.name_any();
    let mine =
        |a: &ReleaseApproval| a.spec.release == name && a.namespace().as_deref() == Some(namespace);
    if let Some(cached) = caches.approvals.as_ref().and_then(|c| c.filter(mine)) {
        return Ok(cached
            .iter()
            .map(|a| ObservedApproval::from_approval(a))
            .collect());
    }
    let api: Api<ReleaseApproval> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|a| mine(a))
        .map(ObservedApproval::from_approval)
        .collect())
}
