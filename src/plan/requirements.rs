//! The pre-release requirements, decided from what was observed: the release type check
//! (`versionType`: `spec.type` against the semver bump from the application's newest release
//! that succeeded), the built-in requirements of the release guide (release notes drafted,
//! rollback plan documented, smoke tests prepared, migration steps of a Major release listed),
//! and the named requirements of `spec.requirements`, met by an approved ReleaseApproval of
//! this version or by a condition on another object. Pure: the controller reads the objects
//! (`controller::gates`) and these functions judge them.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::DynamicObject;
use semver::Version;

use super::lifecycle::{Uncounted, counted_approvals, not_enforced_message};
use super::observed::{ApprovalEnforcement, GateState, ObservedApproval};
use crate::api::reason::Reason;
use crate::api::release::{ConditionGate, ReleaseNotes, ReleasePhase, RequirementStatus};
use crate::api::{Decision, Release, ReleaseType};

/// The name of the release type check in `status.requirements`.
pub const VERSION_TYPE: &str = "versionType";
/// The name of the built-in requirement that a Major release lists its migration steps.
pub const MIGRATION_STEPS_LISTED: &str = "migrationStepsListed";
/// `RequirementsMet` reason: `spec.type` does not match the semver bump.
pub const REASON_VERSION_TYPE_MISMATCH: &str = Reason::VersionTypeMismatch.as_str();
/// `RequirementsMet` reason: the version is not newer than the last release that succeeded.
pub const REASON_VERSION_NOT_NEWER: &str = Reason::VersionNotNewer.as_str();
/// `RequirementsMet` reason for every other unmet requirement.
pub const REASON_REQUIREMENTS_NOT_MET: &str = Reason::RequirementsNotMet.as_str();

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
                    .is_some_and(ReleaseNotes::lists_migration_steps),
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

/// A named requirement met by an approved ReleaseApproval of this version that counts (see
/// [`counted_approvals`]: bound to this Release object, and signed where the API server
/// enforces who signs, `enforcement`). A counted rejection leaves it unmet.
pub fn approval_requirement(
    release: &Release,
    name: &str,
    approvals: &[ObservedApproval],
    enforcement: &ApprovalEnforcement,
) -> RequirementStatus {
    // `name` may be a requirement only a ReleasePolicy demands.
    let count = counted_approvals(release, approvals, enforcement, &[name.to_owned()]);
    let mut approved_by = Vec::new();
    for approval in count.counted.iter().filter(|a| a.gate == name) {
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
    if !approved_by.is_empty() {
        return RequirementStatus {
            name: name.to_owned(),
            met: true,
            message: Some(format!("approved by {}", approved_by.join(", "))),
        };
    }
    let mut message = format!(
        "waiting for a ReleaseApproval with gate {name} for version {}",
        release.spec.version
    );
    let uncounted: Vec<_> = count
        .uncounted
        .iter()
        .filter(|(a, _)| a.gate == name)
        .collect();
    if let ApprovalEnforcement::NotEnforced { reason } = enforcement {
        message += &format!(
            "; {}",
            not_enforced_message(
                release.metadata.namespace.as_deref().unwrap_or_default(),
                reason
            )
        );
    }
    let reasons: Vec<String> = uncounted
        .iter()
        .filter(|(_, why)| *why != Uncounted::NotEnforced)
        .map(|(a, why)| why.explain(a))
        .collect();
    if !reasons.is_empty() {
        message += &format!("; not counted: {}", reasons.join("; "));
    }
    unmet(name, message)
}

/// An unmet requirement `name` with `message`.
pub fn unmet(name: &str, message: String) -> RequirementStatus {
    RequirementStatus {
        name: name.to_owned(),
        met: false,
        message: Some(message),
    }
}

/// Whether `object` (absent: not found) has the condition `gate` asks for.
pub fn gate_status(
    name: &str,
    gate: &ConditionGate,
    object: Option<&DynamicObject>,
) -> RequirementStatus {
    let Some(object) = object else {
        return unmet(name, format!("{} {} not found", gate.kind, gate.name));
    };
    let want = gate.status.as_str();
    let found = object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == gate.condition_type.as_str())
        .map(|c| c["status"].clone());
    match found {
        Some(status) if status == want => RequirementStatus {
            name: name.to_owned(),
            met: true,
            message: Some(format!(
                "{} {} has {}={}",
                gate.kind,
                object.name_any(),
                gate.condition_type,
                want
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
                want
            ),
        ),
        None => unmet(
            name,
            format!(
                "{} {} has no {} condition yet",
                gate.kind, gate.name, gate.condition_type
            ),
        ),
    }
}

/// The requirements gate from the checked requirements: open when every one is met, else
/// closed with `reason` and a message listing what is missing; `recheck` is when to look again
/// at a gate no watch wakes.
pub fn requirements_gate(
    details: &[RequirementStatus],
    reason: &str,
    recheck: Option<chrono::DateTime<chrono::Utc>>,
) -> GateState {
    let missing: Vec<String> = details
        .iter()
        .filter(|r| !r.met)
        .map(|r| match &r.message {
            Some(m) => format!("{}: {m}", r.name),
            None => r.name.clone(),
        })
        .collect();
    if missing.is_empty() {
        GateState::open(
            Reason::RequirementsMet.as_str(),
            "every pre-release requirement is met",
        )
    } else {
        GateState::closed(reason, format!("missing: {}", missing.join("; ")), recheck)
    }
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
