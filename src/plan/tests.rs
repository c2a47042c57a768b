//! The lifecycle, step by step, against the simulated cluster in [`super::sim`].

use std::time::Duration;

use super::action::{Action, EventType, JobKind, Plan};
use super::observed::{GateState, NamespaceConsent, PodProblemReason};
use super::sim::*;
use crate::api::conditions::find_condition;
use crate::api::release::DeploymentName;
use crate::api::release::{ReleasePhase, StagePhase};
use crate::api::{Decision, ReleaseSpec};

mod policy;
mod reverts;
mod signoffs;

fn condition(world: &World, type_: &str) -> (String, String, String) {
    let c = find_condition(&world.status().conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn assert_condition(world: &World, type_: &str, status: &str, reason: &str) {
    let (s, r, m) = condition(world, type_);
    assert_eq!((s.as_str(), r.as_str()), (status, reason), "{type_}: {m}");
}

fn phase(world: &World) -> ReleasePhase {
    world.status().phase.unwrap()
}

fn stage_phase(world: &World, index: usize) -> StagePhase {
    world.status().stages[index].phase.unwrap()
}

fn assert_roll_out(plan: &Plan, namespace: &str, deployment: &str) {
    match &plan.action {
        Action::RollOut {
            namespace: n,
            deployment: d,
            ..
        } => assert_eq!((n.as_str(), d.as_str()), (namespace, deployment)),
        other => panic!("expected a rollout of {namespace}/{deployment}, got {other:?}"),
    }
}

fn assert_revert(plan: &Plan, namespace: &str, deployment: &str) {
    match &plan.action {
        Action::Revert {
            namespace: n,
            deployment: d,
            ..
        } => assert_eq!((n.as_str(), d.as_str()), (namespace, deployment)),
        other => panic!("expected a revert of {namespace}/{deployment}, got {other:?}"),
    }
}

fn assert_create_job(plan: &Plan, kind: JobKind, stage: &str) {
    match &plan.action {
        Action::CreateJob {
            kind: k, stage: s, ..
        } => assert_eq!((*k, s.as_str()), (kind, stage)),
        other => panic!("expected a {kind:?} Job for {stage}, got {other:?}"),
    }
}

fn assert_mark(plan: &Plan, namespace: &str, deployment: &str) {
    match &plan.action {
        Action::MarkKnownGood {
            namespace: n,
            deployment: d,
            ..
        } => assert_eq!((n.as_str(), d.as_str()), (namespace, deployment)),
        other => panic!("expected {namespace}/{deployment} marked known-good, got {other:?}"),
    }
}

fn images_of(world: &World, namespace: &str, name: &str) -> Vec<String> {
    super::observed::template_images(&world.deployment(namespace, name).template)
        .into_values()
        .collect()
}

/// Drives the two-stage release until staging is verified and production awaits sign-off.
fn staging_verified() -> World {
    let mut world = World::two_stages();
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::AwaitingApproval);
    world
}

/// Staging verified, production signed off, backed up and its smoke test failed (nothing
/// planned for the failure yet).
fn production_smoke_failed() -> World {
    let mut world = staging_verified();
    world.approve_production();
    world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::Backup, true);
    world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::SmokeTest, false);
    world
}

/// Drives the two-stage release to success.
fn succeeded() -> World {
    let mut world = staging_verified();
    world.approve_production();
    world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::Backup, true);
    world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::Succeeded);
    world
}

// -------------------------------------------------------------------------------------------
// The happy path
// -------------------------------------------------------------------------------------------

