//! The gates the planner consumes: pre-release requirements and the calendar's window.
//!
//! Requirements: the release type check (`versionType`: `spec.type` against the semver bump
//! from the application's newest release that succeeded), the built-in ones of the release
//! guide (release notes drafted, rollback plan documented, smoke tests prepared, migration
//! steps of a Major release listed) and the named ones of `spec.requirements`, met by an
//! approved ReleaseApproval of this version or by a condition on another object.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::Scope;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use super::gate_watch::{GateWatches, Lookup};
use super::memo::DryRuns;
use crate::api::release::{ConditionGate, RequirementStatus};
use crate::api::{Release, ReleaseCalendar};
use crate::calendar::CompiledCalendar;
use crate::error::Result;

use crate::api::labels::FIELD_MANAGER;
use crate::plan::jobs::build_job;
use crate::plan::pod_security::{JobLimits, template_violations};
use crate::plan::policy::{NamespacePolicy, effective_requirements};
use crate::plan::requirements::{
    REASON_REQUIREMENTS_NOT_MET, TypeCheck, VERSION_TYPE, approval_requirement,
    built_in_requirements, check_release_type, gate_status, newest_succeeded, requirements_gate,
    unmet,
};
use crate::plan::{
    ApprovalEnforcement, GateState, Gates, JobKind, NamespaceConsent, ObservedApproval,
};

/// How soon an unmet condition gate is looked at again when its kind cannot be watched (see
/// [`super::gate_watch`]); a watched gate is woken by the watch instead.
const CONDITION_GATE_RECHECK: chrono::Duration = chrono::Duration::seconds(15);

/// How long a reconcile waits for the Release store's first list before reading the API.
const STORE_READY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Evaluates the requirements and the window for `release`.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate(
    client: &Client,
    release: &Release,
    namespace: &str,
    consent: &BTreeMap<String, NamespaceConsent>,
    policies: &BTreeMap<String, NamespacePolicy>,
    approvals: &[ObservedApproval],
    enforcement: &ApprovalEnforcement,
    known: &KnownReleases,
    watches: &GateWatches,
    dry_runs: &DryRuns,
    now: DateTime<Utc>,
) -> Result<Gates> {
    let version = version_type(client, release, namespace, known).await?;
    let reason = version.reason().unwrap_or(REASON_REQUIREMENTS_NOT_MET);
    let mut details = vec![version.into_requirement()];
    details.extend(built_in_requirements(release));
    let mut recheck = None;
    for (requirement, demanded) in
        effective_requirements(&release.spec.requirements, policies.values())
    {
        // A requirement a policy demands reads its condition in the policy's namespace: the
        // namespace's owner, not the Release's author, says which object proves it.
        let lookup_namespace = demanded
            .as_ref()
            .map_or(namespace, |d| d.namespace.as_str());
        let mut status = match &requirement.condition {
            Some(gate) => {
                let (status, watched) =
                    condition_gate(client, watches, lookup_namespace, &requirement.name, gate)
                        .await?;
                if !status.met && !watched {
                    recheck = Some(now + CONDITION_GATE_RECHECK);
                }
                status
            }
            None => approval_requirement(release, &requirement.name, approvals, enforcement),
        };
        if let Some(demanded) = demanded {
            let said = status.message.take().unwrap_or_default();
            status.message = Some(format!("{said} (demanded by {})", demanded.policy));
        }
        details.push(status);
    }
    let requirements = requirements_gate(&details, reason, recheck);
    let (invalid, forbidden) =
        match invalid_jobs(client, release, namespace, consent, policies, dry_runs).await? {
            Some(JobsRefused::Invalid(message)) => (Some(message), None),
            Some(JobsRefused::Forbidden(message)) => (None, Some(message)),
            None => (None, None),
        };
    Ok(Gates {
        requirements,
        requirement_details: details,
        window: window(client, release, now).await?,
        invalid,
        forbidden,
    })
}

/// Why the API server refuses a stage's Jobs in the dry run.
enum JobsRefused {
    /// The spec is wrong: a bad template or a missing namespace.
    Invalid(String),
    /// relman's own identity may not create Jobs there.
    Forbidden(String),
}

