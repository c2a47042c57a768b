//! Reverts that never lie and never destroy: known-good once per Deployment, superseded and
//! drifted Deployments left alone, abort of a finished release, Jobs and sign-offs of one
//! Release object.

use super::*;
use crate::api::conditions::{DRIFTED, ROLLED_BACK, SUPERSEDED};
use crate::plan::observed::JobState;
use crate::plan::plan_standing;

/// The Release the simulated world runs, as its driven-by marker names it.
const ME: &str = "apps/checkout";
/// A newer Release of the same application.
const NEWER: &str = "apps/checkout-3-0-0";

/// Another Release rolls out to `namespace/name` and finishes, as its rollout would.
fn taken_over(world: &mut World, namespace: &str, name: &str) {
    roll_out_by(world.deployment_mut(namespace, name), NEWER, |c| {
        format!("{c}-3.0.0")
    });
    world.settle();
}

/// Someone runs `kubectl set image` on `namespace/name`.
fn hand_edit(world: &mut World, namespace: &str, name: &str, image: &str) {
    set_image_by_hand(world.deployment_mut(namespace, name), image);
    world.settle();
}

fn reverted(world: &World) -> Vec<(String, String)> {
    world
        .performed
        .iter()
        .filter_map(|a| match a {
            Action::Revert {
                namespace,
                deployment,
                ..
            } => Some((namespace.clone(), deployment.clone())),
            _ => None,
        })
        .collect()
}

fn history_count(world: &World, event: &str) -> usize {
    world
        .status()
        .history
        .iter()
        .filter(|h| h.event == event)
        .count()
}

#[test]
fn a_deployment_two_stages_name_stalls_before_anything_changes() {
    // The schema refuses two stages that spell the same namespace; this one defaults it.
    let mut spec = two_stage_spec();
    spec.stages[0].namespace = None;
    spec.stages[1].namespace = Some(NAMESPACE.into());
    let mut world = World::new(spec);
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert!(world.performed.is_empty());
    assert_condition(&world, "Stalled", "True", "InvalidSpec");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("spec.stages[1].deployments")
            && message.contains("apps/checkout-api")
            && message.contains("stage staging"),
        "{message}"
    );
}

#[test]
fn a_deployment_an_earlier_stage_captured_keeps_that_known_good() {
    // Staging drives the API, production the worker; mid-release production also names the
    // API (the spec is not frozen yet). Production must not take the release's template for
    // the API's known-good, and its failure must put the API back on 1.0.0.
    let mut spec = two_stage_spec();
    spec.stages[0].deployments = vec![DeploymentName(API.into())];
    spec.stages[1].namespace = Some(STAGING_NS.into());
    spec.stages[1].deployments = vec![DeploymentName(WORKER.into())];
    spec.stages[1].backup = None;
    let mut world = World::new(spec);
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_eq!(images_of(&world, STAGING_NS, API), vec![NEW_API_IMAGE]);

    world.release.spec.stages[1].deployments =
        vec![DeploymentName(API.into()), DeploymentName(WORKER.into())];
    world.bump_generation();
    world.approve_production();
    world.run_until_waiting();
    let production = &world.status().stages[1];
    let api = production
        .deployments
        .iter()
        .find(|d| d.name == API)
        .expect("production captured the API");
    assert_eq!(
        super::super::observed::template_images(&api.known_good_template.as_ref().unwrap().get())
            .into_values()
            .collect::<Vec<_>>(),
        vec![OLD_API_IMAGE],
        "the known-good of a Deployment is what it ran before the release"
    );

    world.finish_job(STAGING_NS, "production", JobKind::SmokeTest, false);
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    assert_eq!(images_of(&world, STAGING_NS, API), vec![OLD_API_IMAGE]);
    let (_, _, message) = condition(&world, ROLLED_BACK);
    assert!(
        !message.contains("keep"),
        "no Deployment keeps the release: {message}"
    );
}