#[test]
fn happy_path_step_by_step_through_both_stages() {
    let mut world = World::two_stages();

    // Staging starts and captures the known-good state first: a status-only step.
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(plan.requeue_after, Some(Duration::ZERO));
    assert_eq!(phase(&world), ReleasePhase::Progressing);
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
    let captured = &world.status().stages[0].deployments;
    assert_eq!(captured.len(), 2);
    assert_eq!(captured[0].known_good_revision.as_deref(), Some("3"));
    assert!(captured.iter().all(|d| d.known_good_template.is_some()));
    assert!(plan.events.iter().any(|e| e.reason == "StageStarted"));
    assert_condition(&world, "Reconciling", "True", "CapturingKnownGood");
    assert_condition(&world, "Ready", "False", "CapturingKnownGood");
    assert_condition(&world, "Stalled", "False", "CapturingKnownGood");
    assert_condition(&world, "RequirementsMet", "True", "RequirementsMet");
    assert_condition(&world, "StagingDeployed", "False", "RollingOut");
    assert_condition(&world, "Approved", "False", "AwaitingApproval");
    assert_condition(&world, "WindowOpen", "True", "WindowOpen");
    assert_condition(&world, "RolledBack", "False", "NotRolledBack");

    // Then each Deployment in turn, waiting for each rollout to complete.
    let plan = world.reconcile();
    assert_roll_out(&plan, STAGING_NS, API);
    let Action::RollOut { images, .. } = &plan.action else {
        unreachable!()
    };
    assert_eq!(images.len(), 1);
    assert_eq!(images["api"], NEW_API_IMAGE);

    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None, "waits for the rollout");
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(15 * 60)),
        "rollout timeout"
    );

    world.settle();
    let plan = world.reconcile();
    assert_roll_out(&plan, STAGING_NS, WORKER);
    let Action::RollOut { images, .. } = &plan.action else {
        unreachable!()
    };
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        ["worker"],
        "the proxy keeps its image"
    );

    world.settle();
    let plan = world.reconcile();
    assert_create_job(&plan, JobKind::SmokeTest, "staging");
    assert!(plan.events.iter().any(|e| e.reason == "StagingDeployed"));
    assert_condition(&world, "StagingDeployed", "True", "RolloutComplete");
    assert_condition(&world, "StagingVerified", "False", "Verifying");
    let status = world.status();
    assert_eq!(
        status.stages[0].deployments[0]
            .rolled_out_revision
            .as_deref(),
        Some("4")
    );

    // The smoke test runs: nothing to do until it finishes or times out.
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    world.advance(60);
    assert_eq!(world.plan().requeue_after, Some(Duration::from_secs(540)));

    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    let plan = world.reconcile();
    assert_mark(&plan, STAGING_NS, API);
    assert!(plan.events.iter().any(|e| e.reason == "SmokeTestSucceeded"));
    let plan = world.reconcile();
    assert_mark(&plan, STAGING_NS, WORKER);
    assert_eq!(
        world
            .deployment(STAGING_NS, API)
            .known_good_release
            .as_deref(),
        Some("apps/checkout@2.0.0")
    );

    // Staging verified; production waits for the Release Manager.
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
    assert_eq!(stage_phase(&world, 1), StagePhase::Pending);
    assert_eq!(phase(&world), ReleasePhase::AwaitingApproval);
    assert!(plan.events.iter().any(|e| e.reason == "StagingVerified"));
    assert_condition(&world, "StagingVerified", "True", "SmokeTestSucceeded");
    assert_condition(&world, "Approved", "False", "AwaitingApproval");
    assert_condition(&world, "Reconciling", "True", "AwaitingApproval");
    assert_condition(&world, "Stalled", "False", "AwaitingApproval");
    assert_condition(&world, "ProductionDeployed", "False", "StageNotStarted");
    // Waiting is free: the same plan again writes nothing.
    let again = world.reconcile();
    assert_eq!(again.action, Action::None);
    assert_eq!(&again.status, world.status());
    assert!(again.events.is_empty());

    // Signed off, but the window is closed: wait for it, and look again when it opens.
    world.gates.window = Some(GateState::closed(
        "WindowClosed",
        "next window opens 2026-09-22T08:00:00Z",
        Some(world.now + chrono::Duration::seconds(3600)),
    ));
    world.approve_production();
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::AwaitingWindow);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(3600)));
    assert_condition(&world, "Approved", "True", "Approved");
    assert_condition(&world, "WindowOpen", "False", "WindowClosed");
    assert_condition(&world, "Ready", "False", "WindowClosed");
    assert_eq!(world.status().approvals.len(), 1);

    world.advance(3600);
    world.gates.window = Some(GateState::open("WindowOpen", "open until 18:00"));
    let plan = world.reconcile();
    assert_create_job(&plan, JobKind::Backup, "production");
    assert_eq!(stage_phase(&world, 1), StagePhase::BackingUp);
    assert_condition(&world, "WindowOpen", "True", "WindowOpen");
    let Action::CreateJob { job, namespace, .. } = &plan.action else {
        unreachable!()
    };
    assert_eq!(namespace, PRODUCTION_NS);
    assert_eq!(job.metadata.namespace.as_deref(), Some(PRODUCTION_NS));
    assert_eq!(world.reconcile().action, Action::None, "the backup runs");

    world.finish_job(PRODUCTION_NS, "production", JobKind::Backup, true);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None, "capture first");
    assert_eq!(plan.requeue_after, Some(Duration::ZERO));
    assert_eq!(stage_phase(&world, 1), StagePhase::RollingOut);
    assert_eq!(
        world.status().stages[1]
            .backup
            .as_ref()
            .unwrap()
            .result
            .as_deref(),
        Some("Succeeded")
    );
    assert_roll_out(&world.reconcile(), PRODUCTION_NS, API);
    world.settle();
    assert_roll_out(&world.reconcile(), PRODUCTION_NS, WORKER);
    world.settle();
    assert_create_job(&world.reconcile(), JobKind::SmokeTest, "production");
    world.finish_job(PRODUCTION_NS, "production", JobKind::SmokeTest, true);
    assert_mark(&world.reconcile(), PRODUCTION_NS, API);
    assert_mark(&world.reconcile(), PRODUCTION_NS, WORKER);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert!(plan.events.iter().any(|e| e.reason == "Released"));
    assert_eq!(phase(&world), ReleasePhase::Succeeded);
    for (type_, reason) in [
        ("Ready", "Succeeded"),
        ("ProductionDeployed", "RolloutComplete"),
        ("ProductionVerified", "SmokeTestSucceeded"),
        ("StagingVerified", "SmokeTestSucceeded"),
        ("Approved", "Approved"),
        ("WindowOpen", "WindowOpen"),
        ("RequirementsMet", "RequirementsMet"),
    ] {
        assert_condition(&world, type_, "True", reason);
    }
    assert_condition(&world, "Reconciling", "False", "Succeeded");
    assert_condition(&world, "Stalled", "False", "Succeeded");
    assert_eq!(
        images_of(&world, PRODUCTION_NS, WORKER),
        ["envoy:1", NEW_WORKER_IMAGE]
    );

    // Steady state: no action, the status is unchanged (the write is skipped), no requeue.
    world.advance(86_400);
    let steady = world.plan();
    assert_eq!(steady.action, Action::None);
    assert_eq!(&steady.status, world.status());
    assert_eq!(steady.requeue_after, None);
    assert!(steady.events.is_empty());

    // A closing window or a deleted approval after the fact changes nothing: the sign-off
    // stays on record.
    world.gates.window = Some(GateState::closed("Frozen", "freeze", None));
    world.approvals.clear();
    assert_eq!(&world.plan().status, world.status());
    assert_eq!(world.status().approvals[0].approver, "alice");

    let history: Vec<&str> = world
        .status()
        .history
        .iter()
        .map(|h| h.event.as_str())
        .collect();
    assert_eq!(
        history,
        [
            "StageStarted",
            "StagingDeployed",
            "SmokeTestSucceeded",
            "StagingVerified",
            "AwaitingApproval",
            "WindowClosed",
            "StageStarted",
            "Approved",
            "BackupSucceeded",
            "ProductionDeployed",
            "SmokeTestSucceeded",
            "ProductionVerified",
            "Released",
        ]
    );
}

