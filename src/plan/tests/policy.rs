//! A namespace's ReleasePolicy binds every Release deploying there: it refuses what it does not
//! allow before anything changes, and its gates hold whatever the Release asks for.

use serde_json::json;

use super::*;
use crate::api::labels::ANNOTATION_CREATED_BY;
use crate::api::release::StageStatus;
use crate::plan::policy::{NamedPolicy, NamespacePolicy};

fn governed(namespace: &str, spec: serde_json::Value) -> (String, NamespacePolicy) {
    (
        namespace.to_owned(),
        NamespacePolicy {
            policies: vec![NamedPolicy {
                id: format!("{namespace}/rules"),
                spec: serde_json::from_value(spec).unwrap(),
            }],
            ..Default::default()
        },
    )
}

/// Takes the release through staging to production's gates.
fn verify_staging(world: &mut World) {
    world.run_until_waiting();
    world.finish_job(STAGING_NS, "staging", JobKind::SmokeTest, true);
    world.run_until_waiting();
}

/// Production waits for a sign-off; returns the Ready message.
fn awaiting_approval(world: &World) -> String {
    assert_eq!(phase(world), ReleasePhase::AwaitingApproval);
    condition(world, "Ready").2
}

fn stalled_for_policy(world: &World, plan: &Plan, parts: &[&str]) {
    assert_eq!(plan.action, Action::None);
    assert_condition(world, "Stalled", "True", "PolicyViolation");
    let (_, _, message) = condition(world, "Stalled");
    for part in parts {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(
        stage_phase(world, 0),
        StagePhase::Pending,
        "nothing started"
    );
}

#[test]
fn a_release_type_the_policy_does_not_allow_stalls_before_staging() {
    let mut world = World::two_stages();
    world.policies.extend([governed(
        PRODUCTION_NS,
        json!({"gates": {"releaseTypes": ["Patch", "Minor"]}}),
    )]);
    let plan = world.reconcile();
    stalled_for_policy(
        &world,
        &plan,
        &[
            "spec.type",
            "ReleasePolicy prod/rules",
            "Patch, Minor",
            "Major",
        ],
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "PolicyViolation" && e.type_ == EventType::Warning),
        "a Warning Event says why: {:?}",
        plan.events
    );
}

#[test]
fn a_deployment_outside_the_selector_is_never_touched() {
    let mut world = World::two_stages();
    world.policies.extend([governed(
        STAGING_NS,
        json!({"deployments": {"selector": {"matchLabels": {"team": "payments"}}}}),
    )]);
    world.deployment_mut(STAGING_NS, API).labels = [("team".into(), "payments".into())].into();
    let plan = world.reconcile();
    stalled_for_policy(
        &world,
        &plan,
        &[
            "spec.stages[0].deployments[1]",
            "Deployment stg/checkout-worker",
            "team=payments",
        ],
    );
    // Labelled by the namespace's owners, it goes on.
    world.deployment_mut(STAGING_NS, WORKER).labels = [("team".into(), "payments".into())].into();
    world.run_until_waiting();
    assert_ne!(stage_phase(&world, 0), StagePhase::Pending);
}

#[test]
fn a_calendar_the_policy_demands_must_be_the_releases() {
    let mut world = World::two_stages();
    world.release.spec.calendar = None;
    world.policies.extend([governed(
        PRODUCTION_NS,
        json!({"gates": {"calendar": "ops-freeze"}}),
    )]);
    let plan = world.reconcile();
    stalled_for_policy(
        &world,
        &plan,
        &["spec.calendar", "ops-freeze", "names none"],
    );
}

#[test]
fn the_policys_sign_off_holds_when_the_release_asks_for_none() {
    let mut spec = two_stage_spec();
    spec.stages[1].approval = None;
    spec.stages[1].window = false;
    let mut world = World::new(spec);
    world.policies.extend([governed(
        PRODUCTION_NS,
        json!({"gates": {"approval": {"approvers": 2, "independent": false}}}),
    )]);
    verify_staging(&mut world);
    let message = awaiting_approval(&world);
    assert!(message.contains("needs 2 approval(s)"), "{message}");
    assert!(
        message.contains("ReleasePolicy prod/rules demands it"),
        "{message}"
    );
    world.decide("production", "alice", VERSION, Decision::Approved);
    world.run_until_waiting();
    assert_eq!(
        phase(&world),
        ReleasePhase::AwaitingApproval,
        "one is not two"
    );
    world.decide("production", "bob", VERSION, Decision::Approved);
    world.run_until_waiting();
    assert_ne!(
        stage_phase(&world, 1),
        StagePhase::Pending,
        "production started"
    );
}

