//! The Releases the tests create: [`release`] gives a valid Release of an application with a
//! staging and a production stage whose smoke tests pass, and the [`ReleaseBuilder`]'s methods
//! change what a test is about (a failing smoke test, a sign-off, a calendar, ...).

use relman::api::Release;
use relman_testenv::{FAIL_LABEL, NEVER_READY_LABEL};
use serde_json::{Value, json};

/// How a stage's smoke test behaves on the local control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoke {
    /// The Job's pod succeeds.
    Passes,
    /// The Job's pod fails ([`FAIL_LABEL`]).
    Fails,
    /// The Job's pod never finishes ([`NEVER_READY_LABEL`]).
    NeverFinishes,
}

impl From<bool> for Smoke {
    /// `true`: [`Smoke::Passes`]; `false`: [`Smoke::Fails`].
    fn from(passes: bool) -> Self {
        if passes { Smoke::Passes } else { Smoke::Fails }
    }
}

/// How long a smoke test may run unless a test says otherwise.
pub const SMOKE_TIMEOUT: &str = "5m";

/// A stage's smoke test (`spec.stages[].smokeTest`) that passes (`true`), fails (`false`) or
/// behaves as a [`Smoke`] says, with a timeout of [`SMOKE_TIMEOUT`].
pub fn smoke(behaviour: impl Into<Smoke>) -> Value {
    let labels = match behaviour.into() {
        Smoke::Passes => json!({}),
        Smoke::Fails => json!({ FAIL_LABEL: "true" }),
        Smoke::NeverFinishes => json!({ NEVER_READY_LABEL: "true" }),
    };
    json!({"timeout": SMOKE_TIMEOUT, "template": {"spec": {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels},
        "spec": hardened(json!([{"name": "smoke", "image": "smoke:1"}]))
    }}}})
}

/// A Job's pod spec running `containers` that meets the Pod Security restricted level, what a
/// namespace without a ReleasePolicy lets a Release's Jobs ask for: non-root, a RuntimeDefault
/// seccomp profile, no privilege escalation, every capability dropped.
pub fn hardened(containers: Value) -> Value {
    let containers: Vec<Value> = containers
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            c["securityContext"] = json!({
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}
            });
            c
        })
        .collect();
    json!({
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers
    })
}

/// `<application>-<version>` with dots (and `+`) as dashes: `web-2-0-0`.
pub fn release_name(application: &str, version: &str) -> String {
    format!("{application}-{}", version.replace(['.', '+'], "-"))
}

/// A Release of `application` at `version`, named [`release_name`]: a Major release owned by
/// team-web, image `<application>:<version>` for container `api`, through the stages
/// `staging` (Deployment `<application>-staging`) and `production` (`<application>-prod`),
/// both smoke tests passing.
pub fn release(application: &str, version: &str) -> ReleaseBuilder {
    ReleaseBuilder::new(application, version)
}

/// A stage: its JSON without the smoke test, and how the smoke test behaves.
#[derive(Clone, Debug)]
struct Stage {
    fields: Value,
    smoke: Smoke,
}

/// A Release being put together; [`ReleaseBuilder::build`] makes it.
#[derive(Clone, Debug)]
#[must_use]
pub struct ReleaseBuilder {
    name: String,
    annotations: Option<Value>,
    /// The spec without its stages.
    spec: Value,
    stages: Vec<Stage>,
    smoke_timeout: String,
}

impl ReleaseBuilder {
    /// See [`release`].
    pub fn new(application: &str, version: &str) -> Self {
        let stage = |name: &str, deployment: String| Stage {
            fields: json!({"name": name, "deployments": [deployment]}),
            smoke: Smoke::Passes,
        };
        Self {
            name: release_name(application, version),
            annotations: None,
            spec: json!({
                "application": application,
                "version": version,
                "type": "Major",
                "owner": "team-web",
                "rollbackPlan": "revert to 1.0.0",
                "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
                "images": [{"container": "api", "image": format!("{application}:{version}")}],
            }),
            stages: vec![
                stage("staging", format!("{application}-staging")),
                stage("production", format!("{application}-prod")),
            ],
            smoke_timeout: SMOKE_TIMEOUT.to_owned(),
        }
    }