#[test]
fn a_production_failure_says_which_deployments_keep_the_release() {
    let mut world = production_smoke_failed();
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    let (_, _, message) = condition(&world, ROLLED_BACK);
    assert!(
        message.contains(
            "stg/checkout-api, stg/checkout-worker keep version 2.0.0 (stage staging verified it)"
        ),
        "{message}"
    );
}

#[test]
fn abort_of_a_superseded_release_changes_nothing_and_says_why() {
    let mut world = succeeded();
    for namespace in [STAGING_NS, PRODUCTION_NS] {
        for name in [API, WORKER] {
            taken_over(&mut world, namespace, name);
        }
    }
    world.set_abort();
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert!(reverted(&world).is_empty());
    assert_eq!(phase(&world), ReleasePhase::Succeeded);
    assert_condition(&world, "Ready", "True", "Succeeded");
    assert_condition(&world, SUPERSEDED, "True", "Superseded");
    let (_, _, message) = condition(&world, SUPERSEDED);
    assert!(message.contains(NEWER), "{message}");
    assert!(
        world.status().incident.is_none(),
        "no incident: nothing was reverted"
    );
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "AbortIgnored")
        .expect("a Warning Event says why the abort did nothing");
    assert_eq!(warning.type_, EventType::Warning);
    assert!(warning.message.contains(NEWER), "{}", warning.message);

    // Said once.
    let again = world.reconcile();
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(history_count(&world, "AbortIgnored"), 1);
    assert_eq!(images_of(&world, PRODUCTION_NS, API), vec!["api-3.0.0"]);
}

#[test]
fn abort_reverts_only_what_the_release_still_drives() {
    let mut world = succeeded();
    taken_over(&mut world, PRODUCTION_NS, API);
    world.set_abort();
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    let reverted = reverted(&world);
    assert!(!reverted.contains(&(PRODUCTION_NS.into(), API.into())));
    assert_eq!(reverted.len(), 3, "{reverted:?}");
    assert_eq!(images_of(&world, PRODUCTION_NS, API), vec!["api-3.0.0"]);
    assert_eq!(images_of(&world, STAGING_NS, API), vec![OLD_API_IMAGE]);
    let (_, _, message) = condition(&world, ROLLED_BACK);
    assert!(
        message.contains(
            "prod/checkout-api was left alone: Release apps/checkout-3-0-0 drives it now"
        ),
        "{message}"
    );
}

#[test]
fn abort_of_the_current_release_after_success_restores_known_good_and_records_who_asked() {
    let mut world = succeeded();
    world.abort_requested_by =
        Some("field manager kubectl-patch (Update at 2026-12-05T03:00:00Z)".into());
    world.set_abort();
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    for namespace in [STAGING_NS, PRODUCTION_NS] {
        assert_eq!(images_of(&world, namespace, API), vec![OLD_API_IMAGE]);
    }
    let incident = world
        .status()
        .incident
        .clone()
        .expect("production was reverted");
    assert!(incident.restored_at.is_some());
    assert!(
        incident
            .message
            .contains("set by field manager kubectl-patch"),
        "{}",
        incident.message
    );
}

#[test]
fn a_hand_edit_after_success_is_drift_and_is_never_reverted() {
    let mut world = succeeded();
    hand_edit(&mut world, PRODUCTION_NS, API, "reg/api:hotfix");
    let plan = plan_standing(&world.release, world.deployments.clone(), world.now);
    world.write_status(&plan);
    assert_condition(&world, DRIFTED, "True", "Drifted");
    let (_, _, message) = condition(&world, DRIFTED);
    assert!(
        message.contains("prod/checkout-api (container api runs reg/api:hotfix)"),
        "{message}"
    );
    assert_eq!(plan.events[0].type_, EventType::Warning);
    assert_condition(&world, "Ready", "True", "Succeeded");
    // Nothing changes, nothing is written.
    let again = plan_standing(&world.release, world.deployments.clone(), world.now);
    assert_eq!(Some(&again.status), world.release.status.as_ref());
    assert!(again.events.is_empty());

    world.set_abort();
    world.run_until_waiting();
    assert!(!reverted(&world).contains(&(PRODUCTION_NS.into(), API.into())));
    assert_eq!(
        images_of(&world, PRODUCTION_NS, API),
        vec!["reg/api:hotfix"]
    );
}

