//! The chart's ServiceAccount and RBAC objects installed, and what they grant.

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use relman_testenv::ControlPlane;
use serde_json::json;

use crate::helm::{apply, template_text};

/// Installs the chart's ServiceAccount and RBAC objects (release and namespace `ns`) and returns
/// a client authenticated as that ServiceAccount with a TokenRequest token.
pub async fn install_rbac(
    cp: &ControlPlane,
    ns: &str,
    args: &[&str],
) -> anyhow::Result<kube::Client> {
    let mut all = vec![
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ];
    all.extend_from_slice(args);
    let manifests = template_text(cp, ns, ns, &all)?;
    apply(cp, &manifests)?;
    service_account_client(cp, ns, &format!("{ns}-relman")).await
}

/// [`install_rbac`] with `clusterWide=true`: relman may act in every namespace.
pub async fn install_cluster_wide_rbac(
    cp: &ControlPlane,
    ns: &str,
    args: &[&str],
) -> anyhow::Result<kube::Client> {
    let mut all = vec!["--set", "clusterWide=true"];
    all.extend_from_slice(args);
    install_rbac(cp, ns, &all).await
}

/// For a relman that manages namespace `<prefix>-…` and `<prefix>-stage-…` (new test
/// namespaces) and no other: [`install_rbac`] with `managedNamespaces` set to them. Returns
/// the two namespaces and the ServiceAccount's client.
pub async fn install_namespaced_rbac(
    cp: &ControlPlane,
    prefix: &str,
    args: &[&str],
) -> anyhow::Result<(String, String, kube::Client)> {
    let ns = cp.test_namespace(prefix).await?.name().to_owned();
    let stage_ns = cp
        .test_namespace(&format!("{prefix}-stage"))
        .await?
        .name()
        .to_owned();
    let managed = format!("managedNamespaces={{{ns},{stage_ns}}}");
    let mut all = vec!["--set", managed.as_str()];
    all.extend_from_slice(args);
    let relman = install_rbac(cp, &ns, &all).await?;
    Ok((ns, stage_ns, relman))
}

/// A client for ServiceAccount `namespace/name`: a bearer token from the TokenRequest API, the
/// admin's server URL and CA, no client certificate.
pub async fn service_account_client(
    cp: &ControlPlane,
    namespace: &str,
    name: &str,
) -> anyhow::Result<kube::Client> {
    let admin = cp.client().await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    }))?;
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    let token = issued
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow::anyhow!("the TokenRequest for {namespace}/{name} has no status"))?;
    let mut config = cp.config().clone();
    config.auth_info = serde_json::from_value(json!({ "token": token }))?;
    Ok(kube::Client::try_from(config)?)
}

/// (API group, resource, verb, resource name) — an empty name means any object.
pub type Grant = (String, String, String, String);
pub type Grants = BTreeSet<Grant>;

pub fn grant(group: &str, resource: &str, verb: &str, name: &str) -> Grant {
    (group.into(), resource.into(), verb.into(), name.into())
}

/// Grants on any object of each resource.
pub fn grants(rules: &[(&str, &str, &[&str])]) -> Grants {
    rules
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.iter().map(|verb| grant(group, resource, verb, ""))
        })
        .collect()
}

/// What every authenticated user may do: ask what it may do (system:basic-user) and read
/// ClusterTrustBundles (system:cluster-trust-bundle-discovery).
pub fn default_grants() -> Grants {
    grants(&[
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            &["create"],
        ),
        (
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            &["create"],
        ),
        ("authentication.k8s.io", "selfsubjectreviews", &["create"]),
        (
            "certificates.k8s.io",
            "clustertrustbundles",
            &["get", "list", "watch"],
        ),
    ])
}

