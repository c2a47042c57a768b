//! Observe: read everything the planner needs for one Release.
//!
//! Most of it comes from the controller's watch caches ([`super::stores`]); the API is asked
//! only for what a cache does not hold yet (a Deployment relman has not driven, or one whose
//! cached copy is older than relman's own last write of it), and for the pods of a rollout or
//! Job that has run for [`POD_CHECK_DELAY`](super::memo::POD_CHECK_DELAY), then at a pace that slows the longer it runs
//! without a pod problem (see [`super::memo`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::context::Context;
use super::gates::{self, KnownReleases};
use super::memo::PodCheckDue;
use super::stores::Caches;
use crate::api::release::ReleasePhase;
use crate::api::{Release, ReleaseApproval, ReleasePolicy};
use crate::error::{Error, Result};
use crate::plan::policy::{NamedPolicy, NamespacePolicy};

use crate::api::labels::{ANNOTATION_DRIVEN_BY, LABEL_RELEASE, LABEL_RELEASE_NAMESPACE};
use crate::plan::jobs::fit_name;
use crate::plan::observed::pod_problems;
use crate::plan::rollout::{RolloutProgress, rollout_progress};
use crate::plan::{
    ApprovalEnforcement, JobState, NamespaceConsent, Observed, ObservedApproval,
    ObservedDeployment, ObservedJob, PodProblem,
};

/// What one observation found, and when the pods it did not list yet are due a look.
pub struct Observation {
    /// The planner's input.
    pub observed: Observed,
    /// Reconcile again after this long at the latest: a rollout or Job is running whose pods
    /// were not listed yet (or not lately).
    pub pods_recheck: Option<Duration>,
}

/// Reads the Release's Deployments, Jobs, approvals and gates, mostly from `ctx`'s caches.
pub async fn observe(ctx: &Context, release: &Release, now: DateTime<Utc>) -> Result<Observation> {
    let client = &ctx.client;
    let caches = ctx.caches();
    let known = ctx.known_releases();
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let policies = policies(ctx, &caches, release, &namespace).await?;
    let namespace_consent = namespace_consent(client, release, &namespace, &policies).await?;
    let abort_requested_by = abort_requester(client, release, &namespace).await?;
    let approvals = approvals(client, &caches, release, &namespace).await?;
    // Nothing to count, nothing to check: a Release without approvals reads no Namespace.
    let approval_enforcement = if approvals.is_empty() {
        ApprovalEnforcement::Unchecked
    } else {
        approval_enforcement(client, &caches, &ctx.approval_policy, &namespace).await?
    };
    let gates = gates::evaluate(
        client,
        release,
        &namespace,
        &namespace_consent,
        &policies,
        &approvals,
        &approval_enforcement,
        &known,
        &ctx.gate_watches,
        &ctx.memos.dry_runs,
        now,
    )
    .await?;
    // A stage namespace whose Namespace relman may not read is one it does not manage: nothing
    // there is read either (the release stalls on that namespace's consent before any step).
    let unreachable: BTreeSet<String> = namespace_consent
        .iter()
        .filter(|(_, consent)| matches!(consent, NamespaceConsent::Unreadable { .. }))
        .map(|(ns, _)| ns.clone())
        .collect();
    let mut recheck = Recheck::default();
    let deployments = deployments(
        ctx,
        &caches,
        release,
        &namespace,
        &unreachable,
        &known,
        &mut recheck,
    )
    .await?;
    let mut jobs = jobs(
        ctx,
        &caches,
        release,
        &namespace,
        &unreachable,
        &mut recheck,
    )
    .await?;
    for taken in ctx.memos.taken_jobs.of(&release.uid().unwrap_or_default()) {
        if !jobs
            .iter()
            .any(|j| j.namespace == taken.namespace && j.name == taken.name)
        {
            jobs.push(taken);
        }
    }
    Ok(Observation {
        observed: Observed {
            deployments,
            jobs,
            approvals,
            approval_enforcement,
            gates,
            namespace_consent,
            policies,
            abort_requested_by,
            denied: ctx.memos.denials.get(&release.uid().unwrap_or_default()),
            config: ctx.config.clone(),
            now,
            release: release.clone(),
        },
        pods_recheck: recheck.0,
    })
}

/// Who set `spec.abort`, read from the Release's managed fields (the controller's store drops
/// them): one GET, only while an abort is set and not yet recorded as the release's failure.
async fn abort_requester(
    client: &Client,
    release: &Release,
    namespace: &str,
) -> Result<Option<String>> {
    let status = release.status.as_ref();
    let recorded = status.is_some_and(|s| s.stages.iter().any(|s| s.failure.is_some()))
        || status.and_then(|s| s.phase) == Some(ReleasePhase::RolledBack);
    if !release.spec.abort || recorded {
        return Ok(None);
    }
    let api: Api<Release> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(&release.name_any())
        .await?
        .and_then(|fresh| abort_manager(&fresh)))
}

