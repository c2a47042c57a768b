//! Gates on the local control plane: the release type check, the migration-steps requirement,
//! sign-offs whose identity the API server enforces (the admission policies and roles shipped
//! in `config/`), and the release notes published before production.
//!
//! ValidatingAdmissionPolicyBindings are cluster-wide, so each test binds the shipped policies
//! to its own namespace only (a namespaceSelector on `kubernetes.io/metadata.name`): tests in
//! other namespaces, and the admin user they act as, are not affected.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseApproval, ReleaseStatus};
use relman::controller::Context;
use relman::notes::{NOTES_KEY, config_map_name, render};
use relman_testenv::ControlPlane;
use serde_json::{Value, json};
use support::{
    ReleaseBuilder, condition, context, file_documents, relman_writes, run_controller, stdout_of,
    wait_for, wait_until_rejected,
};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(120);
/// How long a new policy binding may take to be enforced.
const POLICY_WAIT: Duration = Duration::from_secs(60);
const FIELD_MANAGER: &str = "relman-tests";
const POLICY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/approval-policy.yaml");
/// The Release creator policies; the harness installs them on every control plane.
const CREATOR_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/release-creator.yaml");
const ROLES_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/user-roles.yaml");
const RELEASE_MANAGERS: &str = "release-managers";

// -------------------------------------------------------------------------------------------
// The test world
// -------------------------------------------------------------------------------------------

/// A test's namespace, the admin client, and (once started) a controller scoped to it.
struct Env {
    cp: &'static ControlPlane,
    admin: kube::Client,
    ns: String,
    releases: Api<Release>,
}

impl Env {
    async fn new(prefix: &str) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        let admin = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        Ok(Self {
            cp,
            releases: Api::namespaced(admin.clone(), &ns),
            admin,
            ns,
        })
    }

    fn controller(&self) -> JoinHandle<()> {
        self.controller_with(Arc::new(context(&self.admin, "gates-test")))
    }

    fn controller_with(&self, ctx: Arc<Context>) -> JoinHandle<()> {
        run_controller(ctx, &self.ns)
    }

    /// Creates Deployments `names` running `web:1.0.0` and waits until they are available.
    async fn deployments(&self, names: &[&str]) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.admin.clone(), &self.ns);
        for name in names {
            let deployment: Deployment = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "api", "image": "web:1.0.0"}]}
                    }
                }
            }))?;
            api.create(&PostParams::default(), &deployment).await?;
        }
        for name in names {
            let available = |d: Option<&Deployment>| {
                d.and_then(|d| d.status.as_ref())
                    .is_some_and(|s| s.available_replicas == Some(1))
            };
            tokio::time::timeout(WAIT, await_condition(api.clone(), name, available))
                .await
                .map_err(|_| anyhow::anyhow!("Deployment {name} did not become available"))??;
        }
        Ok(())
    }

    async fn create(&self, release: &Release) -> anyhow::Result<()> {
        self.releases
            .create(&PostParams::default(), release)
            .await?;
        Ok(())
    }

    /// The Release's status as it is now.
    async fn status(&self, name: &str) -> anyhow::Result<ReleaseStatus> {
        Ok(self.releases.get(name).await?.status.unwrap_or_default())
    }

    async fn patch_spec(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        self.releases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
        Ok(())
    }

    /// Waits until the Release's condition `type_` has `status` (and `reason`, if given).
    async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<ReleaseStatus> {
        let holds = |s: &ReleaseStatus| {
            s.conditions.iter().any(|c| {
                c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r)
            })
        };
        let cond = |r: Option<&Release>| r.and_then(|r| r.status.as_ref()).is_some_and(holds);
        match tokio::time::timeout(WAIT, await_condition(self.releases.clone(), name, cond)).await {
            Ok(found) => Ok(found?.and_then(|r| r.status).unwrap_or_default()),
            Err(_) => {
                let now = self.releases.get(name).await?.status.unwrap_or_default();
                anyhow::bail!(
                    "{name}: timed out waiting for {type_}={status} {reason:?}; status: {now:#?}"
                )
            }
        }
    }

    async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.cp.kubectl();
        command.arg(format!("--namespace={}", self.ns)).args(args);
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        stdout_of(output, &format!("kubectl {args:?}"))
    }
}

