//! The controller's wiring: the Release watch and the watches of what releases wait for
//! (Jobs, Deployments, approvals, calendars, condition gates), each mapped to the Releases it
//! wakes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::gates::KnownReleases;
use super::observe::stage_namespaces;
use super::reconcile::{error_policy, reconcile};
use super::stores::{Cache, Caches};
use crate::api::labels::{
    ANNOTATION_DRIVEN_BY, ANNOTATION_KNOWN_GOOD_RELEASE, ANNOTATION_REVERTED_BY, LABEL_RELEASE,
    LABEL_RELEASE_NAMESPACE,
};
use crate::api::{Release, ReleaseApproval, ReleaseCalendar, ReleasePolicy};
use crate::error::Result;
use crate::k8s::scope::{Scope, watch_in};
use crate::k8s::{self};

/// Runs the controller until `shutdown` completes. With a list of namespaces in `scope` it
/// reconciles only the Releases of those namespaces and watches Releases, Jobs, Deployments
/// and approvals with one watch per namespace, so it needs `list` and `watch` only there.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let client = ctx.client.clone();
    // Fail fast, with the fix, when the CRDs are not installed.
    for releases in scope.apis::<Release>(&client) {
        releases
            .list(&ListParams::default().limit(1))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, namespace = releases.namespace().unwrap_or("*"),
                    "cannot list Releases: are relman's CRDs installed (kubectl apply -f crds/) and may relman list them there?");
                e
            })?;
    }
    tracing::info!(namespaces = %scope, "reconciling Releases");

    // One Release watch, resumed with a fresh list when the API server lost its version (see
    // `k8s::watch`). Besides waking the Release itself, a Release that changes or goes away
    // (e.g. finishes) may free a Deployment another Release waits for: those are woken too.
    let writer = reflector::store::Writer::<Release>::default();
    let store = writer.as_reader();
    let (sharing, shared) = futures::channel::mpsc::unbounded();
    let sharing_store = store.clone();
    let gone = ctx.clone();
    let release_events = reflector(
        writer,
        watch_in(
            &client,
            &scope,
            watcher::Config::default().any_semantic(),
            store.clone(),
        )
        .modify(slim_release),
    )
    .inspect(move |event| {
        // Only a Release that finished or went away frees a Deployment; looking at every
        // other Release on every change made a burst of N new Releases cost N² comparisons.
        let freed = match event {
            Ok(watcher::Event::Apply(changed)) if changed.is_finished() => Some(changed),
            Ok(watcher::Event::Delete(changed)) => Some(changed),
            _ => None,
        };
        if let Some(changed) = freed {
            for other in releases_sharing_a_deployment(&sharing_store.state(), changed) {
                let _ = sharing.unbounded_send(other);
            }
        }
        // What was remembered for a Release goes with it.
        if let Ok(watcher::Event::Delete(deleted)) = event {
            let uid = deleted.uid().unwrap_or_default();
            gone.memos.denials.allowed(&uid);
            gone.memos.taken_jobs.forget(&uid);
        }
    })
    .applied_objects()
    // Only a new generation (a spec change) or a Release seen for the first time wakes the
    // Release itself: its status writes, relman's own or the notifier's, do not. Each step
    // that must follow a status write asks for it (`Plan::requeue_after`), and what a release
    // waits for (Deployments, Jobs, approvals, calendars, gates) wakes it through the watches
    // below. Half of all reconciles were relman answering its own status writes.
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let controller = Controller::for_stream(release_events, store.clone())
        .trigger_backoff(k8s::watch::NoTriggerPause);
    ctx.watch_store(&store);
    if let Ok(mut known) = ctx.known_releases.write() {
        *known = KnownReleases::from_store(store.clone());
    }
    ctx.gate_watches.set_releases(store.clone());
    let (jobs, job_events) = Cache::<Job>::watch(
        &client,
        &scope,
        watcher::Config::default().labels(LABEL_RELEASE),
    );
    let (approvals, approval_events) =
        Cache::<ReleaseApproval>::watch(&client, &scope, watcher::Config::default());
    let (deployments, deployment_events) = Cache::<Deployment>::watch(
        &client,
        &scope,
        watcher::Config::default().labels(LABEL_RELEASE),
    );
    let (policies, policy_events) =
        Cache::<ReleasePolicy>::watch(&client, &scope, watcher::Config::default());
    // Cluster-scoped, so watched cluster-wide even when only some namespaces are served.
    let (admission_policies, admission_policy_events) = Cache::watch_cluster(
        Api::<ValidatingAdmissionPolicy>::all(client.clone()),
        watcher::Config::default(),
    );
    let (bindings, binding_events) = Cache::watch_cluster(
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()),
        watcher::Config::default(),
    );
    if let Ok(mut caches) = ctx.caches.write() {
        *caches = Caches {
            scope: scope.clone(),
            jobs: Some(jobs),
            approvals: Some(approvals),
            deployments: Some(deployments),
            policies: Some(policies),
            admission: Some((admission_policies, bindings)),
        };
    }
    let policy_store = store.clone();
    let default_policy = ctx.default_policy.clone();
    // An admission policy or binding that appears, changes or goes away may trust or distrust
    // the approvals of any namespace: it wakes every unfinished Release (they are rare changes).
    let admission_store = store.clone();
    let binding_store = store.clone();
    let unfinished = |store: &reflector::Store<Release>| {
        store
            .state()
            .iter()
            .filter(|r| !r.is_finished())
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect::<Vec<_>>()
    };
    let calendar_store = store.clone();
    let calendar_generations = GenerationMemory::default();
    controller
        .reconcile_on(shared)
        .watches_stream(job_events, |job| release_from_labels(&job))
        .watches_stream(deployment_events, |deployment| {
            releases_of_deployment(&deployment)
        })
        .watches_stream(approval_events, |approval| {
            approval
                .namespace()
                .map(|ns| ObjectRef::new(&approval.spec.release).within(&ns))
        })
        .watches_stream(admission_policy_events, move |_| {
            unfinished(&admission_store)
        })
        .watches_stream(binding_events, move |_| unfinished(&binding_store))
        .watches_stream(
            touched(
                Api::<ReleaseCalendar>::all(client.clone()),
                watcher::Config::default(),
            ),
            move |calendar| {
                // Only a change of the calendar's spec can change a window; its status writes
                // (every open/close) must not wake every Release that names it.
                if !calendar_generations.changed(&calendar) {
                    return Vec::new();
                }
                let name = calendar.name_any();
                calendar_store
                    .state()
                    .iter()
                    .filter(|r| r.spec.calendar.as_deref() == Some(name.as_str()))
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A namespace's policy changed: the unfinished Releases deploying there see it now
        // (all of them when it is the cluster default).
        .watches_stream(policy_events, move |policy| {
            let namespace = policy.namespace().unwrap_or_default();
            let is_default = default_policy
                .as_ref()
                .is_some_and(|(ns, name)| *ns == namespace && *name == policy.name_any());
            policy_store
                .state()
                .iter()
                .filter(|r| !r.is_finished())
                .filter(|r| {
                    is_default
                        || stage_namespaces(r, &r.namespace().unwrap_or_default())
                            .contains(&namespace)
                })
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        // A condition a gate waits for flipped on another object.
        .reconcile_on(ctx.gate_watches.wakeups())
        // A new leader reconciles every Release: the standby skipped them all.
        .reconcile_all_on(ctx.leadership.gained())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((release, _)) => tracing::debug!(%release, "reconciled"),
                Err(e) => k8s::watch::log_controller_error("release", &e),
            }
        })
        .await;
    Ok(())
}

