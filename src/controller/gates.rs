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
use semver::Version;

use super::gate_watch::{GateWatches, Lookup};
use super::memo::DryRuns;
use crate::api::release::{ConditionGate, ReleasePhase, RequirementStatus, StagePhase};
use crate::api::{Decision, Release, ReleaseCalendar, ReleaseType};
use crate::calendar::CompiledCalendar;
use crate::error::Result;

use crate::api::labels::FIELD_MANAGER;
use crate::notes::migration_steps_listed;
use crate::plan::jobs::build_job;
use crate::plan::{GateState, Gates, JobKind, NamespaceConsent, ObservedApproval};

/// The name of the release type check in `status.requirements`.
pub const VERSION_TYPE: &str = "versionType";
/// The name of the built-in requirement that a Major release lists its migration steps.
pub const MIGRATION_STEPS_LISTED: &str = "migrationStepsListed";
/// `RequirementsMet` reason: `spec.type` does not match the semver bump.
pub const REASON_VERSION_TYPE_MISMATCH: &str = "VersionTypeMismatch";
/// `RequirementsMet` reason: the version is not newer than the last release that succeeded.
pub const REASON_VERSION_NOT_NEWER: &str = "VersionNotNewer";
/// `RequirementsMet` reason for every other unmet requirement.
pub const REASON_REQUIREMENTS_NOT_MET: &str = "RequirementsNotMet";

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
    approvals: &[ObservedApproval],
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
    for requirement in &release.spec.requirements {
        let status = match &requirement.condition {
            Some(gate) => {
                let (status, watched) =
                    condition_gate(client, watches, namespace, &requirement.name, gate).await?;
                if !status.met && !watched {
                    recheck = Some(now + CONDITION_GATE_RECHECK);
                }
                status
            }
            None => approval_requirement(release, &requirement.name, approvals),
        };
        details.push(status);
    }
    let missing: Vec<String> = details
        .iter()
        .filter(|r| !r.met)
        .map(|r| match &r.message {
            Some(m) => format!("{}: {m}", r.name),
            None => r.name.clone(),
        })
        .collect();
    let requirements = if missing.is_empty() {
        GateState::open("RequirementsMet", "every pre-release requirement is met")
    } else {
        GateState::closed(reason, format!("missing: {}", missing.join("; ")), recheck)
    };
    let (invalid, forbidden) =
        match invalid_jobs(client, release, namespace, consent, dry_runs).await? {
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

/// Whether a stage of `release` has started, according to its stored status. The
/// requirements are checked only until then; afterwards `RequirementsMet` keeps what it said.
pub(super) fn has_started(release: &Release) -> bool {
    release.status.as_ref().is_some_and(|s| {
        s.stages
            .iter()
            .any(|st| st.phase.is_some_and(|p| p != StagePhase::Pending))
    })
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
    dry_runs: &DryRuns,
) -> Result<Option<JobsRefused>> {
    if has_started(release) {
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
        let ns = stage.namespace.as_deref().unwrap_or(namespace);
        if ns != namespace && consent.get(ns) != Some(&NamespaceConsent::Accepted) {
            continue;
        }
        let checks = [
            (JobKind::Backup, "backup", stage.backup.as_ref()),
            (JobKind::SmokeTest, "smokeTest", stage.smoke_test.as_ref()),
        ];
        for (kind, field, check) in checks {
            let Some(check) = check else { continue };
            let job = build_job(release, &stage.name, ns, kind, 1, &check.template.get());
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

/// The release guide's own requirements, checked from the spec alone: notes drafted, rollback
/// plan documented, smoke tests prepared, and (for a Major release) migration steps listed or
/// stated as "none".
pub fn built_in_requirements(release: &Release) -> Vec<RequirementStatus> {
    let spec = &release.spec;
    let notes = spec
        .notes
        .as_ref()
        .and_then(|n| n.summary.as_deref())
        .is_some_and(|s| !s.trim().is_empty());
    let rollback = spec
        .rollback_plan
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    let without_smoke: Vec<&str> = spec
        .stages
        .iter()
        .filter(|s| s.smoke_test.is_none())
        .map(|s| s.name.as_str())
        .collect();
    vec![
        requirement(
            "notesDrafted",
            notes,
            "spec.notes.summary is empty: draft the release notes",
        ),
        requirement(
            "rollbackPlanDocumented",
            rollback,
            "spec.rollbackPlan is empty: document how to roll back",
        ),
        requirement(
            "smokeTestsPrepared",
            without_smoke.is_empty(),
            &format!(
                "stages without spec.stages[].smokeTest: {}",
                without_smoke.join(", ")
            ),
        ),
        requirement(
            MIGRATION_STEPS_LISTED,
            spec.release_type != ReleaseType::Major
                || spec
                    .notes
                    .as_ref()
                    .is_some_and(|n| migration_steps_listed(&n.migration_steps)),
            "a Major release must list its migration steps in spec.notes.migrationSteps, or state [\"none\"]",
        ),
    ]
}

fn requirement(name: &str, met: bool, missing: &str) -> RequirementStatus {
    RequirementStatus {
        name: name.to_owned(),
        met,
        message: (!met).then(|| missing.to_owned()),
    }
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

/// The outcome of the release type check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeCheck {
    /// `spec.type` matches the bump (or this is the application's first release); why.
    Met(String),
    /// `spec.type` does not match the bump; the message names both versions.
    Mismatch(String),
    /// The version is not newer than the application's newest release that succeeded.
    NotNewer(String),
}

impl TypeCheck {
    /// The `RequirementsMet` reason when the check fails.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Met(_) => None,
            Self::Mismatch(_) => Some(REASON_VERSION_TYPE_MISMATCH),
            Self::NotNewer(_) => Some(REASON_VERSION_NOT_NEWER),
        }
    }

    /// The `versionType` row of `status.requirements`.
    pub fn into_requirement(self) -> RequirementStatus {
        let met = matches!(self, Self::Met(_));
        let (Self::Met(message) | Self::Mismatch(message) | Self::NotNewer(message)) = self;
        RequirementStatus {
            name: VERSION_TYPE.to_owned(),
            met,
            message: Some(message),
        }
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
    if has_started(release) {
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

/// The newest (highest version) release of `release`'s application among `releases` that
/// succeeded, other than `release` itself: its name and version. Pre-releases never count as
/// the previous release: a release candidate that reached production does not move the
/// baseline the final version is compared with.
pub fn newest_succeeded(releases: &[Arc<Release>], release: &Release) -> Option<(String, Version)> {
    releases
        .iter()
        .filter(|r| r.spec.application == release.spec.application)
        .filter(|r| r.name_any() != release.name_any())
        .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::Succeeded))
        .filter_map(|r| {
            let version = Version::parse(&r.spec.version).ok()?;
            version.pre.is_empty().then(|| (r.name_any(), version))
        })
        .max_by(|(_, a), (_, b)| core(a).cmp(&core(b)))
}

/// What changed from one version to the next, by the rules of semantic versioning, looking
/// at MAJOR.MINOR.PATCH only (pre-release and build metadata are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bump {
    /// The next version is the same or older.
    NotNewer,
    /// `kind` is the most significant number that went up; `reset` says whether the numbers
    /// below it went back to 0, as semver asks (a Minor resets the patch number, a Major the
    /// minor and patch numbers).
    Newer {
        /// Patch, Minor or Major.
        kind: ReleaseType,
        /// Whether the lower numbers are 0.
        reset: bool,
    },
}

/// The bump from `previous` to `next`.
pub fn bump(previous: &Version, next: &Version) -> Bump {
    if core(next) <= core(previous) {
        return Bump::NotNewer;
    }
    if next.major > previous.major {
        Bump::Newer {
            kind: ReleaseType::Major,
            reset: next.minor == 0 && next.patch == 0,
        }
    } else if next.minor > previous.minor {
        Bump::Newer {
            kind: ReleaseType::Minor,
            reset: next.patch == 0,
        }
    } else {
        Bump::Newer {
            kind: ReleaseType::Patch,
            reset: true,
        }
    }
}

/// The first version of release type `kind` after `previous`: 2.4.0 → 2.4.1, 2.5.0, 3.0.0.
pub fn next_version(previous: &Version, kind: ReleaseType) -> Version {
    let (major, minor, patch) = core(previous);
    match kind {
        ReleaseType::Patch => Version::new(major, minor, patch.saturating_add(1)),
        ReleaseType::Minor => Version::new(major, minor.saturating_add(1), 0),
        ReleaseType::Major => Version::new(major.saturating_add(1), 0, 0),
    }
}

/// Checks that `version` of `application` is a `declared` release after `previous` (the name
/// and version of the newest release that succeeded; `None` for the first release, which may
/// have any type). A pre-release (2.5.0-rc.1) is checked by its MAJOR.MINOR.PATCH.
pub fn check_release_type(
    application: &str,
    version: &str,
    declared: ReleaseType,
    previous: Option<(&str, &Version)>,
) -> TypeCheck {
    let Some((previous_name, previous)) = previous else {
        return TypeCheck::Met(format!(
            "{application} has no earlier release that succeeded in this namespace: any type is fine"
        ));
    };
    let Ok(next) = Version::parse(version) else {
        return TypeCheck::Mismatch(format!(
            "spec.version {version} is not a semantic version, so its type cannot be checked"
        ));
    };
    match bump(previous, &next) {
        Bump::NotNewer => TypeCheck::NotNewer(format!(
            "{application} {version} is not newer than {previous}, the newest release of \
             {application} that succeeded (Release {previous_name})"
        )),
        Bump::Newer { kind, reset } if kind == declared && reset => TypeCheck::Met(format!(
            "{application} {version} is a {kind} after {previous}"
        )),
        Bump::Newer { kind, reset } => {
            let mut message = if kind == declared {
                format!("{application} {version} is not a valid {kind} after {previous}")
            } else {
                format!(
                    "{application} {version} is a {kind} after {previous}, but spec.type says {declared}"
                )
            };
            if !reset {
                message += &format!(
                    "; a {kind} release resets the numbers below the one it bumps to 0 (the next {kind} is {})",
                    next_version(previous, kind)
                );
            }
            TypeCheck::Mismatch(message)
        }
    }
}

/// MAJOR.MINOR.PATCH, for comparisons that ignore pre-release and build metadata.
fn core(version: &Version) -> (u64, u64, u64) {
    (version.major, version.minor, version.patch)
}

/// A named requirement met by an approved ReleaseApproval of this version.
fn approval_requirement(
    release: &Release,
    name: &str,
    approvals: &[ObservedApproval],
) -> RequirementStatus {
    let mine = approvals
        .iter()
        .filter(|a| a.gate == name && a.version == release.spec.version);
    let mut approved_by = Vec::new();
    for approval in mine {
        match approval.decision {
            Decision::Rejected => {
                return RequirementStatus {
                    name: name.to_owned(),
                    met: false,
                    message: Some(format!("rejected by {}", approval.approver)),
                };
            }
            Decision::Approved => approved_by.push(approval.approver.as_str()),
        }
    }
    RequirementStatus {
        name: name.to_owned(),
        met: !approved_by.is_empty(),
        message: Some(if approved_by.is_empty() {
            format!(
                "waiting for a ReleaseApproval with gate {name} for version {}",
                release.spec.version
            )
        } else {
            format!("approved by {}", approved_by.join(", "))
        }),
    }
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
    Ok((gate_status(name, gate, object.as_deref())?, watched))
}

/// An unmet requirement `name` with `message`.
fn unmet(name: &str, message: String) -> RequirementStatus {
    RequirementStatus {
        name: name.to_owned(),
        met: false,
        message: Some(message),
    }
}

/// Whether `object` (absent: not found) has the condition `gate` asks for.
fn gate_status(
    name: &str,
    gate: &ConditionGate,
    object: Option<&DynamicObject>,
) -> Result<RequirementStatus> {
    let Some(object) = object else {
        return Ok(unmet(
            name,
            format!("{} {} not found", gate.kind, gate.name),
        ));
    };
    let want = serde_json::to_value(gate.status)?;
    let found = object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == gate.condition_type.as_str())
        .map(|c| c["status"].clone());
    Ok(match found {
        Some(status) if status == want => RequirementStatus {
            name: name.to_owned(),
            met: true,
            message: Some(format!(
                "{} {} has {}={}",
                gate.kind,
                object.name_any(),
                gate.condition_type,
                want.as_str().unwrap_or_default()
            )),
        },
        Some(status) => unmet(
            name,
            format!(
                "{} {} has {}={}, waiting for {}",
                gate.kind,
                gate.name,
                gate.condition_type,
                status.as_str().unwrap_or_default(),
                want.as_str().unwrap_or_default()
            ),
        ),
        None => unmet(
            name,
            format!(
                "{} {} has no {} condition yet",
                gate.kind, gate.name, gate.condition_type
            ),
        ),
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::ReleaseStatus;
    use serde_json::json;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn check(version: &str, declared: ReleaseType, previous: Option<&str>) -> TypeCheck {
        let previous = previous.map(v);
        check_release_type(
            "checkout",
            version,
            declared,
            previous.as_ref().map(|p| ("checkout-prev", p)),
        )
    }

    fn release(
        name: &str,
        version: &str,
        release_type: &str,
        phase: Option<ReleasePhase>,
    ) -> Release {
        let mut release: Release = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "application": "checkout", "version": version, "type": release_type,
                "owner": "team", "rollbackPlan": "plan",
                "notes": {"summary": "s"},
                "images": [{"container": "api", "image": "checkout"}],
                "stages": [{"name": "staging", "deployments": ["api"], "smokeTest": {"template": {}}}]
            }
        }))
        .unwrap();
        release.status = phase.map(|phase| ReleaseStatus {
            phase: Some(phase),
            ..ReleaseStatus::default()
        });
        release
    }

    #[test]
    fn bumps_follow_semver() {
        use ReleaseType::*;
        let newer = |kind, reset| Bump::Newer { kind, reset };
        assert_eq!(bump(&v("2.4.0"), &v("2.4.1")), newer(Patch, true));
        assert_eq!(bump(&v("2.4.0"), &v("2.4.7")), newer(Patch, true));
        assert_eq!(bump(&v("2.4.3"), &v("2.5.0")), newer(Minor, true));
        assert_eq!(bump(&v("2.4.3"), &v("2.5.1")), newer(Minor, false));
        assert_eq!(bump(&v("2.4.3"), &v("3.0.0")), newer(Major, true));
        assert_eq!(bump(&v("2.4.3"), &v("3.1.0")), newer(Major, false));
        assert_eq!(bump(&v("2.4.0"), &v("2.4.0")), Bump::NotNewer);
        assert_eq!(bump(&v("2.4.0"), &v("2.3.9")), Bump::NotNewer);
        assert_eq!(bump(&v("2.4.0"), &v("1.9.0")), Bump::NotNewer);
        // Pre-release and build metadata do not count: 2.4.0-rc.1 is not newer than 2.4.0.
        assert_eq!(bump(&v("2.4.0"), &v("2.4.0-rc.1")), Bump::NotNewer);
        assert_eq!(bump(&v("2.4.0"), &v("2.5.0-rc.1")), newer(Minor, true));
        assert_eq!(bump(&v("2.4.0"), &v("2.4.0+build.7")), Bump::NotNewer);
    }

    #[test]
    fn a_matching_type_is_met() {
        assert_eq!(
            check("2.4.1", ReleaseType::Patch, Some("2.4.0")),
            TypeCheck::Met("checkout 2.4.1 is a Patch after 2.4.0".into())
        );
        assert!(matches!(
            check("2.5.0", ReleaseType::Minor, Some("2.4.3")),
            TypeCheck::Met(_)
        ));
        assert!(matches!(
            check("3.0.0", ReleaseType::Major, Some("2.4.3")),
            TypeCheck::Met(_)
        ));
        assert!(matches!(
            check("3.0.0-rc.1", ReleaseType::Major, Some("2.4.3")),
            TypeCheck::Met(_)
        ));
    }

    #[test]
    fn the_first_release_may_have_any_type() {
        for declared in [ReleaseType::Patch, ReleaseType::Minor, ReleaseType::Major] {
            assert!(matches!(check("0.1.0", declared, None), TypeCheck::Met(_)));
        }
    }

    #[test]
    fn a_mismatch_names_both_versions_and_both_types() {
        let result = check("2.4.1", ReleaseType::Minor, Some("2.4.0"));
        assert_eq!(
            result,
            TypeCheck::Mismatch(
                "checkout 2.4.1 is a Patch after 2.4.0, but spec.type says Minor".into()
            )
        );
        assert_eq!(result.reason(), Some(REASON_VERSION_TYPE_MISMATCH));
        // A hotfix that is really a feature release cannot slip through a Patch-only freeze.
        assert!(matches!(
            check("2.5.0", ReleaseType::Patch, Some("2.4.0")),
            TypeCheck::Mismatch(m) if m.contains("is a Minor after 2.4.0, but spec.type says Patch")
        ));
    }

    #[test]
    fn a_bump_that_does_not_reset_the_lower_numbers_is_a_mismatch() {
        let TypeCheck::Mismatch(message) = check("2.5.1", ReleaseType::Minor, Some("2.4.0")) else {
            panic!("expected a mismatch");
        };
        assert!(
            message.contains("is not a valid Minor after 2.4.0"),
            "{message}"
        );
        assert!(message.contains("the next Minor is 2.5.0"), "{message}");
        let TypeCheck::Mismatch(message) = check("3.1.0", ReleaseType::Minor, Some("2.4.0")) else {
            panic!("expected a mismatch");
        };
        assert!(
            message.contains("is a Major after 2.4.0, but spec.type says Minor"),
            "{message}"
        );
        assert!(message.contains("the next Major is 3.0.0"), "{message}");
    }

    #[test]
    fn a_version_not_newer_names_the_release_it_compares_with() {
        for version in ["2.4.0", "2.3.9", "2.4.0-rc.2"] {
            let result = check(version, ReleaseType::Patch, Some("2.4.0"));
            assert_eq!(result.reason(), Some(REASON_VERSION_NOT_NEWER), "{version}");
            let row = result.into_requirement();
            assert_eq!(row.name, VERSION_TYPE);
            assert!(!row.met);
            let message = row.message.unwrap();
            assert!(
                message.contains(&format!("checkout {version} is not newer than 2.4.0"))
                    && message.contains("checkout-prev"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_baseline_is_the_highest_final_version_that_succeeded() {
        use ReleasePhase::*;
        let candidate = release("checkout-new", "2.6.0", "Minor", None);
        let releases: Vec<Arc<Release>> = [
            release("checkout-2-4-0", "2.4.0", "Minor", Some(Succeeded)),
            release("checkout-2-5-0", "2.5.0", "Minor", Some(Succeeded)),
            release("checkout-2-3-1", "2.3.1", "Patch", Some(Succeeded)), // a later backport
            release("checkout-2-7-0", "2.7.0", "Minor", Some(RolledBack)),
            release("checkout-2-8-0", "2.8.0", "Minor", Some(Progressing)),
            release(
                "checkout-2-9-0-rc-1",
                "2.9.0-rc.1",
                "Minor",
                Some(Succeeded),
            ),
            release("checkout-new", "2.6.0", "Minor", Some(Succeeded)), // itself
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let mut other_app = release("billing-9-0-0", "9.0.0", "Major", Some(Succeeded));
        other_app.spec.application = "billing".into();
        let mut all = releases.clone();
        all.push(Arc::new(other_app));
        assert_eq!(
            newest_succeeded(&all, &candidate),
            Some(("checkout-2-5-0".to_owned(), v("2.5.0")))
        );
        assert_eq!(newest_succeeded(&[], &candidate), None);
    }

    #[test]
    fn a_major_release_must_list_migration_steps() {
        let mut major = release("checkout-3-0-0", "3.0.0", "Major", None);
        let row = |r: &Release| {
            built_in_requirements(r)
                .into_iter()
                .find(|row| row.name == MIGRATION_STEPS_LISTED)
                .unwrap()
        };
        let missing = row(&major);
        assert!(!missing.met);
        assert!(
            missing
                .message
                .unwrap()
                .contains("spec.notes.migrationSteps")
        );
        if let Some(notes) = major.spec.notes.as_mut() {
            notes.migration_steps = vec!["none".into()];
        }
        assert!(row(&major).met);
        let minor = release("checkout-2-5-0", "2.5.0", "Minor", None);
        assert!(row(&minor).met, "only Major releases must list them");
    }
}
