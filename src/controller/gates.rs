//! The gates the planner consumes: pre-release requirements and the calendar's window.
//!
//! Requirements: the built-in ones of the release guide (release notes drafted, rollback plan
//! documented, smoke tests prepared) and the named ones of `spec.requirements`, met by an
//! approved ReleaseApproval of this version or by a condition on another object.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, ResourceExt};

use crate::api::release::StagePhase;
use crate::api::release::{ConditionGate, RequirementStatus};
use crate::api::{Decision, Release, ReleaseCalendar};
use crate::calendar::CompiledCalendar;
use crate::error::Result;
use crate::k8s::FIELD_MANAGER;
use crate::plan::jobs::build_job;
use crate::plan::{GateState, Gates, JobKind, ObservedApproval};

/// How soon an unmet condition gate is looked at again. Condition gates name objects of any
/// kind, which relman does not watch yet.
const CONDITION_GATE_RECHECK: chrono::Duration = chrono::Duration::seconds(15);

/// Evaluates the requirements and the window for `release`.
pub async fn evaluate(
    client: &Client,
    release: &Release,
    namespace: &str,
    approvals: &[ObservedApproval],
    now: DateTime<Utc>,
) -> Result<Gates> {
    let mut details = built_in_requirements(release);
    let mut recheck = None;
    for requirement in &release.spec.requirements {
        let status = match &requirement.condition {
            Some(gate) => {
                let status = condition_gate(client, namespace, &requirement.name, gate).await?;
                if !status.met {
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
        GateState::closed(
            "RequirementsNotMet",
            format!("missing: {}", missing.join("; ")),
            recheck,
        )
    };
    Ok(Gates {
        requirements,
        requirement_details: details,
        window: window(client, release, now).await?,
        invalid: invalid_jobs(client, release, namespace).await?,
    })
}

/// Before the first stage starts, asks the API server (dry run) whether each stage's Jobs
/// could be created, so a bad Job template or a missing namespace stops the release before
/// anything changes. Once a stage has started the check is skipped: it costs one call per
/// Job.
async fn invalid_jobs(
    client: &Client,
    release: &Release,
    namespace: &str,
) -> Result<Option<String>> {
    let started = release.status.as_ref().is_some_and(|s| {
        s.stages
            .iter()
            .any(|st| st.phase.is_some_and(|p| p != StagePhase::Pending))
    });
    if started {
        return Ok(None);
    }
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    for (index, stage) in release.spec.stages.iter().enumerate() {
        let ns = stage.namespace.as_deref().unwrap_or(namespace);
        let checks = [
            (JobKind::Backup, "backup", stage.backup.as_ref()),
            (JobKind::SmokeTest, "smokeTest", stage.smoke_test.as_ref()),
        ];
        for (kind, field, check) in checks {
            let Some(check) = check else { continue };
            let job = build_job(release, &stage.name, ns, kind, 1, &check.template);
            let api: Api<Job> = Api::namespaced(client.clone(), ns);
            match api.create(&params, &job).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Ok(Some(format!(
                        "spec.stages[{index}].namespace: namespace {ns} of stage {} does not exist",
                        stage.name
                    )));
                }
                Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
                    return Ok(Some(format!(
                        "spec.stages[{index}].{field}.template: the API server rejects the Job: {}",
                        e.message
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(None)
}

/// The release guide's own requirements, checked from the spec alone.
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
    ]
}

fn requirement(name: &str, met: bool, missing: &str) -> RequirementStatus {
    RequirementStatus {
        name: name.to_owned(),
        met,
        message: (!met).then(|| missing.to_owned()),
    }
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

/// A named requirement met by a condition on another object in the Release's namespace.
async fn condition_gate(
    client: &Client,
    namespace: &str,
    name: &str,
    gate: &ConditionGate,
) -> Result<RequirementStatus> {
    let unmet = |message: String| RequirementStatus {
        name: name.to_owned(),
        met: false,
        message: Some(message),
    };
    let (group, version) = match gate.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", gate.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &gate.kind);
    let Ok((resource, caps)) = pinned_kind(client, &gvk).await else {
        return Ok(unmet(format!(
            "the API server does not serve {} {}: check spec.requirements[{name}].condition",
            gate.api_version, gate.kind
        )));
    };
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let Some(object) = api.get_opt(&gate.name).await? else {
        return Ok(unmet(format!("{} {} not found", gate.kind, gate.name)));
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
        Some(status) => unmet(format!(
            "{} {} has {}={}, waiting for {}",
            gate.kind,
            gate.name,
            gate.condition_type,
            status.as_str().unwrap_or_default(),
            want.as_str().unwrap_or_default()
        )),
        None => unmet(format!(
            "{} {} has no {} condition yet",
            gate.kind, gate.name, gate.condition_type
        )),
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
