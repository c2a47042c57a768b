//! The chart's RBAC is enough for relman, and no more.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use relman::api::{Release, ReleaseCalendar};
use relman::leader::{LeaderElectionConfig, LeaderElector, Leadership};
use relman_testenv::ControlPlane;
use serde_json::json;

use crate::denials::Denials;
use crate::grants::{
    Grants, allowed, assert_grants, cluster_grants, default_grants, eventually_granted, grant,
    granted, install_cluster_wide_rbac, install_namespaced_rbac, install_rbac, lease_grants,
    namespace_grants, release_grants, secret_grants, workload_grants,
};
use crate::harness::{
    create_deployments, create_open_calendar, events_about, image_of, release,
    stage_elsewhere_stalls, start_relman, start_relman_in, wait_condition,
};
use crate::support::{self, Smoke, accept_releases_from};

/// With `clusterWide=true` the chart grants what relman needs in every namespace. (The
/// controller is started for the test's namespace: other tests share the API server.)
#[tokio::test]
async fn cluster_wide_chart_rbac_is_enough_for_a_release_and_a_revert() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-rbac").await?.name().to_owned();
    let relman = install_cluster_wide_rbac(cp, &ns, &[]).await?;
    create_deployments(&admin, &ns, "web").await?;
    create_deployments(&admin, &ns, "api").await?;
    create_open_calendar(&admin, &ns).await?;
    start_relman(relman, &ns);

    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    releases
        .create(
            &PostParams::default(),
            &release("web", "2.0.0", &ns).build(),
        )
        .await?;
    releases
        .create(
            &PostParams::default(),
            &release("api", "2.0.0", &ns)
                .production(Smoke::Fails)
                .build(),
        )
        .await?;

    // The good release reaches Ready through both stages.
    let status = denials.explain(wait_condition(&releases, "web-2-0-0", "Ready", "True").await)?;
    for gate in [
        "RequirementsMet",
        "StagingDeployed",
        "StagingVerified",
        "WindowOpen",
        "ProductionDeployed",
        "ProductionVerified",
    ] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == gate && c.status == "True"),
            "{gate} not True: {status:#?}"
        );
    }
    // The bad one (production verification fails) is rolled back.
    let status =
        denials.explain(wait_condition(&releases, "api-2-0-0", "RolledBack", "True").await)?;
    assert_eq!(
        status.phase,
        Some(relman::api::release::ReleasePhase::RolledBack),
        "{status:#?}"
    );

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    // (A verified staging keeps the release it verified; production is reverted.)
    for (name, image) in [
        ("web-staging", "web:2.0.0"),
        ("web-prod", "web:2.0.0"),
        ("api-prod", "api:1.0.0"),
    ] {
        let ok = |d: Option<&Deployment>| d.is_some_and(|d| image_of(d) == image);
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(deployments.clone(), name, ok),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{name} does not run {image}"))??;
    }
    for name in ["web-2-0-0", "api-2-0-0"] {
        assert!(
            !events_about(&admin, &ns, name).await?.is_empty(),
            "relman recorded Events on {name} with the chart's RBAC"
        );
    }
    // The next release of web takes over Deployments that web-2-0-0 drove: relman reads that
    // Release to see it has finished.
    releases
        .create(
            &PostParams::default(),
            &release("web", "2.1.0", &ns).release_type("Minor").build(),
        )
        .await?;
    denials.explain(wait_condition(&releases, "web-2-1-0", "Ready", "True").await)?;
    // The calendar controller wrote the calendar's status, listing both releases' outcomes.
    let calendars: Api<ReleaseCalendar> = Api::all(admin.clone());
    let listed = |c: Option<&ReleaseCalendar>| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.open == Some(true)
                && ["web-2-0-0", "api-2-0-0"].iter().all(|name| {
                    s.releases.iter().any(|r| {
                        r.release.as_deref().is_some_and(|r| r.ends_with(name))
                            && r.phase
                                .as_deref()
                                .is_some_and(|p| p == "Succeeded" || p == "RolledBack")
                    })
                })
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(calendars, &ns, listed),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the calendar's status does not list both finished releases"))??;
    // A stage in another namespace: relman reads that Namespace (get) and, without its consent,
    // stalls the release.
    let elsewhere = cp
        .test_namespace("chart-rbac-stage")
        .await?
        .name()
        .to_owned();
    denials.explain(stage_elsewhere_stalls(&releases, &elsewhere).await)?;
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "the controller was denied API calls with the chart's RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn cluster_wide_chart_rbac_grants_nothing_more() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-least").await?.name().to_owned();
    let relman = install_cluster_wide_rbac(cp, &ns, &[]).await?;

    // Exactly these rules, in its own namespace (cluster-wide ones plus the lease Role) ...
    let mut expected = default_grants();
    expected.extend(release_grants());
    expected.extend(secret_grants(&[]));
    expected.extend(workload_grants());
    expected.extend(cluster_grants());
    expected.extend(namespace_grants());
    let lease = format!("{ns}-relman");
    expected.extend(lease_grants(&lease));
    assert_grants(&granted(&relman, &ns).await?, &expected, "in its namespace");
    // ... and in any other namespace, the same without leases.
    let other = cp.test_namespace("chart-other").await?.name().to_owned();
    let mut elsewhere = expected.clone();
    for grant in lease_grants(&lease) {
        elsewhere.remove(&grant);
    }
    assert_grants(&granted(&relman, &other).await?, &elsewhere, "elsewhere");
    // The reach of clusterWide, as docs/install.md states it: any Secret by name, anywhere (no
    // list, no watch, below) ...
    assert!(
        allowed(
            &relman,
            "get",
            "",
            "secrets",
            Some(&other),
            Some("anything")
        )
        .await?,
        "clusterWide: relman gets a Secret by name in any namespace"
    );
    // ... unless rbac.notificationSecretNames names the only Secrets it may read.
    install_cluster_wide_rbac(
        cp,
        &ns,
        &["--set", "rbac.notificationSecretNames={releases-channel}"],
    )
    .await?;
    let mut named = elsewhere.clone();
    for grant in secret_grants(&[]) {
        named.remove(&grant);
    }
    named.extend(secret_grants(&["releases-channel"]));
    assert_grants(
        &eventually_granted(&relman, &other, &named).await?,
        &named,
        "with rbac.notificationSecretNames",
    );
    assert!(
        !allowed(
            &relman,
            "get",
            "",
            "secrets",
            Some(&other),
            Some("db-password")
        )
        .await?,
        "relman may read a Secret rbac.notificationSecretNames does not name"
    );

    // Spelled out, the things relman must never be able to do.
    let someone_elses_lease = allowed(
        &relman,
        "update",
        "coordination.k8s.io",
        "leases",
        Some(&ns),
        Some("kube-scheduler"),
    );
    assert!(
        !someone_elses_lease.await?,
        "relman may update another Lease"
    );
    for (verb, group, resource, namespace) in [
        ("delete", "apps", "deployments", Some(ns.as_str())),
        ("update", "apps", "deployments", Some(ns.as_str())),
        ("create", "apps", "deployments", Some(ns.as_str())),
        ("list", "", "secrets", None),
        ("watch", "", "secrets", None),
        ("list", "", "secrets", Some(ns.as_str())),
        ("watch", "", "secrets", Some(ns.as_str())),
        ("list", "", "secrets", Some(other.as_str())),
        ("create", "relman.io", "releases", Some(ns.as_str())),
        ("patch", "relman.io", "releases", Some(ns.as_str())),
        ("delete", "relman.io", "releases", Some(ns.as_str())),
        ("create", "relman.io", "releaseapprovals", Some(ns.as_str())),
        ("patch", "relman.io", "releasecalendars", None),
        ("create", "relman.io", "releasecalendars", None),
        ("delete", "batch", "jobs", Some(ns.as_str())),
        ("list", "", "configmaps", Some(ns.as_str())),
        ("delete", "", "configmaps", Some(ns.as_str())),
        ("create", "", "pods", Some(ns.as_str())),
        ("delete", "", "pods", Some(ns.as_str())),
        (
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some(ns.as_str()),
        ),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
        ),
        ("impersonate", "", "serviceaccounts", None),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some(other.as_str()),
        ),
        // relman reads the admission policies that guard Releases; it never changes them.
        (
            "patch",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            None,
        ),
        (
            "delete",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            None,
        ),
        ("create", "relman.io", "releasepolicies", Some(ns.as_str())),
        ("patch", "relman.io", "releasepolicies", Some(ns.as_str())),
        // relman must never give itself a namespace's consent, nor list namespaces.
        ("patch", "", "namespaces", None),
        ("update", "", "namespaces", None),
        ("list", "", "namespaces", None),
        ("watch", "", "namespaces", None),
    ] {
        assert!(
            !allowed(&relman, verb, group, resource, namespace, None).await?,
            "relman's ServiceAccount may {verb} {group}/{resource} in {namespace:?}"
        );
    }
    Ok(())
}