#[test]
fn conditions_carry_the_generation_and_keep_their_transition_time() {
    let mut world = World::two_stages();
    world.reconcile();
    let first = find_condition(&world.status().conditions, "Ready")
        .unwrap()
        .clone();
    world.advance(30);
    world.bump_generation();
    world.reconcile();
    let later = find_condition(&world.status().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(later.last_transition_time, first.last_transition_time);
    assert_ne!(later.reason, first.reason);
    assert!(
        world
            .status()
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
    assert_eq!(world.status().observed_generation, Some(2));
}

#[test]
fn stages_without_approval_or_window_say_not_required() {
    let mut spec = two_stage_spec();
    spec.stages.truncate(1);
    let mut world = World::new(spec);
    world.run_until_waiting();
    assert_condition(&world, "Approved", "True", "NotRequired");
    assert_condition(&world, "WindowOpen", "True", "NotRequired");
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::Succeeded);
}

#[test]
fn a_stage_with_another_name_gets_camel_case_conditions() {
    let mut spec = two_stage_spec();
    spec.stages.truncate(1);
    spec.stages[0].name = "canary-eu".into();
    spec.stages[0].smoke_test = None;
    let mut world = World::new(spec);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::Succeeded);
    assert_condition(&world, "CanaryEuDeployed", "True", "RolloutComplete");
    assert_condition(&world, "CanaryEuVerified", "True", "RolloutComplete");
}

#[test]
fn requirements_must_be_met_before_the_first_stage() {
    let mut world = World::two_stages();
    world.gates.requirements =
        GateState::closed("NotesMissing", "spec.notes.summary is empty", None);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(plan.requeue_after, None);
    assert_eq!(phase(&world), ReleasePhase::Pending);
    assert_eq!(stage_phase(&world, 0), StagePhase::Pending);
    assert_condition(&world, "RequirementsMet", "False", "NotesMissing");
    assert_condition(&world, "Reconciling", "True", "RequirementsNotMet");
    assert_condition(&world, "Stalled", "False", "RequirementsNotMet");

    world.gates.requirements = GateState::open("RequirementsMet", "met");
    world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
    // Once started, the requirements are not checked again.
    world.gates.requirements = GateState::closed("NotesMissing", "gone", None);
    world.reconcile();
    assert_condition(&world, "RequirementsMet", "True", "RequirementsMet");
    assert_eq!(phase(&world), ReleasePhase::Progressing);
}

// -------------------------------------------------------------------------------------------
// Approvals
// -------------------------------------------------------------------------------------------

#[test]
fn approvals_of_another_version_or_release_or_gate_do_not_count() {
    let mut world = staging_verified();
    world.decide("production", "alice", "2.0.1", Decision::Approved);
    world.decide("staging", "alice", VERSION, Decision::Approved);
    world.decide("production", "alice", "1.9.0", Decision::Rejected);
    world.approvals.push(super::observed::ObservedApproval {
        release: "another-release".into(),
        ..world.approvals[0].clone()
    });
    world.approvals.last_mut().unwrap().version = VERSION.into();
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::AwaitingApproval);
    assert_eq!(
        world.status().approvals.len(),
        1,
        "only the staging one is for this version"
    );

    world.approve_production();
    assert_create_job(&world.reconcile(), JobKind::Backup, "production");
}

#[test]
fn distinct_approvers_are_counted() {
    let mut spec = two_stage_spec();
    spec.stages[1].approval.as_mut().unwrap().approvers = 2;
    let mut world = World::new(spec);
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    world.approve_production();
    world.approve_production();
    world.reconcile();
    assert_eq!(phase(&world), ReleasePhase::AwaitingApproval);
    let (_, _, message) = condition(&world, "Approved");
    assert!(message.contains("1 so far"), "{message}");
    world.decide("production", "bob", VERSION, Decision::Approved);
    assert_create_job(&world.reconcile(), JobKind::Backup, "production");
}

#[test]
fn a_rejected_approval_reverts_staging() {
    let mut world = staging_verified();
    world.decide("production", "rm", VERSION, Decision::Rejected);
    let plan = world.reconcile();
    assert_revert(&plan, STAGING_NS, WORKER);
    assert_eq!(phase(&world), ReleasePhase::RollingBack);
    assert_condition(&world, "Approved", "False", "ApprovalRejected");
    assert_condition(&world, "Ready", "False", "ApprovalRejected");
    assert_condition(&world, "Reconciling", "True", "ApprovalRejected");
    assert_eq!(
        world.status().stages[1].failure.as_ref().unwrap().reason,
        "ApprovalRejected"
    );
    world.settle();
    assert_revert(&world.reconcile(), STAGING_NS, API);
    world.settle();
    world.reconcile();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    assert!(
        world.status().incident.is_none(),
        "production was never touched"
    );
    assert_eq!(images_of(&world, STAGING_NS, API), [OLD_API_IMAGE]);
    // Production was never touched.
    assert!(!world.performed.iter().any(|a| matches!(a,
        Action::RollOut { namespace, .. } | Action::Revert { namespace, .. } if namespace == PRODUCTION_NS)));
}

// -------------------------------------------------------------------------------------------
// Failures: each one reverts, then the release is RolledBack
// -------------------------------------------------------------------------------------------