/// The field manager that last set `spec.abort`, how, and when, as the API server recorded it
/// in `metadata.managedFields`: e.g. `kubectl-patch (Update at 2026-12-05T10:00:00Z)`.
pub fn abort_manager(release: &Release) -> Option<String> {
    release
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.pointer("/f:spec/f:abort").is_some())
        })
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0))
        .map(|entry| {
            let manager = entry
                .manager
                .as_deref()
                .unwrap_or("an unnamed field manager");
            let operation = entry.operation.as_deref().unwrap_or("a change");
            match &entry.time {
                Some(time) => format!("field manager {manager} ({operation} at {})", time.0),
                None => format!("field manager {manager} ({operation})"),
            }
        })
}

/// The soonest pod check due.
#[derive(Default)]
struct Recheck(Option<Duration>);

impl Recheck {
    fn at_most(&mut self, after: Duration) {
        self.0 = Some(self.0.map_or(after, |current| current.min(after)));
    }
}

/// The problems of the pods that `selector` selects in `namespace`, listed only when
/// [`super::memo::PodChecks`] says a list of `key` is due.
async fn pod_problems_of(
    ctx: &Context,
    key: &str,
    namespace: &str,
    selector: &str,
    recheck: &mut Recheck,
) -> Result<Vec<PodProblem>> {
    match ctx.memos.pods.due(key) {
        PodCheckDue::Known {
            problems,
            recheck: after,
        } => {
            recheck.at_most(after);
            Ok(problems)
        }
        PodCheckDue::List => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            let problems: Vec<PodProblem> = list.items.iter().flat_map(pod_problems).collect();
            recheck.at_most(ctx.memos.pods.listed(key, &problems));
            Ok(problems)
        }
    }
}

/// The namespace of each stage (the Release's own when a stage names none).
pub fn stage_namespaces(release: &Release, namespace: &str) -> BTreeSet<String> {
    release
        .spec
        .stages
        .iter()
        .map(|s| s.namespace_or(namespace).to_owned())
        .collect()
}

/// The consent of each stage namespace other than the Release's own: one GET of the Namespace
/// each (and one of the Release's own, for the labels a policy may select it by), so a Release
/// whose stages all stay in its namespace costs nothing more. A Release that was rolled back
/// never acts again and reads none.
async fn namespace_consent(
    client: &Client,
    release: &Release,
    namespace: &str,
    policies: &BTreeMap<String, NamespacePolicy>,
) -> Result<BTreeMap<String, NamespaceConsent>> {
    let mut out = BTreeMap::new();
    let rolled_back =
        release.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::RolledBack);
    let others: Vec<String> = stage_namespaces(release, namespace)
        .into_iter()
        .filter(|other| other != namespace)
        .collect();
    if rolled_back || others.is_empty() {
        return Ok(out);
    }
    let api: Api<Namespace> = Api::all(client.clone());
    // The Release's own namespace's labels: a policy may accept Releases by them. Unreadable,
    // they are none (a selector then does not match: fail closed).
    let source_labels = match api.get_opt(namespace).await {
        Ok(found) => found.and_then(|n| n.metadata.labels).unwrap_or_default(),
        Err(kube::Error::Api(refused)) if refused.code == 403 => BTreeMap::new(),
        Err(other) => return Err(other.into()),
    };
    for other in others {
        let consent = match api.get_opt(&other).await {
            Ok(found) => NamespaceConsent::decide(
                found.as_ref(),
                &policies.get(&other).cloned().unwrap_or_default(),
                namespace,
                &source_labels,
            ),
            // A stage outside relman's reach is a state of the release, not a failed reconcile.
            Err(kube::Error::Api(refused)) if refused.code == 403 => NamespaceConsent::Unreadable {
                message: refused.message,
            },
            Err(other) => return Err(other.into()),
        };
        out.insert(other, consent);
    }
    Ok(out)
}

