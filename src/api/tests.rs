//! Serde round trips and defaults of the API types.

use super::approval::{Decision, ReleaseApprovalSpec};
use super::calendar::ReleaseCalendarSpec;
use super::release::{NotifyEvent, NotifyFormat, ReleaseSpec, ReleaseType};

const RELEASE: &str = r#"
application: checkout
version: 2.3.0
type: Minor
owner: team-payments
targetDate: "2026-12-01"
calendar: q4-2026
rollbackPlan: https://wiki.example/checkout/rollback
notes:
  summary: Faster checkout.
  notableChanges: [One-click pay]
images:
- {container: api, image: registry.example/checkout:2.3.0}
requirements:
- name: security-scan
- name: ci
  condition: {apiVersion: tekton.dev/v1, kind: PipelineRun, name: checkout-ci-230, type: Succeeded}
stages:
- name: staging
  namespace: checkout-staging
  deployments: [checkout-api]
  smokeTest:
    timeout: 5m
    template:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: smoke, image: busybox}]
- name: production
  deployments: [checkout-api]
  approval: {}
  window: true
notify:
- name: stakeholders
  secretRef: {name: slack, key: url}
"#;

#[test]
fn release_round_trips_through_yaml_and_json() {
    let spec: ReleaseSpec = serde_yaml::from_str(RELEASE).expect("parses");
    assert_eq!(spec.release_type, ReleaseType::Minor);
    assert_eq!(spec.stages.len(), 2);
    let json = serde_json::to_value(&spec).expect("serializes");
    assert_eq!(json["type"], "Minor");
    assert_eq!(json["targetDate"], "2026-12-01");
    let back: ReleaseSpec = serde_json::from_value(json).expect("parses back");
    assert_eq!(back, spec);
}

#[test]
fn release_defaults_apply() {
    let spec: ReleaseSpec = serde_yaml::from_str(RELEASE).expect("parses");
    // A condition gate's status defaults to True.
    let gate = spec.requirements[1].condition.as_ref().expect("gate");
    assert_eq!(gate.status, super::release::ConditionStatus::True);
    // An empty approval block means one required approver.
    let approval = spec.stages[1].approval.as_ref().expect("approval");
    assert!(approval.required);
    assert_eq!(approval.approvers, 1);
    // Notification defaults: Slack format, the three events that matter most.
    assert_eq!(spec.notify[0].format, NotifyFormat::Slack);
    assert_eq!(
        spec.notify[0].events,
        [
            NotifyEvent::Released,
            NotifyEvent::RolledBack,
            NotifyEvent::IncidentOpened
        ]
    );
    assert!(!spec.abort);
    assert!(!spec.stages[0].window);
    assert_eq!(spec.stages[1].namespace, None);
}

#[test]
fn empty_optional_fields_are_not_serialized() {
    let spec: ReleaseSpec = serde_yaml::from_str(RELEASE).expect("parses");
    let json = serde_json::to_value(&spec).expect("serializes");
    for absent in ["abort", "incident"] {
        assert!(json.get(absent).is_none(), "{absent} should be omitted");
    }
    assert!(json["stages"][0].get("window").is_none());
}

#[test]
fn approval_round_trips() {
    let yaml = "release: checkout-2-3-0\nversion: 2.3.0\ngate: production\ndecision: Rejected\napprover: alice\n";
    let spec: ReleaseApprovalSpec = serde_yaml::from_str(yaml).expect("parses");
    assert_eq!(spec.decision, Decision::Rejected);
    assert_eq!(spec.comment, None);
    let back: ReleaseApprovalSpec =
        serde_json::from_value(serde_json::to_value(&spec).expect("serializes")).expect("parses");
    assert_eq!(back, spec);
}

#[test]
fn calendar_defaults_to_utc_and_round_trips() {
    let yaml = r#"
windows:
- name: business-hours
  weekly: {days: [Mon, Tue, Wed, Thu], start: "09:00", end: "16:00"}
freezes:
- name: year-end
  start: "2026-12-20"
  end: "2027-01-04"
  allowTypes: [Patch]
"#;
    let spec: ReleaseCalendarSpec = serde_yaml::from_str(yaml).expect("parses");
    assert_eq!(spec.time_zone, "UTC");
    assert_eq!(spec.freezes[0].allow_types, [ReleaseType::Patch]);
    let back: ReleaseCalendarSpec =
        serde_json::from_value(serde_json::to_value(&spec).expect("serializes")).expect("parses");
    assert_eq!(back, spec);
}

#[test]
fn unknown_release_type_is_rejected() {
    let bad = RELEASE.replace("type: Minor", "type: Hotfix");
    let err = serde_yaml::from_str::<ReleaseSpec>(&bad).expect_err("must fail");
    assert!(err.to_string().contains("Hotfix"), "{err}");
}

#[test]
fn crds_carry_the_conventions() {
    let crds = serde_json::to_value(super::crds()).expect("serializes");
    let release = &crds[0];
    assert_eq!(release["spec"]["names"]["shortNames"][0], "rel");
    assert_eq!(release["spec"]["names"]["categories"][0], "relman");
    let version = &release["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let conditions =
        &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(crds[2]["spec"]["names"]["shortNames"][0], "relcal");
    assert_eq!(crds[2]["spec"]["scope"], "Cluster");
}