/// Reverts until done, checking the final state: every Deployment runs its old images.
fn assert_rolled_back(world: &mut World, reason: &str) {
    world.run_until_waiting();
    assert_eq!(phase(world), ReleasePhase::RolledBack);
    assert_condition(world, "Ready", "False", reason);
    assert_condition(world, "Stalled", "True", reason);
    assert_condition(world, "Reconciling", "False", reason);
    assert_condition(world, "RolledBack", "True", reason);
    // A failed check leaves stages that passed their checks on the release; an abort or a
    // rejection withdraws it everywhere.
    let withdrawn = matches!(reason, "Aborted" | "ApprovalRejected");
    let verified: Vec<usize> = (0..world.status().stages.len())
        .filter(|&i| !withdrawn && stage_phase(world, i) == StagePhase::Verified)
        .collect();
    for deployment in &world.deployments {
        let images: Vec<String> = super::observed::template_images(&deployment.template)
            .into_values()
            .collect();
        let kept = verified.iter().any(|&i| {
            world.status().stages[i]
                .deployments
                .iter()
                .any(|d| d.namespace == deployment.namespace && d.name == deployment.name)
        });
        let old = match (deployment.name == API, kept) {
            (true, false) => vec![OLD_API_IMAGE],
            (true, true) => vec![NEW_API_IMAGE],
            (false, false) => vec!["envoy:1", OLD_WORKER_IMAGE],
            (false, true) => vec!["envoy:1", NEW_WORKER_IMAGE],
        };
        assert_eq!(images, old, "{}/{}", deployment.namespace, deployment.name);
    }
    // Terminal: nothing more happens, whatever the world does.
    world.advance(3600);
    world.set_abort();
    let plan = world.plan();
    assert_eq!(plan.action, Action::None);
    assert!(plan.events.is_empty());
    let mut expected = world.status().clone();
    expected.observed_generation = world.release.metadata.generation;
    for c in &mut expected.conditions {
        c.observed_generation = world.release.metadata.generation;
    }
    assert_eq!(plan.status, expected);
}

#[test]
fn smoke_test_failure_reverts_the_stage() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, false);
    let plan = world.reconcile();
    // The last Deployment rolled out is reverted first.
    assert_revert(&plan, STAGING_NS, WORKER);
    let Action::Revert {
        template, revision, ..
    } = &plan.action
    else {
        unreachable!()
    };
    assert_eq!(revision.as_deref(), Some("3"));
    assert_eq!(
        super::observed::template_images(template)["worker"],
        OLD_WORKER_IMAGE
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "SmokeTestFailed" && e.type_ == EventType::Warning)
    );
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingBack);
    assert_condition(&world, "StagingDeployed", "False", "RollingBack");
    let failure = world.status().stages[0].failure.clone().unwrap();
    assert!(
        failure.message.contains("BackoffLimitExceeded"),
        "{}",
        failure.message
    );
    assert_eq!(
        world.status().stages[0]
            .smoke_test
            .as_ref()
            .unwrap()
            .result
            .as_deref(),
        Some("Failed")
    );

    // Both reverts are sent before waiting for them.
    assert_revert(&world.reconcile(), STAGING_NS, API);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::RollingBack);
    assert_condition(&world, "RolledBack", "False", "RollingBack");

    world.settle();
    let plan = world.reconcile();
    assert!(plan.events.iter().any(|e| e.reason == "RolledBack"));
    assert_eq!(stage_phase(&world, 0), StagePhase::RolledBack);
    let (_, _, message) = condition(&world, "RolledBack");
    assert!(
        message.contains("stg/checkout-api to revision 5"),
        "{message}"
    );
    assert!(message.contains("known-good revision 3"), "{message}");
    assert_eq!(
        world.status().stages[0].deployments[0]
            .restored_revision
            .as_deref(),
        Some("5")
    );
    assert!(
        world.status().incident.is_none(),
        "staging only: no incident"
    );
    assert_rolled_back(&mut world, "SmokeTestFailed");
}

#[test]
fn smoke_test_timeout_reverts() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    let plan = world.plan();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    world.advance(599);
    assert_eq!(world.reconcile().action, Action::None);
    world.advance(1);
    assert_revert(&world.reconcile(), STAGING_NS, WORKER);
    assert_eq!(
        world.status().stages[0].failure.as_ref().unwrap().reason,
        "SmokeTestTimedOut"
    );
    assert_rolled_back(&mut world, "SmokeTestTimedOut");
}

#[test]
fn a_smoke_test_pod_that_cannot_start_fails_after_the_grace_period() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    let name = world.job_name("staging", JobKind::SmokeTest);
    let since = world.now;
    let job = world.jobs.iter_mut().find(|j| j.name == name).unwrap();
    job.pod_problems.push(super::observed::PodProblem {
        pod: format!("{name}-x"),
        reason: PodProblemReason::ErrImagePull,
        message: "not found".into(),
        since,
    });
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(120)),
        "the grace period ends first"
    );
    world.advance(120);
    assert_revert(&world.reconcile(), STAGING_NS, WORKER);
    assert_rolled_back(&mut world, "ErrImagePull");
}

#[test]
fn progress_deadline_exceeded_reverts_only_what_was_touched() {
    let mut world = World::two_stages();
    world.reconcile(); // capture
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
    world.exceed_progress_deadline(STAGING_NS, API);
    let plan = world.reconcile();
    assert_revert(&plan, STAGING_NS, API);
    assert_eq!(
        world.status().stages[0].failure.as_ref().unwrap().reason,
        "ProgressDeadlineExceeded"
    );
    world.settle();
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    // The worker was never rolled out, so it was never reverted.
    assert!(!world.performed.iter().any(
        |a| matches!(a, Action::RollOut { deployment, .. } | Action::Revert { deployment, .. } if deployment == WORKER)
    ));
    assert_eq!(
        world.status().stages[0].deployments[1].restored_revision,
        None
    );
    assert_rolled_back(&mut world, "ProgressDeadlineExceeded");
}

#[test]
fn a_failure_during_the_second_rollout_reverts_both() {
    let mut world = World::two_stages();
    world.reconcile();
    world.reconcile();
    world.settle();
    assert_roll_out(&world.reconcile(), STAGING_NS, WORKER);
    world.exceed_progress_deadline(STAGING_NS, WORKER);
    assert_revert(&world.reconcile(), STAGING_NS, WORKER);
    assert_revert(&world.reconcile(), STAGING_NS, API);
    assert_rolled_back(&mut world, "ProgressDeadlineExceeded");
}