/// Before the first stage starts, asks the API server (dry run) whether each stage's Jobs
/// could be created (once per generation and set of consenting namespaces: see `DryRuns`), so a bad Job template or a missing namespace stops the release before
/// anything changes. Once a stage has started the check is skipped: it costs one call per
/// Job. A namespace other than the Release's that has not accepted it (`consent`) gets no
/// request at all, not even a dry run; the planner stalls the release on it instead.
async fn invalid_jobs(
    client: &Client,
    release: &Release,
    namespace: &str,
    consent: &BTreeMap<String, NamespaceConsent>,
    policies: &BTreeMap<String, NamespacePolicy>,
    dry_runs: &DryRuns,
) -> Result<Option<JobsRefused>> {
    if release.has_started() {
        return Ok(None);
    }
    let accepted: Vec<&str> = consent
        .iter()
        .filter(|(_, c)| **c == NamespaceConsent::Accepted)
        .map(|(ns, _)| ns.as_str())
        .collect();
    let key = format!(
        "{}/{}/{}",
        release.uid().unwrap_or_default(),
        release.metadata.generation.unwrap_or_default(),
        accepted.join(",")
    );
    if dry_runs.passed(&key) {
        return Ok(None);
    }
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    for (index, stage) in release.spec.stages.iter().enumerate() {
        let ns = stage.namespace_or(namespace);
        if ns != namespace && consent.get(ns) != Some(&NamespaceConsent::Accepted) {
            continue;
        }
        let checks = [
            (JobKind::Backup, "backup", stage.backup.as_ref()),
            (JobKind::SmokeTest, "smokeTest", stage.smoke_test.as_ref()),
        ];
        for (kind, field, check) in checks {
            let Some(check) = check else { continue };
            let template = check.template.get();
            let policy = policies.get(ns).cloned().unwrap_or_default();
            let (level, service_accounts, _) = policy.job_limits();
            let limits = JobLimits {
                level,
                service_accounts: &service_accounts,
            };
            if !template_violations(&template, limits).is_empty() {
                // The planner refuses this template (JobNotPermitted): no request is sent for it.
                continue;
            }
            let job = build_job(release, &stage.name, ns, kind, 1, &template);
            let api: Api<Job> = Api::namespaced(client.clone(), ns);
            match api.create(&params, &job).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Ok(Some(JobsRefused::Invalid(format!(
                        "spec.stages[{index}].namespace: namespace {ns} of stage {} does not exist",
                        stage.name
                    ))));
                }
                Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
                    return Ok(Some(JobsRefused::Invalid(format!(
                        "spec.stages[{index}].{field}.template: the API server rejects the Job: {}",
                        e.message
                    ))));
                }
                Err(kube::Error::Api(e)) if e.code == 403 => {
                    return Ok(Some(JobsRefused::Forbidden(format!(
                        "spec.stages[{index}].{field}: relman may not create the stage's Job in namespace {ns}, so nothing is changed: {}. Grant relman's ServiceAccount create on jobs (batch) there (docs/install.md)",
                        e.message
                    ))));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    dry_runs.pass(key);
    Ok(None)
}

// -------------------------------------------------------------------------------------------
// The release type check
// -------------------------------------------------------------------------------------------

/// Where the release type check finds an application's earlier releases: the controller's
/// Release store (no API call), or the API server when there is no store (e.g. outside the
/// controller).
#[derive(Clone, Default)]
pub struct KnownReleases {
    store: Option<Store<Release>>,
}

impl KnownReleases {
    /// Reads the releases from the controller's reflector store.
    pub fn from_store(store: Store<Release>) -> Self {
        Self { store: Some(store) }
    }

    /// The Release `namespace/name`: from the store when it has it, else from the API (a
    /// Release created a moment ago may not have reached the store yet).
    pub async fn get(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Release>>> {
        let key = ObjectRef::new(name).within(namespace);
        if let Some(found) = self.store.as_ref().and_then(|store| store.get(&key)) {
            return Ok(Some(found));
        }
        let api: Api<Release> = Api::namespaced(client.clone(), namespace);
        Ok(api.get_opt(name).await?.map(Arc::new))
    }

    /// The Releases of `application` in `namespace`. A store is read once it has seen its first
    /// complete list, so a controller that just started never takes "no earlier release" for
    /// an answer it has not read yet.
    async fn of_application(
        &self,
        client: &Client,
        namespace: &str,
        application: &str,
    ) -> Result<Vec<Arc<Release>>> {
        // `wait_until_ready` may wake only one of several concurrent waiters, so it is bounded:
        // a store that is not ready at once is replaced by a list through the API.
        if let Some(store) = &self.store
            && tokio::time::timeout(STORE_READY_WAIT, store.wait_until_ready())
                .await
                .is_ok_and(|ready| ready.is_ok())
        {
            // Compared in place: this runs for every reconcile over every Release.
            return Ok(store.state_filter(|r| {
                r.spec.application == application
                    && r.metadata.namespace.as_deref() == Some(namespace)
            }));
        }
        let api: Api<Release> = Api::namespaced(client.clone(), namespace);
        Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect())
    }
}

/// The release type check of `release`, against the newest release of its application in
/// `namespace` that succeeded. Done until the first stage starts; afterwards the recorded
/// result stands (a later release succeeding must not change what this one was checked
/// against).
async fn version_type(
    client: &Client,
    release: &Release,
    namespace: &str,
    known: &KnownReleases,
) -> Result<TypeCheck> {
    if release.has_started() {
        let recorded = release
            .status
            .iter()
            .flat_map(|s| &s.requirements)
            .find(|r| r.name == VERSION_TYPE)
            .and_then(|r| r.message.clone());
        return Ok(TypeCheck::Met(recorded.unwrap_or_else(|| {
            "checked before the first stage started".to_owned()
        })));
    }
    let releases = known
        .of_application(client, namespace, &release.spec.application)
        .await?;
    let previous = newest_succeeded(&releases, release);
    let spec = &release.spec;
    Ok(check_release_type(
        &spec.application,
        &spec.version,
        spec.release_type,
        previous
            .as_ref()
            .map(|(name, version)| (name.as_str(), version)),
    ))
}

/// A named requirement met by a condition on another object in the Release's namespace (or a
/// cluster-scoped one). The object is read from the kind's watch when it runs; the second value
/// says so (an unwatched gate must be looked at again later).
async fn condition_gate(
    client: &Client,
    watches: &GateWatches,
    namespace: &str,
    name: &str,
    gate: &ConditionGate,
) -> Result<(RequirementStatus, bool)> {
    let Some((resource, scope)) = watches.resolve(gate).await else {
        return Ok((
            unmet(
                name,
                format!(
                    "the API server does not serve {} {}: check spec.requirements[{name}].condition",
                    gate.api_version, gate.kind
                ),
            ),
            false,
        ));
    };
    let (object, watched) = match watches.lookup(gate, &resource, &scope, namespace) {
        Lookup::Found(object) => (Some(object), true),
        Lookup::Missing => (None, true),
        Lookup::Unwatched => {
            let api: Api<DynamicObject> = match scope {
                Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
                Scope::Cluster => Api::all_with(client.clone(), &resource),
            };
            match api.get_opt(&gate.name).await {
                Ok(object) => (object.map(Arc::new), false),
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Ok((
                        unmet(
                            name,
                            format!(
                                "relman may not read {} {} (forbidden): grant it get, list and \
                                 watch on this kind (Helm value rbac.conditionGateRules)",
                                gate.kind, gate.name
                            ),
                        ),
                        false,
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok((gate_status(name, gate, object.as_deref()), watched))
}

/// The window of the release's calendar, if it names one.
async fn window(
    client: &Client,
    release: &Release,
    now: DateTime<Utc>,
) -> Result<Option<GateState>> {
    let Some(name) = release.spec.calendar.as_deref() else {
        return Ok(None);
    };
    let api: Api<ReleaseCalendar> = Api::all(client.clone());
    let Some(calendar) = api.get_opt(name).await? else {
        return Ok(Some(GateState::closed(
            "CalendarNotFound",
            format!("ReleaseCalendar {name} does not exist: create it or fix spec.calendar"),
            None,
        )));
    };
    Ok(Some(match CompiledCalendar::compile(&calendar.spec) {
        Err(e) => GateState::closed(
            "CalendarInvalid",
            format!("ReleaseCalendar {name} is invalid: {e}"),
            None,
        ),
        Ok(compiled) => {
            let status = compiled.status_at(now, release.spec.release_type);
            let reason = if status.open {
                "WindowOpen".to_owned()
            } else {
                status.reason.as_str().to_owned()
            };
            GateState {
                open: status.open,
                reason,
                message: status.message.clone(),
                next_change: status.next_change(),
            }
        }
    }))
}
