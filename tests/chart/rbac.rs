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
    Grants, allowed, assert_grants, cluster_grants, default_grants, grant, granted,
    install_namespaced_rbac, install_rbac, lease_grants, namespace_grants, release_grants,
    workload_grants,
};
use crate::harness::{
    create_deployments, create_open_calendar, events_about, image_of, release,
    stage_elsewhere_stalls, start_relman, wait_condition,
};
use crate::support::{self, Smoke};

#[tokio::test]
async fn chart_rbac_is_enough_for_a_release_and_a_revert() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let ns = cp.test_namespace("chart-rbac").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;
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
async fn chart_rbac_grants_nothing_more() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-least").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;

    // Exactly these rules, in its own namespace (cluster-wide ones plus the lease Role) ...
    let mut expected = default_grants();
    expected.extend(release_grants());
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
        ("list", "", "secrets", Some(ns.as_str())),
        ("watch", "", "secrets", Some(ns.as_str())),
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

#[tokio::test]
async fn namespaced_chart_rbac_is_enough_in_the_watched_namespace_only() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let admin = cp.client().await?;
    let (ns, stage_ns, relman) = install_namespaced_rbac(cp, "chart-ns").await?;

    // The Releases' namespace has the namespaced rules, the stage namespace the workload rules;
    // any other only the cluster-scoped ones, which read only the stage namespace's Namespace.
    let stage_namespace = Grants::from([grant("", "namespaces", "get", &stage_ns)]);
    let mut expected = default_grants();
    expected.extend(release_grants());
    expected.extend(workload_grants());
    expected.extend(cluster_grants());
    expected.extend(stage_namespace.clone());
    expected.extend(lease_grants(&format!("{ns}-relman")));
    assert_grants(
        &granted(&relman, &ns).await?,
        &expected,
        "in the watched namespace",
    );
    let mut in_stage = default_grants();
    in_stage.extend(workload_grants());
    in_stage.extend(cluster_grants());
    in_stage.extend(stage_namespace.clone());
    assert_grants(
        &granted(&relman, &stage_ns).await?,
        &in_stage,
        "in the stage namespace",
    );
    let other = cp.test_namespace("chart-ns-other").await?.name().to_owned();
    let mut elsewhere = default_grants();
    elsewhere.extend(cluster_grants());
    elsewhere.extend(stage_namespace);
    assert_grants(&granted(&relman, &other).await?, &elsewhere, "elsewhere");
    assert!(
        !allowed(&relman, "get", "", "namespaces", None, Some(&other)).await?,
        "relman may read Namespace {other}, which no stage names"
    );

    create_deployments(&admin, &ns, "web").await?;
    create_open_calendar(&admin, &ns).await?;
    start_relman(relman, &ns);
    let releases: Api<Release> = Api::namespaced(admin.clone(), &ns);
    releases
        .create(
            &PostParams::default(),
            &release("web", "2.0.0", &ns).build(),
        )
        .await?;
    denials.explain(wait_condition(&releases, "web-2-0-0", "Ready", "True").await)?;
    // The stage namespace's Namespace is readable by name: a release there without its consent
    // stalls (a refused read would fail the reconcile instead).
    denials.explain(stage_elsewhere_stalls(&releases, &stage_ns).await)?;
    let denied = denials.on_this_thread();
    assert!(
        denied.is_empty(),
        "the controller was denied API calls with the namespaced RBAC:\n{}",
        denied.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn chart_rbac_is_enough_for_leader_election() -> anyhow::Result<()> {
    let denials = Denials::install();
    let cp = ControlPlane::shared().await?;
    let ns = cp.test_namespace("chart-lease").await?.name().to_owned();
    let relman = install_rbac(cp, &ns, &[]).await?;
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
    let (ns, stage_ns, relman) = install_namespaced_rbac(cp, "chart-403").await?;
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
    start_relman(relman, &ns);

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

    // Granted again: the release goes on by itself (it looks again every minute). (A
    // controller limited to its own namespace does not watch the stage namespace, so this test
    // stops at the first step after the stall.)
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