#[test]
fn the_stage_rollout_timeout_reverts() {
    let mut world = World::two_stages();
    world.reconcile();
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
    world.advance(14 * 60);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    world.advance(60);
    assert_revert(&world.reconcile(), STAGING_NS, API);
    let failure = world.status().stages[0].failure.clone().unwrap();
    assert_eq!(failure.reason, "RolloutTimedOut");
    assert!(failure.message.contains("15m"), "{}", failure.message);
    assert_rolled_back(&mut world, "RolloutTimedOut");
}

#[test]
fn image_pull_backoff_during_rollout_reverts_after_the_grace_period() {
    let mut world = World::two_stages();
    world.reconcile();
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
    world.pod_problem(STAGING_NS, API, PodProblemReason::ImagePullBackOff);
    world.advance(100);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(20)));
    world.advance(20);
    assert_revert(&world.reconcile(), STAGING_NS, API);
    let (_, _, message) = condition(&world, "Ready");
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert_rolled_back(&mut world, "ImagePullBackOff");
}

#[test]
fn a_crash_loop_after_the_rollout_fails_verification() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    world.pod_problem(STAGING_NS, WORKER, PodProblemReason::CrashLoopBackOff);
    world.advance(120);
    assert_revert(&world.reconcile(), STAGING_NS, WORKER);
    assert_rolled_back(&mut world, "CrashLoopBackOff");
}

#[test]
fn backup_failure_stops_the_stage_before_anything_changes() {
    let mut spec = two_stage_spec();
    spec.stages.truncate(1);
    spec.stages[0].backup = spec_backup();
    let mut world = World::new(spec);
    assert_create_job(&world.reconcile(), JobKind::Backup, "staging");
    assert_eq!(stage_phase(&world, 0), StagePhase::BackingUp);
    assert_condition(&world, "StagingDeployed", "False", "BackingUp");
    world.finish_job(STAGING_NS, "staging", JobKind::Backup, false);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    assert_eq!(stage_phase(&world, 0), StagePhase::Failed);
    assert!(
        world.status().stages[0].deployments.is_empty(),
        "nothing captured"
    );
    let (_, _, message) = condition(&world, "RolledBack");
    assert!(
        message.contains("no Deployment needed a revert"),
        "{message}"
    );
    assert!(
        world
            .performed
            .iter()
            .all(|a| matches!(a, Action::CreateJob { .. }))
    );
    assert_rolled_back(&mut world, "BackupFailed");
}

fn spec_backup() -> Option<crate::api::release::JobCheck> {
    two_stage_spec().stages[1].backup.clone()
}

#[test]
fn production_backup_failure_leaves_both_stages_as_they_are() {
    let mut world = staging_verified();
    world.approve_production();
    world.run_until_waiting();
    world.advance(301);
    let plan = world.reconcile();
    // The backup failed before production changed, and staging passed its checks: nothing to
    // revert.
    assert!(
        !matches!(plan.action, Action::Revert { .. }),
        "{:?}",
        plan.action
    );
    assert_eq!(
        world.status().stages[1].failure.as_ref().unwrap().reason,
        "BackupTimedOut"
    );
    assert!(world.status().incident.is_none());
    assert_rolled_back(&mut world, "BackupTimedOut");
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
    assert_eq!(stage_phase(&world, 1), StagePhase::Failed);
}

#[test]
fn production_smoke_failure_reverts_production_only_and_opens_an_incident() {
    let mut world = production_smoke_failed();
    let plan = world.reconcile();
    assert_revert(&plan, PRODUCTION_NS, WORKER);
    assert!(plan.events.iter().any(|e| e.reason == "IncidentOpened"));
    let incident = world.status().incident.clone().unwrap();
    assert_eq!(
        (incident.stage.as_str(), incident.reason.as_str()),
        ("production", "SmokeTestFailed")
    );
    assert_eq!(incident.restored_at, None);
    assert_revert(&world.reconcile(), PRODUCTION_NS, API);
    // Staging passed its checks and keeps the release.
    let after = world.reconcile();
    assert!(
        !matches!(after.action, Action::Revert { .. }),
        "{:?}",
        after.action
    );
    world.settle();
    world.reconcile();
    let incident = world.status().incident.clone().unwrap();
    assert!(incident.restored_at.is_some());
    let restored = incident.revision_restored.unwrap();
    assert!(
        restored.contains("prod/checkout-api to revision 5"),
        "{restored}"
    );
    assert!(!restored.contains("stg/"), "{restored}");
    assert_rolled_back(&mut world, "SmokeTestFailed");
}

#[test]
fn abort_after_success_reverts_production_then_staging() {
    let mut world = succeeded();
    world.set_abort();
    let reverts = world.run_until_waiting();
    let order: Vec<(String, String)> = reverts
        .iter()
        .map(|a| match a {
            Action::Revert {
                namespace,
                deployment,
                ..
            } => (namespace.clone(), deployment.clone()),
            other => panic!("only reverts after an abort, got {other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        [
            (PRODUCTION_NS.into(), WORKER.into()),
            (PRODUCTION_NS.into(), API.into()),
            (STAGING_NS.into(), WORKER.into()),
            (STAGING_NS.into(), API.into()),
        ]
    );
    assert_eq!(stage_phase(&world, 0), StagePhase::RolledBack);
    assert_eq!(stage_phase(&world, 1), StagePhase::RolledBack);
    assert!(world.status().incident.is_some());
    assert_condition(&world, "ProductionVerified", "False", "RolledBack");
    assert_rolled_back(&mut world, "Aborted");
}

#[test]
fn abort_before_anything_changed_needs_no_revert() {
    let mut world = World::two_stages();
    world.reconcile(); // capture only
    world.set_abort();
    let plan = world.reconcile();
    assert_eq!(
        plan.action,
        Action::None,
        "the Deployments still run their known-good images"
    );
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    assert_rolled_back(&mut world, "Aborted");
}

#[test]
fn a_revert_that_cannot_complete_stalls_until_it_can() {
    let mut world = World::two_stages();
    world.reconcile();
    world.reconcile();
    world.exceed_progress_deadline(STAGING_NS, API);
    assert_revert(&world.reconcile(), STAGING_NS, API);
    world.exceed_progress_deadline(STAGING_NS, API);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::Failed);
    assert_condition(&world, "Stalled", "True", "RevertFailed");
    assert_condition(&world, "RolledBack", "False", "RevertFailed");
    // Someone fixes the cluster; the revert completes.
    world.settle();
    world.reconcile();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
}