/// The default, `clusterWide: false`: relman may act only in `managedNamespaces`. Proven with
/// its own ServiceAccount: Releases in both managed namespaces complete, one of them with its
/// stages in the other (the watches run per namespace), and in a namespace not listed it can
/// neither write nor read a Secret, and a stage there stalls with nothing changed.
#[tokio::test]
async fn managed_namespaces_chart_rbac_is_enough_there_and_nothing_elsewhere() -> anyhow::Result<()>
{
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let (ns, stage_ns, relman) = install_namespaced_rbac(cp, "chart-ns", &[]).await?;
    let other = cp.test_namespace("chart-ns-other").await?.name().to_owned();

    // Each managed namespace has the Role (Releases and what stages drive); cluster-wide there
    // is only what is cluster-scoped, and get on the managed namespaces' Namespace objects.
    // (ReleasePolicies and the admission kinds are in these lists, but nothing below can show
    // relman using them: the ReleasePolicy CRD and the code that reads both are not on this
    // version. The rules review shows they are granted, read-only, and only where stated.)
    let managed_namespaces = Grants::from([
        grant("", "namespaces", "get", &ns),
        grant("", "namespaces", "get", &stage_ns),
    ]);
    let mut cluster_wide = default_grants();
    cluster_wide.extend(cluster_grants());
    cluster_wide.extend(managed_namespaces);
    let mut in_managed = cluster_wide.clone();
    in_managed.extend(release_grants());
    in_managed.extend(secret_grants(&[]));
    in_managed.extend(workload_grants());
    let mut in_own = in_managed.clone();
    in_own.extend(lease_grants(&format!("{ns}-relman")));
    assert_grants(
        &granted(&relman, &ns).await?,
        &in_own,
        "in the Releases' namespace",
    );
    assert_grants(
        &granted(&relman, &stage_ns).await?,
        &in_managed,
        "in the second managed namespace",
    );
    assert_grants(
        &granted(&relman, &other).await?,
        &cluster_wide,
        "in a namespace not listed",
    );

    // Spelled out for the namespace not listed, and for Secrets everywhere.
    for (verb, group, resource) in [
        ("patch", "apps", "deployments"),
        ("list", "apps", "deployments"),
        ("create", "batch", "jobs"),
        ("list", "batch", "jobs"),
        ("patch", "relman.io", "releases/status"),
        ("list", "relman.io", "releases"),
        ("create", "events.k8s.io", "events"),
        ("create", "", "configmaps"),
        ("get", "", "secrets"),
        ("get", "relman.io", "releasepolicies"),
    ] {
        assert!(
            !allowed(&relman, verb, group, resource, Some(&other), None).await?,
            "relman may {verb} {group}/{resource} in {other}, which managedNamespaces does not list"
        );
    }
    for namespace in [
        None,
        Some(ns.as_str()),
        Some(stage_ns.as_str()),
        Some(other.as_str()),
    ] {
        for verb in ["list", "watch"] {
            assert!(
                !allowed(&relman, verb, "", "secrets", namespace, None).await?,
                "relman may {verb} Secrets in {namespace:?}"
            );
        }
    }
    for namespace in [&ns, &stage_ns] {
        assert!(
            allowed(
                &relman,
                "get",
                "",
                "secrets",
                Some(namespace),
                Some("releases-channel")
            )
            .await?,
            "relman cannot get a notification Secret in {namespace}, which it manages"
        );
    }
    assert!(
        !allowed(&relman, "get", "", "namespaces", None, Some(&other)).await?,
        "relman may read Namespace {other}, which managedNamespaces does not list"
    );

    // web 2.0.0 lives in ns and deploys both stages to stage_ns, which accepts it; api 2.0.0
    // lives and deploys in stage_ns. relman watches both namespaces, as RELMAN_NAMESPACE=ns,stage_ns.
    create_deployments(&admin, &stage_ns, "web").await?;
    create_deployments(&admin, &stage_ns, "api").await?;
    create_deployments(&admin, &other, "web").await?;
    create_open_calendar(&admin, &ns).await?;
    accept_releases_from(&admin, &stage_ns, Some(&ns)).await?;
    start_relman_in(relman, &[&ns, &stage_ns]);
    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    let mut web = release("web", "2.0.0", &ns).build();
    for stage in &mut web.spec.stages {
        stage.namespace = Some(stage_ns.clone());
    }
    releases.create(&PostParams::default(), &web).await?;
    let stage_releases: Api<Release> = Api::namespaced(admin.clone(), &stage_ns);
    stage_releases
        .create(
            &PostParams::default(),
            &release("api", "2.0.0", &ns).build(),
        )
        .await?;
    denials.explain(wait_condition(&releases, "web-2-0-0", "Ready", "True").await)?;
    denials.explain(wait_condition(&stage_releases, "api-2-0-0", "Ready", "True").await)?;
    let stage_deployments: Api<Deployment> = Api::namespaced(admin.clone(), &stage_ns);
    for (name, image) in [("web-prod", "web:2.0.0"), ("api-prod", "api:2.0.0")] {
        assert_eq!(image_of(&stage_deployments.get(name).await?), image);
    }
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "the controller was denied API calls with the namespaced RBAC:\n{}",
        denied.join("\n")
    );

    // A stage in the namespace not listed stalls, even with that namespace's consent: relman
    // cannot read its Namespace, and changes nothing there.
    accept_releases_from(&admin, &other, Some(&ns)).await?;
    stage_elsewhere_stalls(&releases, &other).await?;
    let stalled = wait_condition(&releases, "web-3-0-0", "Stalled", "True").await?;
    let message = &stalled
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .ok_or_else(|| anyhow::anyhow!("no Stalled condition"))?
        .message;
    assert!(
        message.contains(&format!("relman may not read Namespace {other}"))
            && message.contains("managedNamespaces"),
        "the stall says relman cannot reach {other} and names the chart value: {message}"
    );
    let other_deployments: Api<Deployment> = Api::namespaced(admin.clone(), &other);
    assert_eq!(
        image_of(&other_deployments.get("web-staging").await?),
        "web:1.0.0",
        "nothing changed in {other}"
    );
    Ok(())
}