/// A Release of application `web` at `version` of type `release_type`, smoke tests with a
/// two-minute timeout.
fn release(version: &str, release_type: &str) -> ReleaseBuilder {
    support::release("web", version)
        .release_type(release_type)
        .rollback_plan("https://wiki.example/web/rollback")
        .summary(&format!("Web {version}."))
        .smoke_timeout("2m")
}

// -------------------------------------------------------------------------------------------
// The shipped admission policies and roles, bound to one namespace
// -------------------------------------------------------------------------------------------

fn of_kind<'a>(documents: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    documents.iter().filter(move |d| d["kind"] == kind)
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Installs the policies and roles of `config/` and binds them to the test's namespace: the
/// shipped bindings with a namespaceSelector added, the sign-off ConfigMap in the test's
/// namespace, and RoleBindings for alice (relman-approver), dave (relman-developer) and the
/// group release-managers (relman-release-manager).
async fn install_identity(env: &Env) -> anyhow::Result<()> {
    let policy = file_documents(POLICY_FILE)?;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(env.admin.clone());
    for document in of_kind(&policy, "ValidatingAdmissionPolicy") {
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        policies
            .patch(name, &apply_params(), &Patch::Apply(document))
            .await?;
    }
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(env.admin.clone());
    for document in of_kind(&policy, "ValidatingAdmissionPolicyBinding") {
        let mut binding = document.clone();
        let name = format!(
            "{}-{}",
            binding["metadata"]["name"].as_str().unwrap(),
            env.ns
        );
        binding["metadata"]["name"] = json!(name);
        binding["spec"]["matchResources"] = json!({"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": env.ns}
        }});
        if binding["spec"]["paramRef"].is_object() {
            binding["spec"]["paramRef"]["namespace"] = json!(env.ns);
        }
        bindings
            .patch(&name, &apply_params(), &Patch::Apply(&binding))
            .await?;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(env.admin.clone(), &env.ns);
    for document in of_kind(&policy, "ConfigMap") {
        let mut config_map = document.clone();
        config_map["metadata"]["namespace"] = json!(env.ns);
        let name = config_map["metadata"]["name"].as_str().unwrap().to_owned();
        config_maps
            .patch(&name, &apply_params(), &Patch::Apply(&config_map))
            .await?;
    }

    let roles: Api<ClusterRole> = Api::all(env.admin.clone());
    for document in of_kind(&file_documents(ROLES_FILE)?, "ClusterRole") {
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        roles
            .patch(name, &apply_params(), &Patch::Apply(document))
            .await?;
    }
    let role_bindings: Api<RoleBinding> = Api::namespaced(env.admin.clone(), &env.ns);
    for (subject_kind, subject, role) in [
        ("User", "alice", "relman-approver"),
        ("User", "dave", "relman-developer"),
        ("Group", RELEASE_MANAGERS, "relman-release-manager"),
    ] {
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-{}", subject.to_lowercase())},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject_kind, "name": subject}]
        }))?;
        role_bindings
            .create(&PostParams::default(), &binding)
            .await?;
    }
    wait_until_enforced(env).await
}

/// Waits until both policies reject what they must (probed with dry runs as the admin, who is
/// neither "nobody" nor a release manager): bindings take effect asynchronously.
async fn wait_until_enforced(env: &Env) -> anyhow::Result<()> {
    let probes = [
        (
            approval("probe", "acceptance-criteria", "nobody"),
            "must be your own user name",
        ),
        (
            approval("probe", "production", relman_testenv::ADMIN_USER),
            "only members of group",
        ),
    ];
    let approvals = Api::namespaced(env.admin.clone(), &env.ns);
    wait_until_rejected(&approvals, &probes, POLICY_WAIT).await
}