/// Drops what the controller never reads from the copy of a Release its store keeps: the
/// managed fields (kubectl's, relman's status, the notifier's) and the copy of the whole
/// manifest `kubectl apply` leaves in an annotation. Together they can double a Release's size.
fn slim_release(release: &mut Release) {
    release.metadata.managed_fields = None;
    if let Some(annotations) = release.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The objects of `api` that change or go away, for `Controller::watches_stream`: a watch that
/// survives API server restarts ([`k8s::watch`]), with backoff.
fn touched<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    k8s::watch::watch(api, config)
        .default_backoff()
        .touched_objects()
}

/// The last `metadata.generation` seen per object, to tell spec changes from status writes.
#[derive(Default)]
struct GenerationMemory(Mutex<HashMap<String, Option<i64>>>);

impl GenerationMemory {
    /// Whether `object`'s generation differs from the one seen last (true the first time).
    fn changed<K: Resource>(&self, object: &K) -> bool {
        let key = object
            .meta()
            .uid
            .clone()
            .unwrap_or_else(|| object.name_any());
        let generation = object.meta().generation;
        match self.0.lock() {
            Ok(mut seen) => seen.insert(key, generation) != Some(generation),
            Err(_) => true,
        }
    }
}

/// The other unfinished Releases that name one of `changed`'s Deployments.
fn releases_sharing_a_deployment(
    releases: &[Arc<Release>],
    changed: &Release,
) -> Vec<ObjectRef<Release>> {
    let deployments = |r: &Release| -> Vec<(String, String)> {
        let ns = r.namespace().unwrap_or_default();
        r.spec
            .stages
            .iter()
            .flat_map(|s| {
                let ns = s.namespace_or(&ns).to_owned();
                s.deployments.iter().map(move |d| (ns.clone(), d.0.clone()))
            })
            .collect()
    };
    let mine = deployments(changed);
    releases
        .iter()
        .filter(|r| r.uid() != changed.uid() && !r.is_finished())
        .filter(|r| deployments(r).iter().any(|d| mine.contains(d)))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The Release named by a Job's labels.
fn release_from_labels(job: &Job) -> Option<ObjectRef<Release>> {
    let labels = job.labels();
    let namespace = labels.get(LABEL_RELEASE_NAMESPACE)?;
    // The release label may be shortened to 63 characters; the annotation on the Job's owner
    // reference is not available across namespaces, so the label is the reference.
    Some(ObjectRef::new(labels.get(LABEL_RELEASE)?).within(namespace))
}

/// The Releases a change of a driven Deployment concerns: the one that drives it (its
/// `relman.io/driven-by` annotation), the one whose revision it last marked known-good
/// (`relman.io/known-good-release`, `namespace/name@version`) and the one that last reverted it
/// (`relman.io/reverted-by`). When a newer Release rolls out to the Deployment, the second is
/// the release it supersedes, which then says so; a revert hands the Deployment back to its
/// previous driver, and the third still hears of the revert's rollout.
fn releases_of_deployment(deployment: &Deployment) -> Vec<ObjectRef<Release>> {
    let annotations = deployment.annotations();
    let driver = annotations.get(ANNOTATION_DRIVEN_BY).map(String::as_str);
    let reverter = annotations.get(ANNOTATION_REVERTED_BY).map(String::as_str);
    let known_good = annotations
        .get(ANNOTATION_KNOWN_GOOD_RELEASE)
        .and_then(|value| value.split_once('@'))
        .map(|(release, _)| release);
    let mut out: Vec<ObjectRef<Release>> = Vec::new();
    for (namespace, name) in [driver, known_good, reverter]
        .into_iter()
        .flatten()
        .filter_map(|value| value.split_once('/'))
    {
        let reference = ObjectRef::new(name).within(namespace);
        if !out.contains(&reference) {
            out.push(reference);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ReleaseStatus;
    use crate::api::release::ReleasePhase;

    fn calendar(generation: i64) -> ReleaseCalendar {
        let mut calendar: ReleaseCalendar = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "ReleaseCalendar",
            "metadata": {"name": "q4", "uid": "u-1"},
            "spec": {}
        }))
        .expect("valid calendar");
        calendar.metadata.generation = Some(generation);
        calendar
    }

    #[test]
    fn generation_memory_tells_spec_changes_from_status_writes() {
        let memory = GenerationMemory::default();
        assert!(
            memory.changed(&calendar(1)),
            "first sight counts as a change"
        );
        assert!(
            !memory.changed(&calendar(1)),
            "a status write keeps the generation"
        );
        assert!(memory.changed(&calendar(2)), "a spec edit bumps it");
    }

    #[test]
    fn releases_sharing_a_deployment_are_found_unless_finished() {
        let release = |name: &str, deployment: &str, phase: Option<ReleasePhase>| {
            let mut r: Release = serde_json::from_value(json!({
                "apiVersion": "relman.io/v1alpha1", "kind": "Release",
                "metadata": {"name": name, "namespace": "shop", "uid": name},
                "spec": {"application": "web", "version": "1.0.0", "type": "Patch", "owner": "o",
                    "images": [{"container": "api", "image": "web:1"}],
                    "stages": [{"name": "staging", "deployments": [deployment]}]}
            }))
            .expect("valid release");
            r.status = phase.map(|p| ReleaseStatus {
                phase: Some(p),
                ..Default::default()
            });
            Arc::new(r)
        };
        let changed = release("a", "web", Some(ReleasePhase::RolledBack));
        let all = vec![
            changed.clone(),
            release("waiting", "web", Some(ReleasePhase::Pending)),
            release("done", "web", Some(ReleasePhase::Succeeded)),
            release("other", "api", None),
        ];
        let found = releases_sharing_a_deployment(&all, &changed);
        assert_eq!(found, vec![ObjectRef::new("waiting").within("shop")]);
    }
}