#[tokio::test]
async fn chart_rbac_is_enough_for_leader_election() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-lease").await?.name().to_owned();
    let managed = format!("managedNamespaces={{{ns}}}");
    let relman = install_rbac(cp, &ns, &["--set", &managed]).await?;
    // The chart's Lease name (RELMAN_LEADER_ELECTION_LEASE is the full name), short timings.
    let elector = |identity: &str| -> anyhow::Result<(LeaderElector, Leadership)> {
        let config = LeaderElectionConfig::new(format!("{ns}-relman"), &ns, identity)
            .with_timings(
                Duration::from_secs(4),
                Duration::from_secs(3),
                Duration::from_millis(500),
                Duration::from_millis(250),
            )?;
        Ok(LeaderElector::new(relman.clone(), config))
    };

    // The first replica creates the Lease and keeps renewing it (update) ...
    let (first, first_leads) = elector("replica-a")?;
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(first.run(async {
        let _ = first_stopped.await;
    }));
    denials.explain(
        tokio::time::timeout(Duration::from_secs(20), first_leads.wait_until_leader())
            .await
            .map_err(|_| anyhow::anyhow!("the first replica did not become the leader")),
    )?;
    let (second, second_leads) = elector("replica-b")?;
    let second = tokio::spawn(second.run(std::future::pending()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first_leads.is_leader(), "the holder renewed the Lease");
    assert!(!second_leads.is_leader(), "one leader at a time");

    // ... and when it stops, it frees the Lease and the second replica takes it (get, update).
    let _ = stop_first.send(());
    first.await?;
    denials.explain(
        tokio::time::timeout(Duration::from_secs(20), second_leads.wait_until_leader())
            .await
            .map_err(|_| anyhow::anyhow!("the second replica did not take over")),
    )?;
    second.abort();
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "leader election was denied API calls with the chart's RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_stage_namespace_where_relman_may_not_create_jobs_stalls_as_forbidden_until_granted()
-> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let (ns, stage_ns, relman) = install_namespaced_rbac(cp, "chart-403", &[]).await?;
    create_deployments(&admin, &stage_ns, "web").await?;
    create_open_calendar(&admin, &ns).await?;
    let consent = json!({"metadata": {"annotations": {"relman.io/accept-releases-from": ns}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .patch(
            &stage_ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&consent),
        )
        .await?;
    // The stage namespace's owner (or a slip in the RBAC) takes away relman's create on Jobs.
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(admin.clone(), &stage_ns);
    let set_job_verbs = |verbs: &'static [&'static str]| {
        let roles = roles.clone();
        async move {
            for mut role in roles.list(&Default::default()).await?.items {
                let mut changed = false;
                for rule in role.rules.iter_mut().flatten() {
                    if rule.resources.iter().flatten().any(|r| r == "jobs") {
                        rule.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
                        changed = true;
                    }
                }
                if changed {
                    let name = role.metadata.name.clone().unwrap_or_default();
                    role.metadata.managed_fields = None;
                    roles.replace(&name, &PostParams::default(), &role).await?;
                }
            }
            anyhow::Ok(())
        }
    };
    set_job_verbs(&["list", "watch"]).await?;
    start_relman_in(relman, &[&ns, &stage_ns]);

    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    let mut release = release("web", "2.0.0", &ns).build();
    for stage in &mut release.spec.stages {
        stage.namespace = Some(stage_ns.clone());
    }
    releases.create(&PostParams::default(), &release).await?;
    let status = wait_condition(&releases, "web-2-0-0", "Stalled", "True").await?;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .ok_or_else(|| anyhow::anyhow!("no Stalled condition"))?;
    assert_eq!(stalled.reason, "Forbidden", "{stalled:?}");
    assert!(
        stalled.message.contains("cannot create resource \"jobs\"")
            && stalled.message.contains(&stage_ns),
        "the refusal names the verb, the resource and the namespace: {}",
        stalled.message
    );
    let events = support::events(&admin, &ns, "web-2-0-0", "Forbidden").await?;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "a Warning Event says why: {events:#?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &stage_ns);
    assert_eq!(
        image_of(&deployments.get("web-staging").await?),
        "web:1.0.0",
        "nothing changed"
    );

    // Granted again: the release goes on by itself (it looks again every minute).
    set_job_verbs(&["list", "watch", "create"]).await?;
    let status = wait_condition(&releases, "web-2-0-0", "Stalled", "False").await?;
    assert!(
        status.stages[0]
            .phase
            .is_some_and(|p| p != relman::api::release::StagePhase::Pending),
        "staging started: {status:#?}"
    );
    Ok(())
}
