//! The API as the real API server serves it: the CRDs are accepted, `kubectl explain` shows our
//! descriptions, good manifests are accepted, and bad ones are rejected at admission with a message
//! that names the field and the fix.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{stdout_of, with};

fn release_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("relman.io", "v1alpha1", "Release"))
}

fn approval_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "relman.io",
        "v1alpha1",
        "ReleaseApproval",
    ))
}

fn calendar_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "relman.io",
        "v1alpha1",
        "ReleaseCalendar",
    ))
}

/// A valid Release spec that each bad case changes in one place.
fn good_release() -> Value {
    json!({
        "application": "checkout",
        "version": "2.3.0",
        "type": "Minor",
        "owner": "team-payments",
        "targetDate": "2026-12-01",
        "rollbackPlan": "https://wiki.example/checkout/rollback",
        "notes": {"summary": "Faster checkout."},
        "images": [{"container": "api", "image": "registry.example/checkout:2.3.0"}],
        "stages": [
            {
                "name": "staging",
                "namespace": "checkout-staging",
                "deployments": ["checkout-api"],
                "rolloutTimeout": "5m",
                "smokeTest": {"timeout": "10m", "template": smoke_template()}
            },
            {
                "name": "production",
                "namespace": "checkout-prod",
                "deployments": ["checkout-api"],
                "approval": {"required": true, "approvers": 1},
                "window": true,
                "smokeTest": {"template": smoke_template()}
            }
        ]
    })
}

fn smoke_template() -> Value {
    json!({"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "smoke", "image": "busybox"}]
    }}}})
}

fn good_approval() -> Value {
    json!({
        "release": "checkout-2-3-0",
        "version": "2.3.0",
        "gate": "production",
        "decision": "Approved",
        "approver": relman_testenv::ADMIN_USER
    })
}

fn good_calendar() -> Value {
    json!({
        "timeZone": "Europe/Berlin",
        "windows": [{"name": "business-hours", "weekly": {"days": ["Mon", "Tue"], "start": "09:00", "end": "16:00"}}],
        "freezes": [{"name": "year-end", "start": "2026-12-20", "end": "2027-01-04", "allowTypes": ["Patch"]}]
    })
}

fn object(ar: &ApiResource, name: &str, spec: Value) -> DynamicObject {
    let mut obj = DynamicObject::new(name, ar);
    obj.data = json!({ "spec": spec });
    obj
}

struct Case {
    what: &'static str,
    resource: fn() -> ApiResource,
    spec: Value,
    /// The field the API server's message must name.
    field: &'static str,
    /// A piece of the message that tells the fix.
    hint: &'static str,
}