    /// The Release's name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another `metadata.name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// `metadata.annotations`.
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// `spec.type`: Patch, Minor or Major.
    pub fn release_type(self, release_type: &str) -> Self {
        self.set("type", json!(release_type))
    }

    pub fn owner(self, owner: &str) -> Self {
        self.set("owner", json!(owner))
    }

    pub fn rollback_plan(self, plan: &str) -> Self {
        self.set("rollbackPlan", json!(plan))
    }

    /// `spec.notes.summary` (the migration steps stay "none").
    pub fn summary(mut self, summary: &str) -> Self {
        self.spec["notes"]["summary"] = json!(summary);
        self
    }

    /// `spec.notes`, whole.
    pub fn notes(self, notes: Value) -> Self {
        self.set("notes", notes)
    }

    /// The image of container `api`.
    pub fn image(mut self, image: &str) -> Self {
        self.spec["images"][0]["image"] = json!(image);
        self
    }

    /// `spec.targetDate` (YYYY-MM-DD).
    pub fn target_date(self, date: &str) -> Self {
        self.set("targetDate", json!(date))
    }

    /// `spec.calendar`, the ReleaseCalendar whose windows stages with `window: true` wait for.
    pub fn calendar(self, calendar: &str) -> Self {
        self.set("calendar", json!(calendar))
    }

    /// `spec.requirements`.
    pub fn requirements(self, requirements: Value) -> Self {
        self.set("requirements", requirements)
    }

    /// `spec.notify`.
    pub fn notify(self, targets: Value) -> Self {
        self.set("notify", targets)
    }

    /// Sets `spec.<key>`.
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.spec[key] = value;
        self
    }

    /// How staging's smoke test behaves.
    pub fn staging(self, smoke: impl Into<Smoke>) -> Self {
        let smoke = smoke.into();
        self.stage("staging", |stage| stage.smoke = smoke)
    }

    /// How production's smoke test behaves.
    pub fn production(self, smoke: impl Into<Smoke>) -> Self {
        let smoke = smoke.into();
        self.stage("production", |stage| stage.smoke = smoke)
    }

    /// Production waits for one sign-off (`approval: {approvers: 1}`).
    pub fn production_approval(self) -> Self {
        self.merge_stage("production", json!({"approval": {"approvers": 1}}))
    }

    /// Production waits for a window of the calendar (`window: true`).
    pub fn production_window(self) -> Self {
        self.merge_stage("production", json!({"window": true}))
    }

    /// Only the staging stage.
    pub fn only_staging(mut self) -> Self {
        self.stages
            .retain(|stage| stage.fields["name"] == "staging");
        self
    }

    /// Merges the keys of `fields` into the stage `name`.
    pub fn merge_stage(self, name: &str, fields: Value) -> Self {
        self.stage(name, |stage| {
            if let (Some(stage), Value::Object(fields)) = (stage.fields.as_object_mut(), fields) {
                stage.extend(fields);
            }
        })
    }

    /// Every smoke test's timeout.
    pub fn smoke_timeout(mut self, timeout: &str) -> Self {
        self.smoke_timeout = timeout.to_owned();
        self
    }

    fn stage(mut self, name: &str, change: impl FnOnce(&mut Stage)) -> Self {
        let stage = self
            .stages
            .iter_mut()
            .find(|stage| stage.fields["name"] == name)
            .unwrap_or_else(|| panic!("the release has no stage {name}"));
        change(stage);
        self
    }

    /// The spec as JSON, for tests that send it as it is or edit it in place.
    pub fn spec_json(&self) -> Value {
        let mut spec = self.spec.clone();
        spec["stages"] = self
            .stages
            .iter()
            .map(|stage| {
                let mut fields = stage.fields.clone();
                fields["smokeTest"] = smoke(stage.smoke);
                fields["smokeTest"]["timeout"] = json!(self.smoke_timeout);
                fields
            })
            .collect();
        spec
    }

    /// The whole object as JSON.
    pub fn json(&self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(annotations) = &self.annotations {
            metadata["annotations"] = annotations.clone();
        }
        json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": metadata,
            "spec": self.spec_json(),
        })
    }

    pub fn build(&self) -> Release {
        serde_json::from_value(self.json()).expect("valid Release")
    }
}