/// What relman needs where it reconciles Releases — each line is an API call in src/ —
/// except Secrets ([`secret_grants`]).
pub fn release_grants() -> Grants {
    grants(&[
        ("relman.io", "releases", &["get", "list", "watch"]),
        ("relman.io", "releases/status", &["patch"]),
        ("relman.io", "releaseapprovals", &["list", "watch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "configmaps", &["get", "create", "patch"]),
    ])
}

/// The notification Secrets: `get` by name only, on any Secret (`names` empty) or on the
/// Secrets of `names` (`rbac.notificationSecretNames`).
pub fn secret_grants(names: &[&str]) -> Grants {
    if names.is_empty() {
        return grants(&[("", "secrets", &["get"])]);
    }
    names
        .iter()
        .map(|name| grant("", "secrets", "get", name))
        .collect()
}

/// What relman needs where a stage deploys. The ReleasePolicy rule is granted ahead of the
/// code that reads it: its CRD is not installed here yet, so no test can show relman using it;
/// the rules review below still shows it is granted, and where.
pub fn workload_grants() -> Grants {
    grants(&[
        ("apps", "deployments", &["get", "list", "watch", "patch"]),
        ("batch", "jobs", &["list", "watch", "create"]),
        ("", "pods", &["list"]),
        ("relman.io", "releasepolicies", &["get", "list", "watch"]),
    ])
}

/// Cluster-scoped, with clusterWide: read any Namespace, for the consent of a stage namespace
/// other than its Release's (`relman.io/accept-releases-from`).
pub fn namespace_grants() -> Grants {
    grants(&[("", "namespaces", &["get"])])
}

/// Cluster-scoped: the calendars, and their status; the admission policies and bindings that
/// decide where sign-offs count.
pub fn cluster_grants() -> Grants {
    grants(&[
        ("relman.io", "releasecalendars", &["get", "list", "watch"]),
        ("relman.io", "releasecalendars/status", &["patch"]),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            &["list", "watch"],
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            &["list", "watch"],
        ),
    ])
}

/// Leader election, in the namespace relman runs in: create a Lease, then only its own, `lease`.
pub fn lease_grants(lease: &str) -> Grants {
    let group = "coordination.k8s.io";
    Grants::from([
        grant(group, "leases", "create", ""),
        grant(group, "leases", "get", lease),
        grant(group, "leases", "update", lease),
    ])
}

/// Fails, naming the differences, unless `actual` equals `expected`.
pub fn assert_grants(actual: &Grants, expected: &Grants, context: &str) {
    let extra: Vec<_> = actual.difference(expected).collect();
    let missing: Vec<_> = expected.difference(actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{context}: granted but not expected: {extra:?}; expected but not granted: {missing:?}"
    );
}

/// Everything `client` may do in `namespace`, per SelfSubjectRulesReview.
pub async fn granted(client: &kube::Client, namespace: &str) -> anyhow::Result<Grants> {
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review: SelfSubjectRulesReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace}
    }))?;
    let status = api
        .create(&PostParams::default(), &review)
        .await?
        .status
        .ok_or_else(|| anyhow::anyhow!("SelfSubjectRulesReview without status"))?;
    anyhow::ensure!(!status.incomplete, "incomplete rules: {status:?}");
    let mut out = Grants::new();
    for rule in status.resource_rules {
        let names = match rule.resource_names {
            Some(names) if !names.is_empty() => names,
            _ => vec![String::new()],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        out.insert(grant(group, resource, verb, name));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// [`granted`], asked again for up to 20 s until it equals `expected`: the authorizer picks up
/// changed RBAC objects a moment after they are written. Returns the last answer.
pub async fn eventually_granted(
    client: &kube::Client,
    namespace: &str,
    expected: &Grants,
) -> anyhow::Result<Grants> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = granted(client, namespace).await?;
        if &now == expected || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Asks the API server whether `client` may `verb` `resource` (of `group`) in `namespace`
/// (`None`: in every namespace, or a cluster-scoped resource), on the object `name` if given.
pub async fn allowed(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "namespace": namespace, "name": name
        }}
    }))?;
    let created = api.create(&PostParams::default(), &review).await?;
    Ok(created.status.is_some_and(|s| s.allowed))
}