#[rustfmt::skip]
fn invalid_cases() -> Vec<Case> {
    let rel = release_resource as fn() -> ApiResource;
    let app = approval_resource as fn() -> ApiResource;
    let cal = calendar_resource as fn() -> ApiResource;
    let r = good_release;
    let stages_swapped = {
        let mut spec = r();
        let stages = spec["stages"].as_array_mut().expect("stages");
        stages.swap(0, 1);
        spec
    };
    vec![
        Case { what: "version is not semver", resource: rel, spec: with(r(), "/version", json!("2.3")), field: "spec.version", hint: "semantic version" },
        Case { what: "version has a leading v", resource: rel, spec: with(r(), "/version", json!("v2.3.0")), field: "spec.version", hint: "no leading 'v'" },
        Case { what: "type is not Patch/Minor/Major", resource: rel, spec: with(r(), "/type", json!("Hotfix")), field: "spec.type", hint: "\"Patch\", \"Minor\", \"Major\"" },
        Case { what: "application is not a DNS label", resource: rel, spec: with(r(), "/application", json!("Checkout_App")), field: "spec.application", hint: "DNS label" },
        Case { what: "owner is missing", resource: rel, spec: with(r(), "/owner", Value::Null), field: "spec.owner", hint: "Required value" },
        Case { what: "no images", resource: rel, spec: with(r(), "/images", json!([])), field: "spec.images", hint: "at least 1" },
        Case { what: "an image names no container", resource: rel, spec: with(r(), "/images/0", json!({"image": "x:1"})), field: "spec.images[0].container", hint: "Required value" },
        Case { what: "two images for one container", resource: rel, spec: with(r(), "/images", json!([{"container": "api", "image": "a:1"}, {"container": "api", "image": "a:2"}])), field: "spec.images", hint: "each container once" },
        Case { what: "target date is not YYYY-MM-DD", resource: rel, spec: with(r(), "/targetDate", json!("12/01/2026")), field: "spec.targetDate", hint: "YYYY-MM-DD" },
        Case { what: "no stages", resource: rel, spec: with(r(), "/stages", json!([])), field: "spec.stages", hint: "at least 1" },
        Case { what: "duplicate stage names", resource: rel, spec: with(r(), "/stages/1/name", json!("staging")), field: "spec.stages", hint: "names must be unique" },
        Case { what: "production before staging", resource: rel, spec: stages_swapped, field: "spec.stages", hint: "'production' stage must come after the 'staging' stage" },
        Case { what: "one Deployment in two stages, both in the Release's namespace", resource: rel, spec: with(with(r(), "/stages/0/namespace", Value::Null), "/stages/1/namespace", Value::Null), field: "spec.stages", hint: "stages 'staging' and 'production' both name the Deployment checkout-api in the Release's namespace; a Deployment belongs to one stage" },
        Case { what: "one Deployment in two stages, both in one named namespace", resource: rel, spec: with(with(r(), "/stages/0/namespace", json!("checkout")), "/stages/1/namespace", json!("checkout")), field: "spec.stages", hint: "both name the Deployment checkout-api in namespace checkout; a Deployment belongs to one stage" },
        Case { what: "one Deployment among others in two stages", resource: rel, spec: with(with(with(r(), "/stages/0/namespace", Value::Null), "/stages/1/namespace", Value::Null), "/stages/0/deployments", json!(["checkout-worker", "checkout-api"])), field: "spec.stages", hint: "give staging its own Deployment" },
        Case { what: "empty stage name", resource: rel, spec: with(r(), "/stages/0/name", json!("")), field: "spec.stages[0].name", hint: "at least 1" },
        Case { what: "stage without deployments", resource: rel, spec: with(r(), "/stages/0/deployments", json!([])), field: "spec.stages[0].deployments", hint: "at least 1" },
        Case { what: "smoke-test timeout is not a duration", resource: rel, spec: with(r(), "/stages/0/smokeTest/timeout", json!("10 minutes")), field: "spec.stages[0].smokeTest.timeout", hint: "duration such as" },
        Case { what: "rollout timeout is not a duration", resource: rel, spec: with(r(), "/stages/0/rolloutTimeout", json!("5x")), field: "spec.stages[0].rolloutTimeout", hint: "duration such as" },
        Case { what: "smoke-test template has no containers", resource: rel, spec: with(r(), "/stages/0/smokeTest/template", json!({"spec": {}})), field: "spec.stages[0].smokeTest.template", hint: "spec.template.spec.containers" },
        Case { what: "zero approvers", resource: rel, spec: with(r(), "/stages/1/approval/approvers", json!(0)), field: "spec.stages[1].approval.approvers", hint: "greater than or equal to 1" },
        Case { what: "approval decision is not Approved/Rejected", resource: app, spec: with(good_approval(), "/decision", json!("Maybe")), field: "spec.decision", hint: "\"Approved\", \"Rejected\"" },
        Case { what: "approval version is not semver", resource: app, spec: with(good_approval(), "/version", json!("latest")), field: "spec.version", hint: "semantic version" },
        Case { what: "approval without approver", resource: app, spec: with(good_approval(), "/approver", Value::Null), field: "spec.approver", hint: "Required value" },
        Case { what: "calendar time zone is not IANA", resource: cal, spec: with(good_calendar(), "/timeZone", json!("Central European Time")), field: "spec.timeZone", hint: "IANA time zone" },
        Case { what: "window rrule is not an RRULE", resource: cal, spec: with(good_calendar(), "/windows/0", json!({"name": "w", "rrule": "every tuesday", "duration": "6h"})), field: "spec.windows[0].rrule", hint: "RFC 5545" },
        Case { what: "window with both rrule and weekly", resource: cal, spec: with(good_calendar(), "/windows/0/rrule", json!("FREQ=DAILY;BYHOUR=9")), field: "spec.windows[0]", hint: "either rrule" },
        Case { what: "window rrule without duration", resource: cal, spec: with(good_calendar(), "/windows/0", json!({"name": "w", "rrule": "FREQ=DAILY;BYHOUR=9"})), field: "spec.windows[0]", hint: "needs a duration" },
        Case { what: "weekly start is not HH:MM", resource: cal, spec: with(good_calendar(), "/windows/0/weekly/start", json!("9am")), field: "spec.windows[0].weekly.start", hint: "HH:MM" },
        Case { what: "freeze with neither start nor rrule", resource: cal, spec: with(good_calendar(), "/freezes/0", json!({"name": "f"})), field: "spec.freezes[0]", hint: "needs a start" },
        Case { what: "freeze allows an unknown type", resource: cal, spec: with(good_calendar(), "/freezes/0/allowTypes", json!(["Hotfix"])), field: "spec.freezes[0].allowTypes[0]", hint: "\"Patch\", \"Minor\", \"Major\"" },
        Case { what: "recurring freeze with an end", resource: cal, spec: with(good_calendar(), "/freezes/0", json!({"name": "f", "rrule": "FREQ=WEEKLY;BYDAY=FR;BYHOUR=14", "duration": "10h", "end": "2027-01-04"})), field: "spec.freezes[0]", hint: "UNTIL" },
        Case { what: "one-off freeze with a duration", resource: cal, spec: with(good_calendar(), "/freezes/0/duration", json!("48h")), field: "spec.freezes[0]", hint: "only a freeze with an rrule takes a duration" },
    ]
}