#[test]
fn a_superseded_release_says_so_and_clears_it_when_it_drives_again() {
    let mut world = succeeded();
    let previous = world.deployment(PRODUCTION_NS, API).clone();
    taken_over(&mut world, PRODUCTION_NS, API);
    let plan = plan_standing(&world.release, world.deployments.clone(), world.now);
    world.write_status(&plan);
    assert_condition(&world, SUPERSEDED, "True", "Superseded");
    assert_eq!(plan.events[0].type_, EventType::Normal);
    assert!(find_condition(&world.status().conditions, DRIFTED).is_none());

    // The newer release is rolled back: the Deployment runs this release again, and is its.
    let d = world.deployment_mut(PRODUCTION_NS, API);
    d.template = previous.template;
    d.driven_by = Some(ME.into());
    let plan = plan_standing(&world.release, world.deployments.clone(), world.now);
    world.write_status(&plan);
    assert_condition(&world, SUPERSEDED, "False", "Current");
}

#[test]
fn a_revert_gives_the_deployment_back_to_the_release_that_drove_it_before() {
    let mut world = World::two_stages();
    for d in &mut world.deployments {
        d.driven_by = Some("apps/checkout-1-0-0".into());
    }
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, false);
    let plan = world.plan();
    let Action::Revert {
        driver,
        generation,
        namespace,
        deployment,
        ..
    } = &plan.action
    else {
        panic!("expected a revert, got {:?}", plan.action);
    };
    assert_eq!(driver.as_deref(), Some("apps/checkout-1-0-0"));
    assert_eq!(
        *generation,
        world.deployment(namespace, deployment).generation,
        "a revert applies only to the spec it was decided on"
    );
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    for name in [API, WORKER] {
        assert_eq!(
            world.deployment(STAGING_NS, name).driven_by.as_deref(),
            Some("apps/checkout-1-0-0")
        );
    }
}

#[test]
fn a_job_of_another_release_object_is_never_counted() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    let name = world.job_name("staging", JobKind::SmokeTest);
    // The Job carries another object's uid: a Release of this name deleted and created again.
    let job = world
        .jobs
        .iter_mut()
        .find(|j| j.name == name)
        .expect("the smoke test Job");
    job.release_uid = Some("uid-of-a-deleted-release".into());
    job.state = JobState::Succeeded;
    let plan = world.reconcile();
    assert_eq!(plan.events[0].reason, "JobOfAnotherRelease");
    assert_eq!(world.status().stages[0].attempt, Some(2));
    let next = world.reconcile();
    match &next.action {
        Action::CreateJob { name: created, .. } => {
            assert_eq!(created, "checkout-staging-smoke-2");
        }
        other => panic!("expected a new smoke test Job, got {other:?}"),
    }
    assert_eq!(stage_phase(&world, 0), StagePhase::Verifying);
}

#[test]
fn a_job_stops_running_when_its_check_times_out() {
    let mut world = World::two_stages();
    world.reconcile();
    world.reconcile();
    world.settle();
    world.run_until_waiting();
    let created = world
        .performed
        .iter()
        .find_map(|a| match a {
            Action::CreateJob { job, .. } => Some(job.clone()),
            _ => None,
        })
        .expect("a smoke test Job");
    assert_eq!(
        created.spec.unwrap().active_deadline_seconds,
        Some(600),
        "the stage's 10m smoke test timeout"
    );
}

#[test]
fn sign_offs_belong_to_one_release_object() {
    let mut world = staging_verified();
    let created = world.now;
    world.release.metadata.creation_timestamp = Some(crate::api::time::to_k8s_time(created));
    world.advance(60);
    // Another object's sign-off, and one older than this object, do not count.
    world.decide("production", "alice", VERSION, Decision::Approved);
    world.approvals.last_mut().unwrap().release_uid = Some("uid-of-a-deleted-release".into());
    world.decide("production", "bob", VERSION, Decision::Approved);
    world.approvals.last_mut().unwrap().created = Some(created - chrono::Duration::seconds(5));
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::AwaitingApproval);
    assert!(world.status().approvals.is_empty());

    // This object's uid counts, and so does a sign-off without a uid made after it.
    world.decide("production", "carol", VERSION, Decision::Approved);
    world.approvals.last_mut().unwrap().release_uid = world.release.metadata.uid.clone();
    world.run_until_waiting();
    assert_ne!(phase(&world), ReleasePhase::AwaitingApproval);
    assert_eq!(world.status().approvals.len(), 1);
}