// -------------------------------------------------------------------------------------------
// Blocked and invalid
// -------------------------------------------------------------------------------------------

#[test]
fn a_missing_deployment_stalls_without_reverting() {
    let mut world = World::two_stages();
    world
        .deployments
        .retain(|d| !(d.namespace == STAGING_NS && d.name == WORKER));
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::Failed);
    assert_condition(&world, "Stalled", "True", "DeploymentNotFound");
    assert_condition(&world, "Reconciling", "False", "DeploymentNotFound");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(message.contains("stg/checkout-worker"), "{message}");
    assert_eq!(
        stage_phase(&world, 0),
        StagePhase::Pending,
        "the stage did not start"
    );
    assert!(plan.events.iter().any(|e| e.reason == "DeploymentNotFound"));
    // Stalling again records nothing new.
    assert!(world.reconcile().events.is_empty());

    world
        .deployments
        .push(settled_deployment(STAGING_NS, WORKER));
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::Progressing);
    assert_condition(&world, "Stalled", "False", "SmokeTesting");
}

#[test]
fn a_deployment_that_disappears_mid_rollout_stalls() {
    let mut world = World::two_stages();
    world.reconcile();
    world.reconcile();
    world.settle();
    world
        .deployments
        .retain(|d| !(d.namespace == STAGING_NS && d.name == WORKER));
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_condition(&world, "Stalled", "True", "DeploymentNotFound");
    assert!(
        world.status().stages[0].failure.is_none(),
        "not a failure: no revert loop"
    );
}

#[test]
fn a_deployment_without_the_release_containers_stalls() {
    let mut world = World::two_stages();
    world.deployment_mut(STAGING_NS, API).template = pod_template(&[("web", "nginx")]);
    world.reconcile();
    assert_condition(&world, "Stalled", "True", "NoMatchingContainer");
}

#[test]
fn an_invalid_duration_stalls_naming_the_field() {
    let mut spec = two_stage_spec();
    spec.stages[1].smoke_test.as_mut().unwrap().timeout = Some("10 minutes".into());
    let mut world = World::new(spec);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::Failed);
    assert_condition(&world, "Stalled", "True", "InvalidSpec");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("spec.stages[1].smokeTest.timeout"),
        "{message}"
    );
}

// -------------------------------------------------------------------------------------------
// Restart safety
// -------------------------------------------------------------------------------------------

#[test]
fn the_same_observation_gives_the_same_plan() {
    let mut world = World::two_stages();
    for _ in 0..12 {
        let observed = world.observed();
        assert_eq!(super::plan(&observed), super::plan(&observed));
        world.reconcile();
        world.settle();
    }
}

#[test]
fn a_job_already_created_is_not_created_again() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    let created = world
        .performed
        .iter()
        .filter(|a| matches!(a, Action::CreateJob { .. }))
        .count();
    assert_eq!(created, 1);
    // The controller restarts and lost the status write that recorded the Job.
    let mut status = world.status().clone();
    status.stages[0].smoke_test = None;
    world.release.status = Some(status);
    assert_eq!(world.reconcile().action, Action::None);
    assert_eq!(world.jobs.len(), 1);
}

#[test]
fn a_lost_action_is_repeated_after_a_restart() {
    let mut world = World::two_stages();
    world.reconcile();
    // The status is written, then the controller dies before the rollout is sent.
    let plan = world.plan();
    assert_roll_out(&plan, STAGING_NS, API);
    world.write_status(&plan);
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
}

#[test]
fn a_succeeded_job_deleted_by_its_ttl_is_not_run_again() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.reconcile();
    world.jobs.clear();
    world.run_until_waiting();
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
    assert_eq!(
        world
            .performed
            .iter()
            .filter(|a| matches!(a, Action::CreateJob { .. }))
            .count(),
        1
    );
}

#[test]
fn known_good_is_never_recaptured_after_the_rollout_started() {
    let mut world = World::two_stages();
    world.reconcile();
    let captured = world.status().stages[0].deployments.clone();
    world.reconcile();
    world.settle();
    // Replays of every later step keep the original capture, although the Deployment now runs
    // the new template.
    for _ in 0..3 {
        world.reconcile();
        world.settle();
        assert_eq!(
            world.status().stages[0].deployments[0].known_good_template,
            captured[0].known_good_template
        );
        assert_eq!(
            world.status().stages[0].deployments[0]
                .known_good_revision
                .as_deref(),
            Some("3")
        );
    }
}

#[test]
fn no_rollout_is_sent_before_its_capture_is_persisted() {
    let mut world = World::two_stages();
    // The capture plan's status write is lost: the next plan captures again, not rolls out.
    let plan = world.plan();
    assert_eq!(plan.action, Action::None);
    assert_eq!(world.plan().action, Action::None);
    world.write_status(&plan);
    assert_roll_out(&world.plan(), STAGING_NS, API);
}