async fn create(
    client: &kube::Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = if ar.kind == "ReleaseCalendar" {
        Api::all_with(client.clone(), ar)
    } else {
        Api::namespaced_with(client.clone(), ns, ar)
    };
    api.create(&PostParams::default(), &object(ar, name, spec))
        .await
}

#[tokio::test]
async fn valid_manifests_are_accepted() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("api-valid").await?;
    create(
        &client,
        &release_resource(),
        ns.name(),
        "checkout-2-3-0",
        good_release(),
    )
    .await?;
    // good_release names checkout-api in two stages that deploy to two namespaces. A stage without
    // a namespace next to one that names a namespace passes admission too (CEL cannot see the
    // Release's namespace; the controller checks that pair), and so do two stages in the
    // Release's namespace with a Deployment each.
    let in_release_namespace = |doc: Value| {
        let doc = with(doc, "/stages/0/namespace", Value::Null);
        with(doc, "/stages/1/namespace", Value::Null)
    };
    for (name, spec) in [
        (
            "staging-elsewhere",
            with(good_release(), "/stages/0/namespace", Value::Null),
        ),
        (
            "two-deployments-here",
            with(
                in_release_namespace(good_release()),
                "/stages/0/deployments",
                json!(["checkout-api-staging"]),
            ),
        ),
    ] {
        create(&client, &release_resource(), ns.name(), name, spec).await?;
    }
    create(
        &client,
        &approval_resource(),
        ns.name(),
        "checkout-2-3-0-alice",
        good_approval(),
    )
    .await?;
    let cal_name = format!("{}-cal", ns.name());
    create(
        &client,
        &calendar_resource(),
        ns.name(),
        &cal_name,
        good_calendar(),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("api-invalid").await?;
    let cases = invalid_cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ar = (case.resource)();
        let name = format!("{}-bad-{i}", ns.name());
        match create(&client, &ar, ns.name(), &name, case.spec.clone()).await {
            Ok(_) => failures.push(format!(
                "{}: accepted, expected a rejection naming {}",
                case.what, case.field
            )),
            Err(kube::Error::Api(status)) => {
                let msg = &status.message;
                if status.code != 422 || !msg.contains(case.field) || !msg.contains(case.hint) {
                    failures.push(format!(
                        "{}: expected 422 naming {:?} with {:?}, got {}: {msg}",
                        case.what, case.field, case.hint, status.code
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: unexpected error {other}", case.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn immutable_fields_cannot_change() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("api-immutable").await?;
    let rel = release_resource();
    create(&client, &rel, ns.name(), "checkout", good_release()).await?;
    let releases: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &rel);
    let params = PatchParams::default();
    for (patch, field) in [
        (json!({"spec": {"version": "2.4.0"}}), "spec.version"),
        (
            json!({"spec": {"application": "billing"}}),
            "spec.application",
        ),
        (
            json!({"spec": {"images": [{"container": "api", "image": "registry.example/checkout:9.9.9"}]}}),
            "spec.images",
        ),
    ] {
        let err = releases
            .patch("checkout", &params, &Patch::Merge(&patch))
            .await
            .expect_err("changing an immutable field must be rejected");
        let msg = err.to_string();
        assert!(
            msg.contains(field) && msg.contains("immutable"),
            "{field}: {msg}"
        );
    }
    // Fields that are not immutable can change: aborting is always allowed.
    releases
        .patch(
            "checkout",
            &params,
            &Patch::Merge(&json!({"spec": {"abort": true}})),
        )
        .await?;

    let app = approval_resource();
    create(&client, &app, ns.name(), "signoff", good_approval()).await?;
    let approvals: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &app);
    let err = approvals
        .patch(
            "signoff",
            &params,
            &Patch::Merge(&json!({"spec": {"decision": "Rejected"}})),
        )
        .await
        .expect_err("approvals are immutable");
    assert!(err.to_string().contains("immutable"), "{err}");
    Ok(())
}

fn kubectl_output(cp: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let out = cp.kubectl().args(args).output()?;
    stdout_of(out, &format!("kubectl {}", args.join(" ")))
}

#[tokio::test]
async fn kubectl_explain_prints_our_descriptions() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let stages = kubectl_output(cp, &["explain", "release.spec.stages"])?;
    assert!(
        stages.contains("The stages in the order they run"),
        "{stages}"
    );
    assert!(stages.contains("smokeTest"), "{stages}");
    let short = kubectl_output(cp, &["explain", "rel.spec.version"])?;
    assert!(short.contains("semantic version"), "{short}");
    let cal = kubectl_output(cp, &["explain", "relcal.spec.freezes.allowTypes"])?;
    assert!(cal.contains("hotfixes"), "{cal}");
    Ok(())
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("api-columns").await?;
    create(
        &client,
        &release_resource(),
        ns.name(),
        "checkout-2-3-0",
        good_release(),
    )
    .await?;
    let table = kubectl_output(cp, &["get", "rel", "-n", ns.name()])?;
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "APPLICATION",
        "VERSION",
        "TYPE",
        "PHASE",
        "READY",
        "AGE",
    ] {
        assert!(header.contains(column), "missing column {column}: {table}");
    }
    assert!(
        table.contains("checkout") && table.contains("2.3.0") && table.contains("Minor"),
        "{table}"
    );
    let wide = kubectl_output(cp, &["get", "relman", "-n", ns.name(), "-o", "wide"])?;
    assert!(wide.contains("STAGE") && wide.contains("MESSAGE"), "{wide}");
    Ok(())
}

#[tokio::test]
async fn examples_apply_cleanly() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("api-examples").await?;
    // The example approval is alice's; the admin applies it here, so the namespace steps out of
    // the harness's binding of the approval identity policy (which would refuse that).
    let unbound =
        serde_json::json!({"metadata": {"labels": {relman_testenv::UNBOUND_LABEL: "unbound"}}});
    kube::api::Api::<k8s_openapi::api::core::v1::Namespace>::all(cp.client().await?)
        .patch(
            ns.name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&unbound),
        )
        .await?;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = kubectl_output(cp, &["apply", "--server-side", "-n", ns.name(), "-f", dir])?;
    for applied in [
        "release.relman.io/checkout-2-3-0",
        "releaseapproval.relman.io/checkout-2-3-0-production-alice",
        "releasecalendar.relman.io/q4-2026",
    ] {
        assert!(out.contains(applied), "{applied} not applied: {out}");
    }
    Ok(())
}