/// An approval of release `web-2-0-0` version 2.0.0 at `gate`, signed `approver`.
fn approval(name: &str, gate: &str, approver: &str) -> ReleaseApproval {
    support::approval(name, "web-2-0-0", "2.0.0", gate, approver)
}

/// `approval` naming the uid of the Release it is for, as `kubectl relman approve` writes it:
/// only such a sign-off counts.
async fn bound(env: &Env, mut approval: ReleaseApproval) -> anyhow::Result<ReleaseApproval> {
    approval.spec.release_uid = env.releases.get(&approval.spec.release).await?.metadata.uid;
    Ok(approval)
}

/// Creates `approval` as the user `user` in `groups`.
async fn create_as(
    env: &Env,
    user: &str,
    groups: &[&str],
    approval: &ReleaseApproval,
) -> Result<ReleaseApproval, kube::Error> {
    let client = env
        .cp
        .user_client(user, groups)
        .await
        .expect("a client for the user");
    Api::<ReleaseApproval>::namespaced(client, &env.ns)
        .create(&PostParams::default(), approval)
        .await
}

/// The API server's status of a rejected request.
fn rejection(result: Result<ReleaseApproval, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("expected the API server to reject the request, got {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// Identity and RBAC
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn alice_cannot_approve_as_bob_but_as_herself() -> anyhow::Result<()> {
    let env = Env::new("gates-identity").await?;
    install_identity(&env).await?;

    let (code, message) = rejection(
        create_as(
            &env,
            "alice",
            &["qa"],
            &approval("as-bob", "acceptance-criteria", "bob"),
        )
        .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.approver must be your own user name, alice"),
        "{message}"
    );

    let created = create_as(
        &env,
        "alice",
        &["qa"],
        &approval("as-alice", "acceptance-criteria", "alice"),
    )
    .await?;
    assert_eq!(created.spec.approver, "alice");
    Ok(())
}

#[tokio::test]
async fn only_release_managers_sign_off_production() -> anyhow::Result<()> {
    let env = Env::new("gates-group").await?;
    install_identity(&env).await?;

    // alice may create approvals (relman-approver), but is not a Release Manager.
    let (code, message) = rejection(
        create_as(
            &env,
            "alice",
            &["qa"],
            &approval("alice-prod", "production", "alice"),
        )
        .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains(
            "only members of group release-managers may decide gate production; alice is not a member"
        ),
        "{message}"
    );

    let signed = create_as(
        &env,
        "bob",
        &[RELEASE_MANAGERS],
        &approval("bob-prod", "production", "bob"),
    )
    .await?;
    assert_eq!(signed.spec.gate, "production");
    Ok(())
}

#[tokio::test]
async fn the_shipped_policies_type_check_cleanly() -> anyhow::Result<()> {
    let env = Env::new("gates-typecheck").await?;
    install_identity(&env).await?;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(env.admin.clone());
    let mut documents = file_documents(POLICY_FILE)?;
    documents.extend(file_documents(CREATOR_FILE)?);
    for document in of_kind(&documents, "ValidatingAdmissionPolicy") {
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        // The API server type-checks a policy against the CRD's schema asynchronously.
        let checked = |p: Option<&ValidatingAdmissionPolicy>| {
            p.is_some_and(|p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
            })
        };
        let policy = tokio::time::timeout(WAIT, await_condition(policies.clone(), name, checked))
            .await??
            .expect("the policy exists");
        let warnings = policy
            .status
            .and_then(|s| s.type_checking)
            .and_then(|t| t.expression_warnings)
            .unwrap_or_default();
        assert!(warnings.is_empty(), "{name}: {warnings:#?}");
    }
    Ok(())
}

#[tokio::test]
async fn developers_without_the_role_cannot_create_approvals() -> anyhow::Result<()> {
    let env = Env::new("gates-rbac").await?;
    install_identity(&env).await?;

    // dave is a developer: he may read approvals...
    let dave = env.cp.user_client("dave", &["developers"]).await?;
    Api::<ReleaseApproval>::namespaced(dave, &env.ns)
        .list(&Default::default())
        .await?;
    // ...but no Role lets him create one, not even in his own name.
    let (code, message) = rejection(
        create_as(
            &env,
            "dave",
            &["developers"],
            &approval("dave", "acceptance-criteria", "dave"),
        )
        .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("cannot create resource \"releaseapprovals\""),
        "RBAC, not the policy, refuses: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn approvals_never_change_once_created() -> anyhow::Result<()> {
    let env = Env::new("gates-immutable").await?;
    install_identity(&env).await?;
    create_as(
        &env,
        "bob",
        &[RELEASE_MANAGERS],
        &approval("bob-prod", "production", "bob"),
    )
    .await?;

    // Not even a cluster admin may relabel or reword it.
    let approvals: Api<ReleaseApproval> = Api::namespaced(env.admin.clone(), &env.ns);
    for change in [
        json!({"metadata": {"labels": {"reviewed": "no"}}}),
        json!({"metadata": {"annotations": {"note": "signed by someone else"}}}),
        json!({"spec": {"comment": "changed my mind"}}),
    ] {
        let result = approvals
            .patch("bob-prod", &PatchParams::default(), &Patch::Merge(&change))
            .await;
        match result {
            Err(kube::Error::Api(e)) => assert!(
                e.message.contains("ReleaseApproval is immutable"),
                "{change}: {}",
                e.message
            ),
            other => panic!("{change} was accepted: {other:?}"),
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// The sign-off flow and the release notes
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn notes_are_published_before_production_and_a_release_manager_signs_it_off()
-> anyhow::Result<()> {
    let env = Env::new("gates-signoff").await?;
    install_identity(&env).await?;
    env.deployments(&["web-staging", "web-prod"]).await?;
    let _controller = env.controller();
    let release = release("2.0.0", "Major")
        .production_approval()
        .target_date("2026-12-01")
        .notes(json!({
            "summary": "Web 2: a new basket.",
            "notableChanges": ["New basket", "Faster search"],
            "migrationSteps": ["Run `web migrate --to 2`"],
            "knownIssues": ["The old basket URL redirects once"]
        }));
    env.create(&release.build()).await?;

    // Staging is verified; production waits for the sign-off, which is progress, not failure.
    let waiting = env
        .wait_condition("web-2-0-0", "Reconciling", "True", Some("AwaitingApproval"))
        .await?;
    assert_eq!(condition(&waiting, "Approved").reason, "AwaitingApproval");
    assert_eq!(condition(&waiting, "Stalled").status, "False");
    assert_eq!(condition(&waiting, "StagingVerified").status, "True");
    assert_eq!(
        condition(&waiting, "ProductionDeployed").reason,
        "StageNotStarted"
    );

    // The notes are out before production starts, rendered from the guide's template.
    let stored = env.releases.get("web-2-0-0").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(env.admin.clone(), &env.ns);
    let notes = config_maps.get(&config_map_name("web-2-0-0")).await?;
    assert_eq!(notes.metadata.name.as_deref(), Some("web-2-0-0-notes"));
    let markdown = notes
        .data
        .as_ref()
        .and_then(|d| d.get(NOTES_KEY))
        .cloned()
        .unwrap_or_default();
    assert_eq!(markdown, render(&stored, "2026-12-01"));
    for part in [
        "# web 2.0.0 release notes",
        "- **Version:** 2.0.0 (Major release)",
        "- **Date:** 2026-12-01",
        "Web 2: a new basket.",
        "- Faster search",
        "1. Run `web migrate --to 2`",
        "- The old basket URL redirects once",
        "https://wiki.example/web/rollback",
    ] {
        assert!(markdown.contains(part), "{part:?} in:\n{markdown}");
    }
    let owners = notes.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owners.first().map(|o| (o.kind.as_str(), o.uid.as_str())),
        Some((
            "Release",
            stored.metadata.uid.as_deref().unwrap_or_default()
        )),
        "the notes belong to the Release"
    );
    assert!(
        !relman_writes(&notes.metadata).is_empty(),
        "written with relman's field manager"
    );

    // bob, a Release Manager, signs off with his own identity.
    create_as(
        &env,
        "bob",
        &[RELEASE_MANAGERS],
        &bound(
            &env,
            approval("web-2-0-0-production-bob", "production", "bob"),
        )
        .await?,
    )
    .await?;
    let done = env
        .wait_condition("web-2-0-0", "Ready", "True", None)
        .await?;
    let approved = condition(&done, "Approved");
    assert_eq!(approved.status, "True");
    assert!(approved.message.contains("bob"), "{}", approved.message);

    // Steady state: reconciling again writes nothing, the notes included.
    let before = relman_writes(&config_maps.get("web-2-0-0-notes").await?.metadata);
    let poke = json!({"metadata": {"annotations": {"test.relman.io/poke": "1"}}});
    env.releases
        .patch("web-2-0-0", &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = relman_writes(&config_maps.get("web-2-0-0-notes").await?.metadata);
    assert_eq!(
        before, after,
        "the notes ConfigMap was written at steady state"
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Requirements: release type and migration steps
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_release_type_is_checked_against_the_last_release_that_succeeded() -> anyhow::Result<()>
{
    let env = Env::new("gates-type").await?;
    env.deployments(&["web-staging"]).await?;
    let _controller = env.controller();

    // The application's first release may have any type.
    env.create(&release("2.4.0", "Patch").only_staging().build())
        .await?;
    env.wait_condition("web-2-4-0", "Ready", "True", None)
        .await?;

    // A patch declared as Minor waits, naming both versions.
    env.create(&release("2.4.1", "Minor").only_staging().build())
        .await?;
    let mismatch = env
        .wait_condition(
            "web-2-4-1",
            "RequirementsMet",
            "False",
            Some("VersionTypeMismatch"),
        )
        .await?;
    let message = &condition(&mismatch, "RequirementsMet").message;
    assert!(
        message.contains("web 2.4.1 is a Patch after 2.4.0, but spec.type says Minor"),
        "{message}"
    );
    let row = mismatch
        .requirements
        .iter()
        .find(|r| r.name == "versionType")
        .expect("a versionType requirement");
    assert!(!row.met);
    assert!(
        mismatch.stages.iter().all(|s| s.started_at.is_none()),
        "nothing started: {mismatch:#?}"
    );

    // An older version waits too.
    env.create(&release("2.3.9", "Patch").only_staging().build())
        .await?;
    let older = env
        .wait_condition(
            "web-2-3-9",
            "RequirementsMet",
            "False",
            Some("VersionNotNewer"),
        )
        .await?;
    let message = &condition(&older, "RequirementsMet").message;
    assert!(
        message.contains("web 2.3.9 is not newer than 2.4.0"),
        "{message}"
    );

    // Fixing spec.type opens the gate; a pipeline can wait for it with kubectl.
    env.patch_spec("web-2-4-1", json!({"type": "Patch"}))
        .await?;
    env.kubectl(&[
        "wait",
        "--for=condition=RequirementsMet",
        "release/web-2-4-1",
        "--timeout=60s",
    ])
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_major_release_without_migration_steps_waits_naming_them() -> anyhow::Result<()> {
    let env = Env::new("gates-migration").await?;
    let _controller = env.controller();
    env.create(
        &release("3.0.0", "Major")
            .only_staging()
            .notes(json!({"summary": "Web 3."}))
            .build(),
    )
    .await?;

    let waiting = env
        .wait_condition("web-3-0-0", "RequirementsMet", "False", None)
        .await?;
    let message = &condition(&waiting, "RequirementsMet").message;
    assert!(
        message.contains("migrationStepsListed") && message.contains("spec.notes.migrationSteps"),
        "{message}"
    );
    assert_eq!(condition(&waiting, "Reconciling").status, "True");
    let rows: BTreeMap<&str, bool> = waiting
        .requirements
        .iter()
        .map(|r| (r.name.as_str(), r.met))
        .collect();
    assert_eq!(rows.get("migrationStepsListed"), Some(&false), "{rows:?}");
    assert_eq!(rows.get("notesDrafted"), Some(&true), "{rows:?}");

    // Stating "none" is enough.
    env.patch_spec(
        "web-3-0-0",
        json!({"notes": {"summary": "Web 3.", "migrationSteps": ["none"]}}),
    )
    .await?;
    env.wait_condition("web-3-0-0", "RequirementsMet", "True", None)
        .await?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Named requirements: sign-offs and condition gates on any object
// -------------------------------------------------------------------------------------------

/// A namespaced kind with a status subresource, standing in for a CI system's PipelineRun.
async fn install_scan_kind(env: &Env) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "securityscans.ci.relman-tests.io"},
        "spec": {
            "group": "ci.relman-tests.io",
            "names": {"kind": "SecurityScan", "plural": "securityscans", "singular": "securityscan"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))?;
    let crds: Api<CustomResourceDefinition> = Api::all(env.admin.clone());
    crds.patch(
        "securityscans.ci.relman-tests.io",
        &apply_params(),
        &Patch::Apply(&crd),
    )
    .await?;
    let established = |c: Option<&CustomResourceDefinition>| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    };
    tokio::time::timeout(
        WAIT,
        await_condition(crds, "securityscans.ci.relman-tests.io", established),
    )
    .await??;
    Ok(())
}

/// Sets the `Passed` condition of the SecurityScan `name` to `status`.
async fn set_scan(env: &Env, name: &str, status: &str) -> anyhow::Result<()> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ci.relman-tests.io", "v1", "SecurityScan"),
        "securityscans",
    );
    let scans: Api<DynamicObject> = Api::namespaced_with(env.admin.clone(), &env.ns, &resource);
    if scans.get_opt(name).await?.is_none() {
        let scan =
            DynamicObject::new(name, &resource).data(json!({"spec": {"image": "web:2.0.0"}}));
        scans.create(&PostParams::default(), &scan).await?;
    }
    let condition = json!({"type": "Passed", "status": status, "reason": "Scanned",
        "message": "", "lastTransitionTime": "2026-11-26T00:00:00Z"});
    scans
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [condition]}})),
        )
        .await?;
    Ok(())
}

