//! What the integration tests share: the Releases they create ([`release`], [`smoke`]), the
//! Deployments those drive ([`deployment`]), a test namespace with the staging and production
//! Deployments of application `web` and a controller for it ([`Env`]), waits for Events and
//! for anything else that comes eventually, a plain HTTP GET, JSON and YAML helpers, and the
//! consent of a namespace to another namespace's Releases.
//!
//! Each test file is its own binary and compiles this module as `mod support;` (a test in a
//! directory as `#[path = "../support/mod.rs"] mod support;`); what a file does not use is
//! dead code there.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

mod env;
mod release;
mod wait;

#[allow(unused_imports)] // Each test binary uses some.
pub use env::{Env, OLD_IMAGE, web};
#[allow(unused_imports)]
pub use release::{ReleaseBuilder, SMOKE_TIMEOUT, Smoke, hardened, release, release_name, smoke};
#[allow(unused_imports)]
pub use wait::{
    events, events_now, eventually, wait_deployment_available, wait_for, wait_until_rejected,
};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use relman::api::labels::ANNOTATION_ACCEPT_RELEASES_FROM;
use relman::api::{ReleaseApproval, ReleaseStatus};
use relman::controller::Context;
use relman::controller::calendar::{CalendarController, CalendarScope};
use relman::k8s::scope::Scope;
use relman::plan::PlanConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The label that ties a test's ReleaseCalendar (cluster-scoped, named after the test's
/// namespace) to the test's calendar controller.
pub const CALENDAR_LABEL: &str = "relman.io/test-namespace";

/// How long a test waits for the cluster or the controller.
pub const WAIT: Duration = Duration::from_secs(120);

/// relman's entries in an object's managedFields: each write by relman's field manager updates
/// its entry's time (and fields), so equal entries mean relman wrote nothing.
pub fn relman_writes(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("relman"))
        .map(|m| {
            format!(
                "{:?} {:?} {:?} {:?}",
                m.operation, m.subresource, m.time, m.fields_v1
            )
        })
        .collect()
}

/// The stdout of a command that ran as `what`; its stderr as the error when it failed.
pub fn stdout_of(output: std::process::Output, what: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The condition `type_` of `status`; panics with the status when it is missing.
pub fn condition<'a>(status: &'a ReleaseStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {status:#?}"))
}

/// A Release controller's context for `client`, its Events reported by `instance`.
pub fn context(client: &kube::Client, instance: &str) -> Context {
    Context::new(
        client.clone(),
        Some(instance.to_owned()),
        PlanConfig::default(),
    )
}

/// Runs the Release controller with `ctx` for namespace `ns` until the handle is aborted (or
/// the test ends).
pub fn run_controller(ctx: Arc<Context>, ns: &str) -> JoinHandle<()> {
    run_controller_in(ctx, Scope::one(ns))
}

/// [`run_controller`] for the namespaces of `scope`.
pub fn run_controller_in(ctx: Arc<Context>, scope: Scope) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = relman::controller::run(ctx, scope, std::future::pending()).await;
    })
}

/// [`run_controller`] with a [`context`] for `client` and `instance`.
pub fn start_controller(client: &kube::Client, ns: &str, instance: &str) -> JoinHandle<()> {
    run_controller(Arc::new(context(client, instance)), ns)
}

/// A calendar controller for the Releases of namespace `ns` that reads only the calendars
/// labelled [`CALENDAR_LABEL`]`=<ns>`.
pub fn calendar_controller(client: &kube::Client, ns: &str) -> CalendarController {
    CalendarController::new(
        client.clone(),
        CalendarScope {
            release_namespaces: Scope::one(ns),
            calendar_selector: Some(format!("{CALENDAR_LABEL}={ns}")),
        },
    )
}

/// Deployment `name` of `replicas` pods labelled `app: <name>`, running `image` in container
/// `api`.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    deployment_with(name, image, replicas, json!({}))
}

/// [`deployment`] with `extra_spec`'s keys merged into its spec.
pub fn deployment_with(name: &str, image: &str, replicas: i32, extra_spec: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "api", "image": image}]}
        }
    });
    merge(&mut spec, extra_spec);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
        .expect("valid Deployment")
}

/// The image of the first container of `d`.
pub fn image_of(d: &Deployment) -> String {
    d.spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Shallow merge of `extra`'s keys into `value`.
pub fn merge(value: &mut Value, extra: Value) {
    if let (Some(value), Value::Object(extra)) = (value.as_object_mut(), extra) {
        value.extend(extra);
    }
}

/// `doc` with `value` at the JSON pointer (its parent must exist); `null` removes the key.
pub fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    match doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the document"))
    {
        Value::Object(map) if value.is_null() => {
            map.remove(key);
        }
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        other => panic!("cannot set {key} in {other}"),
    }
    doc
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The documents of the file `path` (e.g. one in `config/`): see [`documents`].
pub fn file_documents(path: &str) -> anyhow::Result<Vec<Value>> {
    documents(&std::fs::read_to_string(path)?)
}

/// An approval of release `release` at `version` and `gate`, signed `approver`, named `name`,
/// with the comment "Staging verified.".
pub fn approval(
    name: &str,
    release: &str,
    version: &str,
    gate: &str,
    approver: &str,
) -> ReleaseApproval {
    serde_json::from_value(json!({
        "apiVersion": "relman.io/v1alpha1",
        "kind": "ReleaseApproval",
        "metadata": {"name": name},
        "spec": {
            "release": release,
            "version": version,
            "gate": gate,
            "decision": "Approved",
            "approver": approver,
            "comment": "Staging verified."
        }
    }))
    .expect("valid ReleaseApproval")
}

/// `GET path` on `addr`: the status code, the head and the body.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await??;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end in {response:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status in {head:?}"))?;
    Ok((code, head.to_owned(), body.to_owned()))
}

/// Lets Releases of the namespaces `from` (comma-separated, or `*`) drive stages in `namespace`,
/// as `kubectl annotate --overwrite namespace <namespace> relman.io/accept-releases-from=<from>`
/// does; `None` removes the annotation (withdraws the consent).
pub async fn accept_releases_from(
    client: &kube::Client,
    namespace: &str,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ACCEPT_RELEASES_FROM: from}}});
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