#[test]
fn the_creator_cannot_sign_off_their_own_release_when_the_policy_says_so() {
    let mut world = World::two_stages();
    world.release.metadata.annotations =
        Some([(ANNOTATION_CREATED_BY.to_owned(), "alice".to_owned())].into());
    world
        .policies
        .extend([governed(PRODUCTION_NS, json!({"gates": {"approval": {}}}))]);
    verify_staging(&mut world);
    world.approve_production(); // alice, the creator
    world.run_until_waiting();
    let message = awaiting_approval(&world);
    assert!(message.contains("alice's own do not count"), "{message}");
    world.decide("production", "bob", VERSION, Decision::Approved);
    world.run_until_waiting();
    assert_ne!(
        stage_phase(&world, 1),
        StagePhase::Pending,
        "bob's sign-off counts"
    );
}

#[test]
fn without_a_record_of_the_creator_no_independent_sign_off_counts() {
    let mut world = World::two_stages();
    world
        .policies
        .extend([governed(PRODUCTION_NS, json!({"gates": {"approval": {}}}))]);
    verify_staging(&mut world);
    world.decide("production", "bob", VERSION, Decision::Approved);
    world.run_until_waiting();
    let message = awaiting_approval(&world);
    assert!(
        message.contains("no relman.io/created-by record"),
        "{message}"
    );
}

#[test]
fn a_job_template_is_held_to_the_policys_level_and_accounts() {
    let mut world = World::two_stages();
    let privileged: crate::api::Compact<_> = serde_json::from_value::<
        k8s_openapi::api::batch::v1::JobTemplateSpec,
    >(json!({"spec": {"template": {"spec": {
        "restartPolicy": "Never", "serviceAccountName": "smoke-runner", "hostPID": true,
        "containers": [{"name": "smoke", "image": "smoke:1", "securityContext": {"privileged": true}}]
    }}}}))
    .unwrap()
    .into();
    world.release.spec.stages[0]
        .smoke_test
        .as_mut()
        .unwrap()
        .template = privileged;
    let plan = world.reconcile();
    assert_eq!(plan.action, Action::None);
    assert_condition(&world, "Stalled", "True", "JobNotPermitted");
    let (_, _, message) = condition(&world, "Stalled");
    assert!(message.contains("Restricted"), "{message}");
    // The staging namespace's owner trusts this team with privileged Jobs as smoke-runner.
    world.policies.extend([governed(
        STAGING_NS,
        json!({"jobs": {"podSecurity": "Privileged", "serviceAccounts": ["smoke-runner"]}}),
    )]);
    world.bump_generation();
    world.run_until_waiting();
    assert_ne!(
        stage_phase(&world, 0),
        StagePhase::Pending,
        "staging started"
    );
}

#[test]
fn the_status_names_the_policies_each_stage_is_held_to() {
    let mut world = World::two_stages();
    world.policies.extend([governed(PRODUCTION_NS, json!({}))]);
    world.reconcile();
    let held: Vec<(&str, &Vec<String>)> = world
        .status()
        .stages
        .iter()
        .map(|s: &StageStatus| (s.name.as_str(), &s.policies))
        .collect();
    assert_eq!(
        held,
        vec![
            ("staging", &vec!["(built-in default)".to_owned()]),
            ("production", &vec!["prod/rules".to_owned()]),
        ]
    );
}

#[test]
fn only_sign_offs_of_the_policys_group_count() {
    let mut world = World::two_stages();
    world.policies.extend([governed(
        PRODUCTION_NS,
        json!({"gates": {"approval": {"independent": false, "group": "release-managers"}}}),
    )]);
    verify_staging(&mut world);
    // Recorded groups without the one demanded, and no record at all: neither counts.
    world.decide("production", "dev", VERSION, Decision::Approved);
    world.approvals.last_mut().unwrap().groups = Some(vec!["developers".into()]);
    world.decide("production", "old", VERSION, Decision::Approved);
    world.run_until_waiting();
    let message = awaiting_approval(&world);
    assert!(
        message.contains("Only sign-offs by members of release-managers count"),
        "{message}"
    );
    world.decide("production", "rm", VERSION, Decision::Approved);
    world.approvals.last_mut().unwrap().groups =
        Some(vec!["developers".into(), "release-managers".into()]);
    world.run_until_waiting();
    assert_ne!(
        stage_phase(&world, 1),
        StagePhase::Pending,
        "the manager's sign-off counts"
    );
}

#[test]
fn an_image_outside_the_policys_prefixes_stalls_before_staging() {
    let mut world = World::two_stages();
    world.policies.extend([governed(
        PRODUCTION_NS,
        json!({"images": {"allowedPrefixes": ["registry.example/payments/"]}}),
    )]);
    let plan = world.reconcile();
    stalled_for_policy(
        &world,
        &plan,
        &[
            "spec.images[0].image",
            "registry.example/payments/",
            "ReleasePolicy prod/rules",
        ],
    );
}