#[test]
fn a_root_cause_closes_the_incident() {
    let mut world = succeeded();
    world.set_abort();
    world.run_until_waiting();
    assert!(
        world
            .status()
            .incident
            .as_ref()
            .unwrap()
            .closed_at
            .is_none()
    );
    world.release.spec.incident = Some(crate::api::release::IncidentRecord {
        root_cause: Some("bad migration".into()),
        action_items: vec![],
    });
    let plan = world.reconcile();
    assert!(plan.events.iter().any(|e| e.reason == "IncidentClosed"));
    assert!(
        world
            .status()
            .incident
            .as_ref()
            .unwrap()
            .closed_at
            .is_some()
    );
    assert!(world.reconcile().events.is_empty());
}

// -------------------------------------------------------------------------------------------
// One driver per Deployment
// -------------------------------------------------------------------------------------------

#[test]
fn a_stage_waits_while_another_release_drives_its_deployment() {
    let mut world = World::two_stages();
    let other = "shop/checkout-1-9-0".to_owned();
    for deployment in &mut world.deployments {
        if deployment.namespace == STAGING_NS && deployment.name == API {
            deployment.driven_by_other = Some(other.clone());
        }
    }
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::Pending);
    assert_condition(&world, "Reconciling", "True", "WaitingForOtherRelease");
    assert_condition(&world, "Stalled", "False", "WaitingForOtherRelease");
    let (_, _, message) = condition(&world, "Ready");
    assert!(message.contains(&other), "{message}");
    assert!(
        world.status().stages[0].deployments.is_empty(),
        "nothing is captured while another release drives the Deployment"
    );

    // The other release finishes: this one starts.
    for deployment in &mut world.deployments {
        deployment.driven_by_other = None;
    }
    world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
}

/// The release is Stalled for `reason` with a Warning Event, and nothing was done or captured.
fn assert_stalled_before_anything_changed(world: &World, plan: &Plan, reason: &str) {
    assert_eq!(plan.action, Action::None);
    assert_condition(world, "Stalled", "True", reason);
    assert!(
        world.status().stages[0].deployments.is_empty(),
        "nothing captured"
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.type_ == EventType::Warning && e.reason == reason),
        "a Warning Event {reason}"
    );
}

#[test]
fn an_invalid_job_found_before_the_start_stalls_without_changes() {
    let mut world = World::two_stages();
    world.gates.invalid = Some("spec.stages[1].smokeTest.template: rejected".into());
    let plan = world.reconcile();
    assert_stalled_before_anything_changed(&world, &plan, "InvalidSpec");

    // Fixed: the release starts.
    world.gates.invalid = None;
    world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
}

// -------------------------------------------------------------------------------------------
// Stage namespaces other than the release's own
// -------------------------------------------------------------------------------------------

/// A two-stage release (in [`NAMESPACE`]) whose production namespace has not accepted it.
fn production_without_consent(consent: NamespaceConsent) -> World {
    let mut world = World::two_stages();
    world
        .namespace_consent
        .insert(PRODUCTION_NS.into(), consent);
    world
}

#[test]
fn a_namespace_without_consent_stalls_the_release_before_anything_changes() {
    let mut world = production_without_consent(NamespaceConsent::NotAnnotated);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(phase(&world), ReleasePhase::Failed);
    assert_condition(&world, "Stalled", "True", "NamespaceNotPermitted");
    assert_condition(&world, "Ready", "False", "NamespaceNotPermitted");
    assert_condition(&world, "Reconciling", "False", "NamespaceNotPermitted");
    let (_, _, message) = condition(&world, "Stalled");
    for part in [
        "spec.stages[1].namespace",
        "namespace prod",
        "create a ReleasePolicy in prod with spec.acceptReleasesFrom.namespaces: [apps]",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    // Found before staging (which may act) changed anything.
    assert_eq!(stage_phase(&world, 0), StagePhase::Pending);
    assert_stalled_before_anything_changed(&world, &plan, "NamespaceNotPermitted");
    // It looks again by itself, since nothing watches Namespaces.
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
    // Stalling again records nothing new and still acts nowhere.
    let again = world.reconcile();
    assert!(again.events.is_empty());
    assert_eq!(again.action, Action::None);
    assert!(world.performed.is_empty());
}

#[test]
fn a_namespace_listing_others_only_says_how_to_add_the_release_namespace() {
    let mut world = production_without_consent(NamespaceConsent::NotListed {
        value: "ops, web".into(),
    });
    world.reconcile();
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains(
            "kubectl annotate --overwrite namespace prod relman.io/accept-releases-from=ops,web,apps"
        ),
        "{message}"
    );
    let mut world = production_without_consent(NamespaceConsent::NotFound);
    world.reconcile();
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("namespace prod does not exist"),
        "{message}"
    );
    // A namespace missing from the observation has not consented either.
    let mut world = World::two_stages();
    world.namespace_consent.clear();
    assert_eq!(world.reconcile().action, Action::None);
    assert_condition(&world, "Stalled", "True", "NamespaceNotPermitted");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(message.contains("spec.stages[0].namespace"), "{message}");
}

#[test]
fn consent_given_later_lets_the_release_proceed() {
    let mut world = production_without_consent(NamespaceConsent::NotAnnotated);
    world.reconcile();
    assert_condition(&world, "Stalled", "True", "NamespaceNotPermitted");

    world
        .namespace_consent
        .insert(PRODUCTION_NS.into(), NamespaceConsent::Accepted);
    let plan = world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
    assert_condition(&world, "Stalled", "False", "CapturingKnownGood");
    assert_eq!(plan.requeue_after, Some(Duration::ZERO));
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
}