#[test]
fn a_job_relman_may_not_create_stalls_before_anything_changes() {
    let mut world = World::two_stages();
    world.gates.forbidden = Some(
        "spec.stages[0].smokeTest: relman may not create the stage's Job in namespace stg".into(),
    );
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_condition(&world, "Stalled", "True", "Forbidden");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "Forbidden")
        .unwrap();
    assert_eq!(warning.type_, EventType::Warning);

    world.gates.forbidden = None;
    world.reconcile();
    assert_eq!(stage_phase(&world, 0), StagePhase::RollingOut);
}

/// A smoke-test template asking for the host's PID namespace.
fn privileged_smoke() -> crate::api::release::JobCheck {
    let mut template = crate::plan::sim::job_template("smoke");
    if let Some(pod) = template
        .spec
        .as_mut()
        .and_then(|spec| spec.template.spec.as_mut())
    {
        pod.host_pid = Some(true);
    }
    crate::api::release::JobCheck {
        template: template.into(),
        timeout: Some("10m".into()),
    }
}

#[test]
fn a_privileged_job_template_of_a_later_stage_stalls_before_anything_changes() {
    let mut spec = two_stage_spec();
    spec.stages[1].smoke_test = Some(privileged_smoke());
    let mut world = World::new(spec);
    let actions = world.run_until_waiting();
    assert!(actions.is_empty(), "nothing changes: {actions:?}");
    assert_condition(&world, "Stalled", "True", "JobNotPermitted");
    let stalled =
        crate::api::conditions::find_condition(&world.status().conditions, "Stalled").unwrap();
    assert!(
        stalled
            .message
            .contains("spec.stages[1].smokeTest.template.spec.template.spec.hostPID"),
        "{}",
        stalled.message
    );
}

#[test]
fn a_privileged_template_edited_in_after_the_start_is_never_created() {
    let mut world = World::two_stages();
    world.run_until_waiting();
    assert_eq!(stage_phase(&world, 0), StagePhase::Verifying);
    // Staging's smoke Job exists; production's template is edited to ask for the host.
    world.release.spec.stages[1].smoke_test = Some(privileged_smoke());
    world.bump_generation();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    // Staging went on to be verified: the later stage's template did not stop it.
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
    world.decide(
        "production",
        "p-1",
        crate::plan::sim::VERSION,
        crate::api::Decision::Approved,
    );
    world.gates.window = Some(crate::plan::GateState::open("WindowOpen", "open"));
    world.run_until_waiting();
    world.finish_job(PRODUCTION_NS, "production", JobKind::Backup, true);
    world.run_until_waiting();
    assert_condition(&world, "Stalled", "True", "JobNotPermitted");
    assert!(
        !world.performed.iter().any(|a| matches!(
            a,
            Action::CreateJob { kind: JobKind::SmokeTest, stage, .. } if stage == "production"
        )),
        "production's privileged smoke-test Job is never created"
    );
}

#[test]
fn a_step_the_api_server_denies_stalls_and_is_tried_again_slowly() {
    let mut world = World::two_stages();
    world.reconcile();
    world.denied = Some(
        r#"deployments.apps "checkout-api" is forbidden: User "system:serviceaccount:relman-system:relman" cannot patch resource "deployments" in API group "apps" in the namespace "stg""#.into(),
    );
    let plan = world.plan();
    assert!(
        matches!(plan.action, Action::RollOut { .. }),
        "the step is still planned, to be tried again"
    );
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    world.write_status(&plan);
    assert_condition(&world, "Stalled", "True", "Forbidden");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(
        message.contains("cannot patch resource \"deployments\""),
        "{message}"
    );

    // Granted: the step goes through and the release moves on.
    world.denied = None;
    let plan = world.reconcile();
    assert_roll_out(&plan, STAGING_NS, API);
    assert_condition(&world, "Stalled", "False", "RollingOut");
}

