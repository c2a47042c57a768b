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

/// The most bytes a value of `schema` can take as JSON: strings count four bytes a character
/// (UTF-8's worst), lists and maps their bound times their items. `Err` names the first field
/// without a bound. Embedded objects kept as written (`x-kubernetes-preserve-unknown-fields`:
/// the Job templates) are bounded only by the API server's request limit and count as zero.
fn worst_case_bytes(schema: &serde_json::Value, path: &str) -> Result<u64, String> {
    use serde_json::Value;
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return Ok(0);
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let longest = values
            .iter()
            .map(|v| v.to_string().len() as u64)
            .max()
            .unwrap_or(0);
        return Ok(longest);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match (bound("maxLength"), schema.get("format")) {
            // A pattern of ASCII classes (names, labels) allows one byte a character.
            (Some(max), _)
                if schema
                    .get("pattern")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !p.contains("[^")) =>
            {
                Ok(max + 2)
            }
            (Some(max), _) => Ok(max * 4 + 2),
            (None, Some(format)) if format == "date-time" => Ok(40),
            _ => Err(format!("{path}: a string without maxLength")),
        },
        Some("integer" | "number") => Ok(20),
        Some("boolean") => Ok(5),
        Some("array") => {
            let max = bound("maxItems").ok_or(format!("{path}: a list without maxItems"))?;
            let item = worst_case_bytes(&schema["items"], &format!("{path}[]"))?;
            Ok(max * (item + 1) + 2)
        }
        _ => {
            let mut total = 2;
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, field) in properties {
                    total +=
                        name.len() as u64 + 4 + worst_case_bytes(field, &format!("{path}.{name}"))?;
                }
            }
            if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                let max =
                    bound("maxProperties").ok_or(format!("{path}: a map without maxProperties"))?;
                total += max * (63 * 4 + 4 + worst_case_bytes(values, &format!("{path}{{}}"))?);
            }
            Ok(total)
        }
    }
}

#[test]
fn every_string_list_and_map_of_every_spec_is_bounded_well_below_etcds_limit() {
    // etcd refuses a request over 1.5 MiB; the bounded part of a spec, every free-text field
    // full of four-byte characters, keeps under 1 MiB of it, leaving room for the Job
    // templates, the metadata and the status.
    const BUDGET: u64 = 1024 * 1024;
    for crd in super::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap();
        let spec = &schema["properties"]["spec"];
        let bytes = worst_case_bytes(spec, "spec").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bytes < BUDGET, "{name}: a spec may take {bytes} bytes");
    }
    // The test cannot pass by seeing nothing: an unbounded string is found.
    let unbounded = serde_json::json!({"properties": {"a": {"type": "string"}}});
    assert_eq!(
        worst_case_bytes(&unbounded, "spec"),
        Err("spec.a: a string without maxLength".to_owned())
    );
}

#[test]
fn the_largest_release_notes_fit_a_config_map() {
    // What the schema allows at most, in four-byte characters: the published notes ConfigMap
    // (at most 1 MiB of data) can always hold them, so publishing never fails on size.
    let long = |n: usize| "𝄞".repeat(n);
    let notes = super::release::ReleaseNotes {
        summary: Some(long(8192)),
        notable_changes: vec![long(500); 100],
        migration_steps: vec![long(500); 50],
        known_issues: vec![long(500); 50],
    };
    let mut release: super::Release = super::Release::new(
        "checkout-2-3-0",
        serde_yaml::from_str::<ReleaseSpec>(RELEASE).unwrap(),
    );
    release.spec.notes = Some(notes);
    release.spec.rollback_plan = Some(long(4096));
    let rendered = crate::notes::render(&release, "2026-12-06");
    let bytes = rendered.len();
    assert!(
        bytes > 400_000,
        "the notes were rendered in full: {bytes} bytes"
    );
    assert!(
        bytes < 1024 * 1024 - 16 * 1024,
        "{bytes} bytes do not fit a ConfigMap with room"
    );
}