/// The rules of each stage namespace: its ReleasePolicies (from the cache when it covers the
/// namespace, else one list), else the cluster default, else the built-in default. A
/// namespace whose policies relman may not read is marked unreadable: the planner acts there
/// no more than where a policy refuses.
async fn policies(
    ctx: &Context,
    caches: &Caches,
    release: &Release,
    namespace: &str,
) -> Result<BTreeMap<String, NamespacePolicy>> {
    let mut out = BTreeMap::new();
    if release.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::RolledBack) {
        return Ok(out);
    }
    for stage_namespace in stage_namespaces(release, namespace) {
        let own = match read_policies(ctx, caches, &stage_namespace).await {
            Ok(own) => own,
            Err(kube::Error::Api(refused)) if refused.code == 403 => {
                out.insert(
                    stage_namespace,
                    NamespacePolicy {
                        unreadable: Some(refused.message),
                        ..Default::default()
                    },
                );
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let policy = if !own.is_empty() {
            NamespacePolicy {
                policies: own,
                ..Default::default()
            }
        } else {
            match default_policy(ctx, caches).await {
                Ok(Some(default)) => NamespacePolicy {
                    policies: vec![default],
                    cluster_default: true,
                    unreadable: None,
                },
                Ok(None) => NamespacePolicy::default(),
                Err(kube::Error::Api(refused)) if refused.code == 403 => NamespacePolicy {
                    unreadable: Some(format!(
                        "the cluster default policy cannot be read: {}",
                        refused.message
                    )),
                    ..Default::default()
                },
                Err(other) => return Err(other.into()),
            }
        };
        out.insert(stage_namespace, policy);
    }
    Ok(out)
}

/// The ReleasePolicies of `namespace`, oldest name first.
async fn read_policies(
    ctx: &Context,
    caches: &Caches,
    namespace: &str,
) -> std::result::Result<Vec<NamedPolicy>, kube::Error> {
    let found: Vec<ReleasePolicy> = match caches.policies_of(namespace) {
        Some(cached) => cached.iter().map(|p| p.as_ref().clone()).collect(),
        None => {
            let api: Api<ReleasePolicy> = Api::namespaced(ctx.client.clone(), namespace);
            api.list(&ListParams::default()).await?.items
        }
    };
    let mut named: Vec<NamedPolicy> = found
        .into_iter()
        .map(|p| NamedPolicy {
            id: format!("{namespace}/{}", p.name_any()),
            spec: p.spec,
        })
        .collect();
    named.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(named)
}

/// The cluster default policy, when one is configured and exists. A configured default that
/// does not exist governs nothing: the built-in default applies (and relman logs it).
async fn default_policy(
    ctx: &Context,
    caches: &Caches,
) -> std::result::Result<Option<NamedPolicy>, kube::Error> {
    let Some((namespace, name)) = &ctx.default_policy else {
        return Ok(None);
    };
    let found = match caches.policies_of(namespace) {
        Some(cached) => cached
            .iter()
            .find(|p| p.name_any() == *name)
            .map(|p| p.as_ref().clone()),
        None => {
            let api: Api<ReleasePolicy> = Api::namespaced(ctx.client.clone(), namespace);
            api.get_opt(name).await?
        }
    };
    if found.is_none() {
        tracing::warn!(policy = %format!("{namespace}/{name}"), "the default ReleasePolicy does not exist; the built-in default applies");
    }
    Ok(found.map(|p| NamedPolicy {
        id: format!("{namespace}/{name}"),
        spec: p.spec,
    }))
}

async fn deployments(
    ctx: &Context,
    caches: &Caches,
    release: &Release,
    namespace: &str,
    unreachable: &BTreeSet<String>,
    known: &KnownReleases,
    recheck: &mut Recheck,
) -> Result<Vec<ObservedDeployment>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for stage in &release.spec.stages {
        let ns = stage.namespace_or(namespace);
        if unreachable.contains(ns) {
            continue;
        }
        for name in &stage.deployments {
            if !seen.insert((ns.to_owned(), name.0.clone())) {
                continue;
            }
            let Some(deployment) = read_deployment(ctx, caches, ns, &name.0).await? else {
                continue;
            };
            let mut observed = ObservedDeployment::from_deployment(&deployment, Vec::new());
            observed.driven_by_other =
                other_active_driver(&ctx.client, release, &deployment, known).await?;
            // Pods are read only while the release's rollout is under way: that is when a pod
            // that cannot start decides the outcome.
            let key = format!(
                "deployment/{ns}/{}/{}",
                name.0,
                deployment.metadata.generation.unwrap_or_default()
            );
            // Only this release's own rollout: a Deployment it has not touched yet, or one
            // whose controller has not caught up (with nothing to roll), is not its concern.
            let mine = deployment.annotations().get(ANNOTATION_DRIVEN_BY)
                == Some(&format!("{namespace}/{}", release.name_any()));
            if mine && matches!(rollout_progress(&observed), RolloutProgress::InProgress(_)) {
                if let Some(selector) = pod_selector(&deployment) {
                    observed.pod_problems =
                        pod_problems_of(ctx, &key, ns, &selector, recheck).await?;
                }
            } else {
                ctx.memos.pods.finished(&key);
            }
            out.push(observed);
        }
    }
    Ok(out)
}