/// The two-stage release with a bake time on staging, run until staging's smoke test passed.
fn baking(bake: &str) -> World {
    let mut spec = two_stage_spec();
    spec.stages[0].bake = Some(bake.into());
    let mut world = World::new(spec);
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    world
}

#[test]
fn a_stage_bakes_before_it_is_verified() {
    let mut world = baking("10m");
    assert_eq!(stage_phase(&world, 0), StagePhase::Verifying);
    assert_condition(&world, "Reconciling", "True", "Baking");
    assert_eq!(history_count(&world, "BakeStarted"), 1);
    let plan = world.plan();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    assert!(
        world
            .deployment(STAGING_NS, API)
            .known_good_release
            .is_none(),
        "not marked known-good while baking"
    );

    world.advance(600);
    world.run_until_waiting();
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
}

#[test]
fn an_autoscaler_adding_replicas_while_baking_is_no_failure() {
    let mut world = baking("10m");
    assert_eq!(
        world.status().stages[0].deployments[0].available_at_bake_start,
        Some(2),
        "the bake remembers what was available when it began"
    );
    world.advance(120);
    // An autoscaler doubles the worker: two new replicas are still starting.
    let d = world.deployment_mut(STAGING_NS, WORKER);
    d.desired_replicas = 4;
    d.replicas = 4;
    d.updated_replicas = 4;
    d.available_replicas = 2;
    d.unavailable_replicas = 2;
    world.run_until_waiting();
    assert_condition(&world, "Reconciling", "True", "Baking");
    assert!(world.status().stages[0].failure.is_none());

    world.advance(600);
    world.run_until_waiting();
    assert_eq!(stage_phase(&world, 0), StagePhase::Verified);
}

#[test]
fn a_deployment_that_loses_a_replica_while_baking_is_reverted() {
    let mut world = baking("10m");
    world.advance(120);
    // A pod of the new version starts crash-looping: the Deployment has one replica less.
    let d = world.deployment_mut(STAGING_NS, WORKER);
    d.available_replicas = 1;
    d.unavailable_replicas = 1;
    world.run_until_waiting();
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
    let failure = world.status().stages[0].failure.clone().unwrap();
    assert_eq!(failure.reason, "BakeFailed");
    assert!(
        failure.message.contains(
            "stg/checkout-worker has 1 of 2 replicas available (2 were when the bake began)"
        ),
        "{}",
        failure.message
    );
    assert_eq!(images_of(&world, STAGING_NS, API), vec![OLD_API_IMAGE]);
}

#[test]
fn a_condition_requirement_that_stops_holding_while_baking_fails_the_stage() {
    let mut spec = two_stage_spec();
    spec.stages[0].bake = Some("10m".into());
    spec.requirements = vec![crate::api::release::Requirement {
        name: "error-budget".into(),
        description: None,
        condition: Some(crate::api::release::ConditionGate {
            api_version: "monitoring.example/v1".into(),
            kind: "SLO".into(),
            name: "checkout".into(),
            condition_type: "Healthy".into(),
            status: crate::api::release::ConditionStatus::True,
        }),
    }];
    let mut world = World::new(spec);
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
    assert_condition(&world, "Reconciling", "True", "Baking");

    world.gates.requirement_details = vec![crate::api::release::RequirementStatus {
        name: "error-budget".into(),
        met: false,
        message: Some("SLO checkout: Healthy is False".into()),
    }];
    world.run_until_waiting();
    let failure = world.status().stages[0].failure.clone().unwrap();
    assert_eq!(failure.reason, "BakeFailed");
    assert!(
        failure.message.contains("requirement error-budget"),
        "{}",
        failure.message
    );
    assert_eq!(phase(&world), ReleasePhase::RolledBack);
}