#[test]
fn a_stage_in_the_release_namespace_needs_no_consent() {
    // One Deployment per stage: a Deployment belongs to one stage.
    let one_each = |spec: &mut ReleaseSpec| {
        spec.stages[0].deployments = vec![DeploymentName(API.into())];
        spec.stages[1].deployments = vec![DeploymentName(WORKER.into())];
    };
    let mut spec = two_stage_spec();
    one_each(&mut spec);
    for stage in &mut spec.stages {
        stage.namespace = None;
    }
    let mut world = World::new(spec);
    assert!(world.namespace_consent.is_empty());
    world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
    assert_roll_out(&world.reconcile(), NAMESPACE, API);
    assert_condition(&world, "Stalled", "False", "RollingOut");

    // Naming the release's own namespace explicitly is the same.
    let mut spec = two_stage_spec();
    one_each(&mut spec);
    spec.stages[0].namespace = Some(NAMESPACE.into());
    spec.stages[1].namespace = Some(NAMESPACE.into());
    let mut world = World::new(spec);
    assert!(world.namespace_consent.is_empty());
    world.reconcile();
    assert_roll_out(&world.reconcile(), NAMESPACE, API);
}

#[test]
fn consent_withdrawn_mid_release_stops_every_further_write_there() {
    let mut world = World::two_stages();
    world.reconcile();
    assert_roll_out(&world.reconcile(), STAGING_NS, API);
    world.settle();

    world
        .namespace_consent
        .insert(STAGING_NS.into(), NamespaceConsent::NotAnnotated);
    let performed = world.performed.len();
    let plan = world.reconcile();
    assert_eq!(
        plan.action,
        Action::None,
        "no rollout of the next Deployment"
    );
    assert_condition(&world, "Stalled", "True", "NamespaceNotPermitted");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(message.contains("spec.stages[0].namespace"), "{message}");
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
    assert!(world.status().stages[0].failure.is_none(), "not a failure");
    world.advance(60);
    assert_eq!(world.reconcile().action, Action::None);
    assert_eq!(world.performed.len(), performed);

    // Given back: the stage goes on where it stopped.
    world
        .namespace_consent
        .insert(STAGING_NS.into(), NamespaceConsent::Accepted);
    assert_roll_out(&world.reconcile(), STAGING_NS, WORKER);
}

#[test]
fn no_revert_goes_to_a_namespace_that_withdrew_consent() {
    // Production fails its smoke test: the failure and the first revert are planned ...
    let mut world = production_smoke_failed();
    let plan = world.plan();
    assert_revert(&plan, PRODUCTION_NS, WORKER);
    world.write_status(&plan);
    // ... and production's namespace withdraws its consent before the revert is sent.
    world
        .namespace_consent
        .insert(PRODUCTION_NS.into(), NamespaceConsent::NotAnnotated);
    let performed = world.performed.len();
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_eq!(world.performed.len(), performed, "nothing sent to prod");
    assert_condition(&world, "Stalled", "True", "NamespaceNotPermitted");
    assert_condition(&world, "RolledBack", "False", "NamespaceNotPermitted");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("the revert of prod/checkout-worker was not sent"),
        "{message}"
    );
    assert!(message.contains("spec.stages[1].namespace"), "{message}");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(stage_phase(&world, 1), StagePhase::RollingBack);

    // Consent given back: the reverts go out and the release ends rolled back.
    world
        .namespace_consent
        .insert(PRODUCTION_NS.into(), NamespaceConsent::Accepted);
    assert_revert(&world.reconcile(), PRODUCTION_NS, WORKER);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    assert_condition(&world, "RolledBack", "True", "SmokeTestFailed");
}

#[test]
fn a_flood_of_sign_offs_keeps_the_newest_hundred_and_counts_the_rest() {
    let mut world = World::two_stages();
    for i in 0..150 {
        world.advance(1);
        world.decide(
            "production",
            &format!("approver-{i}"),
            VERSION,
            Decision::Approved,
        );
    }
    world.reconcile();
    let status = world.status().clone();
    assert_eq!(status.approvals.len(), 100);
    assert_eq!(status.approvals_not_listed, Some(50));
    assert_eq!(
        status.approvals[0].approver, "approver-50",
        "the oldest went first"
    );
    assert_eq!(status.approvals[99].approver, "approver-149");
    // Planned again, nothing changes: the list and the count are stable.
    world.reconcile();
    assert_eq!(world.status().approvals, status.approvals);
    assert_eq!(world.status().approvals_not_listed, Some(50));
}

/// Makes the pod template of `namespace/name` about `kib` KiB large (an environment value).
fn bloat(world: &mut World, namespace: &str, name: &str, kib: usize) {
    let spec = world
        .deployment_mut(namespace, name)
        .template
        .spec
        .as_mut()
        .unwrap();
    spec.containers[0].env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
        name: "PAYLOAD".into(),
        value: Some("x".repeat(kib * 1024)),
        ..Default::default()
    }]);
}

#[test]
fn templates_too_large_to_keep_for_a_revert_stall_the_release_before_anything_changes() {
    let mut world = World::two_stages();
    bloat(&mut world, PRODUCTION_NS, API, 600);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_condition(&world, "Stalled", "True", "StatusTooLarge");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("knownGoodTemplate") && message.contains("512 KiB"),
        "{message}"
    );
    assert_eq!(stage_phase(&world, 0), StagePhase::Pending);
}

#[test]
fn a_template_grown_too_large_mid_release_stalls_before_its_stage_is_captured() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
    // Someone grows the production Deployment while the release waits for its sign-off.
    bloat(&mut world, PRODUCTION_NS, WORKER, 600);
    world.approve_production();
    let mut actions = world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::Backup, true);
    actions.extend(world.run_until_waiting());
    assert!(
        !actions.iter().any(|a| matches!(a, Action::RollOut { .. })),
        "production was not rolled out: {actions:?}"
    );
    assert_condition(&world, "Stalled", "True", "StatusTooLarge");
    assert!(
        world.status().stages[1]
            .deployments
            .iter()
            .all(|d| d.known_good_template.is_none()),
        "nothing of production was captured"
    );
}
