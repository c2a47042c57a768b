//! Sign-offs that count: bound to the live Release object, and signed where the API server
//! enforces who signs them. Those that do not count say why.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde_json::json;

use super::*;
use crate::api::time::to_k8s_time;
use crate::plan::ApprovalEnforcement;
use crate::plan::requirements::approval_requirement;

/// Approved's message while production waits.
fn waiting_message(world: &mut World) -> String {
    world.reconcile();
    assert_eq!(phase(world), ReleasePhase::AwaitingApproval);
    let (status, reason, message) = condition(world, "Approved");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AwaitingApproval")
    );
    message
}

fn not_enforced() -> ApprovalEnforcement {
    ApprovalEnforcement::NotEnforced {
        reason: "the ValidatingAdmissionPolicy relman-approval-identity does not exist".into(),
    }
}

#[test]
fn an_approval_without_release_uid_does_not_count_and_says_why() {
    let mut world = staging_verified();
    world.approve_production();
    world.approvals[0].release_uid = None;
    let message = waiting_message(&mut world);
    assert!(message.contains("0 so far"), "{message}");
    assert!(
        message.contains(
            "approval approval-0 names no releaseUID: create it with kubectl relman approve"
        ),
        "{message}"
    );
    assert!(world.status().approvals.is_empty());

    world.approve_production();
    assert_create_job(&world.reconcile(), JobKind::Backup, "production");
}

#[test]
fn an_approval_of_an_earlier_release_object_does_not_count() {
    let mut world = staging_verified();
    world.approve_production();
    world.approvals[0].release_uid = Some("uid-of-the-deleted-one".into());
    let message = waiting_message(&mut world);
    assert!(
        message.contains(
            "approval approval-0 is for an earlier Release of this name (uid uid-of-the-deleted-one)"
        ),
        "{message}"
    );
}

#[test]
fn an_approval_older_than_the_release_does_not_count() {
    let mut world = staging_verified();
    world.release.metadata.creation_timestamp = Some(to_k8s_time(world.now));
    world.approve_production();
    world.approvals[0].created = Some(world.now - chrono::Duration::seconds(1));
    let message = waiting_message(&mut world);
    assert!(
        message.contains("approval approval-0 was created before this Release"),
        "{message}"
    );
    // One created at the same second as the Release counts.
    world.approvals[0].created = Some(world.now);
    assert_create_job(&world.reconcile(), JobKind::Backup, "production");
}

#[test]
fn approvals_where_identity_is_not_enforced_open_no_gate_until_it_is() {
    let mut world = staging_verified();
    world.approval_enforcement = not_enforced();
    world.approve_production();
    let message = waiting_message(&mut world);
    for part in [
        "0 so far",
        "approvals in namespace apps are not trusted and open no gate, because the ValidatingAdmissionPolicy relman-approval-identity does not exist",
        "kubectl apply -f config/approval-policy.yaml",
        "approvalPolicy.enabled=true",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(world.status().approvals.is_empty(), "nothing is recorded");
    assert!(
        !world
            .performed
            .iter()
            .any(|a| matches!(a, Action::RollOut { namespace, .. } if namespace == PRODUCTION_NS))
    );

    // The policy is installed again: the same approval counts and production starts.
    world.approval_enforcement = ApprovalEnforcement::Enforced;
    assert_create_job(&world.reconcile(), JobKind::Backup, "production");
    assert_eq!(world.status().approvals.len(), 1);
}

#[test]
fn a_rejection_stops_the_release_even_where_identity_is_not_enforced() {
    let mut world = staging_verified();
    world.approval_enforcement = not_enforced();
    world.decide("production", "rm", VERSION, Decision::Rejected);
    let plan = world.reconcile();
    assert_revert(&plan, STAGING_NS, WORKER);
    assert_condition(&world, "Approved", "False", "ApprovalRejected");
}

#[test]
fn a_rejection_of_an_earlier_release_object_stops_nothing() {
    let mut world = staging_verified();
    world.decide("production", "rm", VERSION, Decision::Rejected);
    world.approvals[0].release_uid = Some("uid-of-the-deleted-one".into());
    let message = waiting_message(&mut world);
    assert!(message.contains("earlier Release"), "{message}");
}

#[test]
fn a_requirement_sign_off_counts_only_where_identity_is_enforced() {
    let mut world = World::two_stages();
    world.decide("acceptance-criteria", "po", VERSION, Decision::Approved);
    world
        .release
        .spec
        .requirements
        .push(serde_json::from_value(json!({"name": "acceptance-criteria"})).unwrap());
    let met = approval_requirement(
        &world.release,
        "acceptance-criteria",
        &world.approvals,
        &ApprovalEnforcement::Enforced,
    );
    assert!(met.met, "{met:?}");
    let unmet = approval_requirement(
        &world.release,
        "acceptance-criteria",
        &world.approvals,
        &not_enforced(),
    );
    assert!(!unmet.met);
    assert!(
        unmet
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("are not trusted"),
        "{unmet:?}"
    );
    world.approvals[0].release_uid = None;
    let unbound = approval_requirement(
        &world.release,
        "acceptance-criteria",
        &world.approvals,
        &ApprovalEnforcement::Enforced,
    );
    assert!(!unbound.met);
    assert!(
        unbound
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("names no releaseUID"),
        "{unbound:?}"
    );
}

// -------------------------------------------------------------------------------------------
// Whether the approval identity policy covers a namespace
// -------------------------------------------------------------------------------------------

const POLICY: &str = "relman-approval-identity";

fn policy(spec: serde_json::Value) -> ValidatingAdmissionPolicy {
    serde_json::from_value(json!({
        "metadata": {"name": POLICY},
        "spec": spec,
    }))
    .unwrap()
}

fn shipped_policy() -> ValidatingAdmissionPolicy {
    policy(json!({
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{
            "apiGroups": ["relman.io"], "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"], "resources": ["releaseapprovals"]
        }]},
        "validations": [{"expression": "true"}]
    }))
}