/// The row of requirement `name` in `status`.
fn requirement<'a>(
    status: &'a ReleaseStatus,
    name: &str,
) -> &'a relman::api::release::RequirementStatus {
    status
        .requirements
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no requirement {name}: {status:#?}"))
}

#[tokio::test]
async fn named_requirements_wait_for_a_sign_off_and_a_watched_condition() -> anyhow::Result<()> {
    let env = Env::new("gates-named").await?;
    install_scan_kind(&env).await?;
    env.deployments(&["web-staging"]).await?;
    let ctx = Arc::new(context(&env.admin, "gates-test"));
    let _controller = env.controller_with(ctx.clone());
    let requirements = json!([
        {"name": "acceptance-criteria", "description": "Product signed the acceptance criteria off."},
        {"name": "security-scan", "condition": {"apiVersion": "ci.relman-tests.io/v1",
            "kind": "SecurityScan", "name": "web-2-0-0", "type": "Passed"}}
    ]);
    env.create(
        &release("2.0.0", "Major")
            .only_staging()
            .requirements(requirements)
            .build(),
    )
    .await?;
    // A gate on a kind nobody serves is a clear reason, not an error loop.
    let unknown = release("2.0.1", "Patch")
        .named("api-2-0-1")
        .set("application", json!("api"))
        .only_staging()
        .merge_stage("staging", json!({"deployments": ["api-staging"]}))
        .requirements(json!([{"name": "load-test", "condition": {
            "apiVersion": "ci.relman-tests.io/v1", "kind": "LoadTest", "name": "api-2-0-1",
            "type": "Passed"}}]));
    env.create(&unknown.build()).await?;

    // Both named requirements are missing, and the message says what each waits for.
    let waiting = env
        .wait_condition("web-2-0-0", "RequirementsMet", "False", None)
        .await?;
    let message = &condition(&waiting, "RequirementsMet").message;
    assert!(message.contains("acceptance-criteria"), "{message}");
    assert!(
        message.contains("security-scan") && message.contains("SecurityScan web-2-0-0 not found"),
        "{message}"
    );
    assert_eq!(condition(&waiting, "Reconciling").status, "True");
    assert_eq!(condition(&waiting, "StagingDeployed").status, "False");
    let unknown = env
        .wait_condition("api-2-0-1", "RequirementsMet", "False", None)
        .await?;
    let message = &requirement(&unknown, "load-test").message;
    assert!(
        message.as_deref().is_some_and(|m| m
            .contains("does not serve ci.relman-tests.io/v1 LoadTest")
            && m.contains("spec.requirements[load-test].condition")),
        "{message:?}"
    );
    assert_eq!(condition(&unknown, "Stalled").status, "False");

    // A sign-off meets the first; the scan still holds the release.
    let acceptance = approval(
        "acceptance",
        "acceptance-criteria",
        relman_testenv::ADMIN_USER,
    );
    Api::<ReleaseApproval>::namespaced(env.admin.clone(), &env.ns)
        .create(&PostParams::default(), &bound(&env, acceptance).await?)
        .await?;
    let status = wait_for(WAIT, Duration::from_millis(200), || async {
        let status = env.status("web-2-0-0").await?;
        let counted = status
            .requirements
            .iter()
            .any(|r| r.name == "acceptance-criteria" && r.met);
        Ok(if counted {
            Ok(status)
        } else {
            Err(format!("the sign-off was not counted: {status:#?}"))
        })
    })
    .await?;
    assert!(
        requirement(&status, "acceptance-criteria")
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("approved by {}", relman_testenv::ADMIN_USER))),
        "{status:#?}"
    );
    assert!(!requirement(&status, "security-scan").met, "{status:#?}");

    // The scan runs and fails: the gate names the status it waits for.
    set_scan(&env, "web-2-0-0", "False").await?;
    wait_for(WAIT, Duration::from_millis(200), || async {
        let status = env.status("web-2-0-0").await?;
        let waits = requirement(&status, "security-scan")
            .message
            .as_deref()
            .is_some_and(|m| m.contains("has Passed=False, waiting for True"));
        Ok(if waits {
            Ok(())
        } else {
            Err(format!("{status:#?}"))
        })
    })
    .await?;
    assert_eq!(
        ctx.gate_watches().len(),
        1,
        "one watch for the SecurityScan kind"
    );

    // It passes: the watch wakes the release at once (no 15 s poll), and it goes out.
    let flipped = Instant::now();
    set_scan(&env, "web-2-0-0", "True").await?;
    let met = env
        .wait_condition("web-2-0-0", "RequirementsMet", "True", None)
        .await?;
    let reaction = flipped.elapsed();
    eprintln!("the condition gate opened {reaction:?} after the condition flipped");
    assert!(
        reaction < Duration::from_secs(5),
        "the gate opened {reaction:?} after the condition flipped; a watched gate must not wait for the 15 s recheck"
    );
    assert!(
        requirement(&met, "security-scan")
            .message
            .as_deref()
            .is_some_and(|m| m.contains("SecurityScan web-2-0-0 has Passed=True")),
        "{met:#?}"
    );
    env.wait_condition("web-2-0-0", "Ready", "True", None)
        .await?;
    Ok(())
}
