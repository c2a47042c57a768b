//! kwok, which plays the kubelet: its stages and its fake node.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::wait::Condition;

use crate::error::{Error, Result};

/// Label a pod (template) with `relman.io/test-fail: "true"` to make it fail: a Job's pod
/// (restart policy Never or OnFailure) ends `Failed` with its containers terminated with exit
/// code 1; a Deployment's pod (restart policy Always) runs but is never Ready, its containers in
/// `CrashLoopBackOff`.
pub const FAIL_LABEL: &str = "relman.io/test-fail";

/// Label a pod (template) with `relman.io/test-never-ready: "true"` to make it run without ever
/// becoming Ready (a Job's pod never finishes).
pub const NEVER_READY_LABEL: &str = "relman.io/test-never-ready";

/// Label a Running, Ready pod with `relman.io/test-crash: "true"` (e.g. `kubectl label pod`)
/// to make it start crash-looping and lose its readiness: a release that breaks after it
/// passed its checks.
pub const CRASH_LABEL: &str = "relman.io/test-crash";

/// A container image whose tag ends with this suffix (e.g. `web:never-ready`) runs without ever
/// becoming Ready: a release can ship a version that never becomes ready.
pub const NEVER_READY_IMAGE_SUFFIX: &str = ":never-ready";

/// The annotation that tells kwok to manage a node, and its value.
pub(crate) const NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
pub(crate) const NODE_ANNOTATION_VALUE: &str = "fake";

/// The fake node every pod is scheduled to.
pub const NODE_NAME: &str = "kwok-node-0";

/// The stages (see `testenv/kwok/stages.yaml` for what each does).
pub(crate) const STAGES: &str = include_str!("../kwok/stages.yaml");

/// How long the fake node may take to become Ready and schedulable.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Registers the fake node: labelled `type=kwok`, annotated for kwok, without taints.
pub(crate) async fn register_node(client: &kube::Client) -> Result<()> {
    let strings = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_owned()),
            annotations: Some(strings(&[
                (NODE_ANNOTATION, NODE_ANNOTATION_VALUE),
                ("node.alpha.kubernetes.io/ttl", "0"),
            ])),
            labels: Some(strings(&[
                ("type", "kwok"),
                ("kubernetes.io/hostname", NODE_NAME),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("node-role.kubernetes.io/agent", ""),
            ])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .map_err(Error::kube(format!("register the fake node {NODE_NAME}")))?;
    Ok(())
}

/// Waits until the fake node is Ready and carries no NoSchedule taint (the node lifecycle
/// controller removes `node.kubernetes.io/not-ready` once kwok reports Ready).
pub(crate) async fn wait_node_schedulable(client: &kube::Client) -> Result<()> {
    crate::wait::until(
        Api::<Node>::all(client.clone()),
        NODE_NAME,
        node_schedulable(),
        NODE_READY_TIMEOUT,
        format!("node {NODE_NAME} to be Ready and schedulable"),
    )
    .await
}

/// Ready=True and no NoSchedule or NoExecute taint.
fn node_schedulable() -> impl Condition<Node> {
    |node: Option<&Node>| {
        let Some(node) = node else { return false };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.effect != "PreferNoSchedule"));
        ready && !tainted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_use_the_exported_labels() {
        assert!(STAGES.contains(&format!(r#"labels["{FAIL_LABEL}"]"#)));
        assert!(STAGES.contains(&format!(r#"labels["{NEVER_READY_LABEL}"]"#)));
        assert!(STAGES.contains(&format!(r#"labels["{CRASH_LABEL}"]"#)));
        assert!(STAGES.contains(&format!(r#"endswith("{NEVER_READY_IMAGE_SUFFIX}")"#)));
    }

    #[test]
    fn stages_parse_as_yaml_documents() {
        use serde::Deserialize as _;
        let names: Vec<String> = serde_yaml::Deserializer::from_str(STAGES)
            .map(|doc| {
                let value = serde_yaml::Value::deserialize(doc).unwrap();
                assert_eq!(value["kind"].as_str(), Some("Stage"));
                value["metadata"]["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "node-initialize",
                "node-heartbeat-with-lease",
                "pod-ready",
                "pod-never-ready",
                "pod-never-ready-image",
                "pod-fail",
                "pod-crash-loop",
                "pod-start-crashing",
                "pod-complete",
                "pod-delete"
            ]
        );
    }
}