fn binding(name: &str, spec: serde_json::Value) -> ValidatingAdmissionPolicyBinding {
    let mut spec = spec;
    spec["policyName"] = json!(POLICY);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn coverage(
    policies: &[ValidatingAdmissionPolicy],
    bindings: &[ValidatingAdmissionPolicyBinding],
    labels: Result<BTreeMap<String, String>, String>,
) -> ApprovalEnforcement {
    ApprovalEnforcement::from_policies(POLICY, "shop", policies, bindings, &labels)
}

fn reason(enforcement: ApprovalEnforcement) -> String {
    match enforcement {
        ApprovalEnforcement::NotEnforced { reason } => reason,
        other => panic!("expected not enforced, got {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    Ok(pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect())
}

#[test]
fn the_shipped_policy_and_binding_enforce_everywhere() {
    let deny = binding("b", json!({"validationActions": ["Deny"]}));
    assert_eq!(
        coverage(&[shipped_policy()], &[deny], labels(&[])),
        ApprovalEnforcement::Enforced
    );
}

#[test]
fn a_missing_policy_or_binding_is_not_enforced() {
    let deny = binding("b", json!({"validationActions": ["Deny"]}));
    assert!(reason(coverage(&[], &[deny], labels(&[]))).contains("does not exist"));
    assert!(
        reason(coverage(&[shipped_policy()], &[], labels(&[]))).contains(
            "no ValidatingAdmissionPolicyBinding with validationActions Deny binds the ValidatingAdmissionPolicy relman-approval-identity to namespace shop"
        )
    );
    let audit = binding("b", json!({"validationActions": ["Warn", "Audit"]}));
    assert!(
        reason(coverage(&[shipped_policy()], &[audit], labels(&[])))
            .contains("no ValidatingAdmissionPolicyBinding")
    );
}

#[test]
fn a_policy_that_may_be_skipped_is_not_enforced() {
    let deny = binding("b", json!({"validationActions": ["Deny"]}));
    let mut ignore = shipped_policy();
    ignore.spec.as_mut().unwrap().failure_policy = Some("Ignore".into());
    assert!(
        reason(coverage(
            &[ignore],
            std::slice::from_ref(&deny),
            labels(&[])
        ))
        .contains("failurePolicy Ignore")
    );
    let updates_only = policy(json!({
        "matchConstraints": {"resourceRules": [{
            "apiGroups": ["relman.io"], "apiVersions": ["*"],
            "operations": ["UPDATE"], "resources": ["releaseapprovals"]
        }]}
    }));
    assert!(
        reason(coverage(
            &[updates_only],
            std::slice::from_ref(&deny),
            labels(&[])
        ))
        .contains("does not match the creation")
    );
    let mut conditional = shipped_policy();
    conditional.spec.as_mut().unwrap().match_conditions =
        serde_json::from_value(json!([{"name": "some", "expression": "object.spec.gate != 'qa'"}]))
            .unwrap();
    assert!(
        reason(coverage(
            &[conditional],
            std::slice::from_ref(&deny),
            labels(&[])
        ))
        .contains("has matchConditions")
    );
    let mut opt_out = shipped_policy();
    opt_out
        .spec
        .as_mut()
        .unwrap()
        .match_constraints
        .as_mut()
        .unwrap()
        .object_selector =
        serde_json::from_value(json!({"matchLabels": {"signed": "yes"}})).unwrap();
    assert!(
        reason(coverage(
            &[opt_out],
            std::slice::from_ref(&deny),
            labels(&[])
        ))
        .contains("does not match the creation")
    );
    // An objectSelector lets an approval's own labels step out of it.
    let by_label = binding(
        "b",
        json!({"validationActions": ["Deny"],
            "matchResources": {"objectSelector": {"matchLabels": {"signed": "yes"}}}}),
    );
    assert!(
        reason(coverage(&[shipped_policy()], &[by_label], labels(&[])))
            .contains("no ValidatingAdmissionPolicyBinding")
    );
}

#[test]
fn a_namespace_selector_decides_by_the_namespace_labels() {
    let selected = binding(
        "b",
        json!({"validationActions": ["Deny", "Audit"],
        "matchResources": {"namespaceSelector": {
            "matchLabels": {"team": "payments"},
            "matchExpressions": [{"key": "relman.io/approval-policy", "operator": "NotIn", "values": ["unbound"]}]
        }}}),
    );
    let policies = [shipped_policy()];
    let bindings = [selected];
    assert!(ApprovalEnforcement::needs_namespace_labels(
        POLICY, &policies, &bindings
    ));
    assert_eq!(
        coverage(&policies, &bindings, labels(&[("team", "payments")])),
        ApprovalEnforcement::Enforced
    );
    assert!(
        reason(coverage(
            &policies,
            &bindings,
            labels(&[("team", "search")])
        ))
        .contains("no ValidatingAdmissionPolicyBinding")
    );
    assert!(
        reason(coverage(
            &policies,
            &bindings,
            labels(&[
                ("team", "payments"),
                ("relman.io/approval-policy", "unbound")
            ])
        ))
        .contains("no ValidatingAdmissionPolicyBinding")
    );
    assert_eq!(
        reason(coverage(
            &policies,
            &bindings,
            Err("relman may not read namespace shop".into())
        )),
        "relman may not read namespace shop"
    );
    assert!(!ApprovalEnforcement::needs_namespace_labels(
        POLICY,
        &policies,
        &[binding("b", json!({"validationActions": ["Deny"]}))]
    ));
}