/// The Deployment `namespace/name`: from the cache of Deployments relman drives when its copy
/// is at least as new as relman's own last write of it, else from the API.
async fn read_deployment(
    ctx: &Context,
    caches: &Caches,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>> {
    if let Some(cached) = caches
        .deployments
        .as_ref()
        .and_then(|cache| cache.get(namespace, name))
        && ctx
            .memos
            .written
            .is_fresh(namespace, name, cached.metadata.resource_version.as_deref())
    {
        return Ok(Some((*cached).clone()));
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?)
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

/// The label selector of a Deployment's pods (`matchLabels` only).
fn pod_selector(deployment: &Deployment) -> Option<String> {
    let labels = deployment.spec.selector.match_labels.as_ref()?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The Jobs of `release` in its stage namespaces: from the controller's Job cache once it has
/// listed everything and watches every stage namespace, else from the API.
async fn jobs(
    ctx: &Context,
    caches: &Caches,
    release: &Release,
    namespace: &str,
    unreachable: &BTreeSet<String>,
    recheck: &mut Recheck,
) -> Result<Vec<ObservedJob>> {
    let client = &ctx.client;
    let release_label = fit_name(&release.name_any());
    let selector = format!("{LABEL_RELEASE}={release_label},{LABEL_RELEASE_NAMESPACE}={namespace}");
    let mut namespaces = stage_namespaces(release, namespace);
    namespaces.retain(|ns| !unreachable.contains(ns));
    // The cache holds only the watched namespaces' Jobs: a stage elsewhere is read from the API.
    let watched = namespaces.iter().all(|ns| caches.scope.contains(ns));
    let cached = caches.jobs.as_ref().filter(|_| watched).and_then(|cache| {
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
        let key = format!("job/{}", job.uid().unwrap_or_default());
        if matches!(observed.state, JobState::Running { .. }) {
            let ns = job.namespace().unwrap_or_default();
            let selector = format!("job-name={}", observed.name);
            observed.pod_problems = pod_problems_of(ctx, &key, &ns, &selector, recheck).await?;
        } else {
            ctx.memos.pods.finished(&key);
        }
        out.push(observed);
    }
    Ok(out)
}

/// Whether the ValidatingAdmissionPolicy `policy` and a binding that denies cover `namespace`
/// (see [`ApprovalEnforcement::from_policies`]): the policies and bindings from the controller's
/// caches once they have listed everything, else from the API; the Namespace's labels are read
/// (one GET) only when the policy or a binding selects namespaces by label. What relman may
/// not read (403) leaves approvals untrusted, with the API server's refusal as the reason.
async fn approval_enforcement(
    client: &Client,
    caches: &Caches,
    policy: &str,
    namespace: &str,
) -> Result<ApprovalEnforcement> {
    let cached = caches
        .admission
        .as_ref()
        .and_then(|(policies, bindings)| Some((policies.all()?, bindings.all()?)));
    let (policies, bindings): (
        Vec<ValidatingAdmissionPolicy>,
        Vec<ValidatingAdmissionPolicyBinding>,
    ) = match cached {
        Some((policies, bindings)) => (
            policies.iter().map(|p| (**p).clone()).collect(),
            bindings.iter().map(|b| (**b).clone()).collect(),
        ),
        None => {
            let (policies, bindings, all) = (
                Api::<ValidatingAdmissionPolicy>::all(client.clone()),
                Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()),
                ListParams::default(),
            );
            let listed = tokio::try_join!(policies.list(&all), bindings.list(&all));
            match listed {
                Ok((policies, bindings)) => (policies.items, bindings.items),
                Err(kube::Error::Api(refused)) if refused.code == 403 => {
                    return Ok(ApprovalEnforcement::NotEnforced {
                        reason: format!(
                            "relman may not read the admission policies that would enforce it ({})",
                            refused.message
                        ),
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    let labels = if ApprovalEnforcement::needs_namespace_labels(policy, &policies, &bindings) {
        match Api::<Namespace>::all(client.clone())
            .get_opt(namespace)
            .await
        {
            Ok(found) => Ok(found.and_then(|ns| ns.metadata.labels).unwrap_or_default()),
            Err(kube::Error::Api(refused)) if refused.code == 403 => Err(format!(
                "relman may not read the labels of namespace {namespace} that the policy's namespaceSelector needs ({})",
                refused.message
            )),
            Err(other) => return Err(other.into()),
        }
    } else {
        Ok(Default::default())
    };
    Ok(ApprovalEnforcement::from_policies(
        policy, namespace, &policies, &bindings, &labels,
    ))
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
