//! A tiny simulated cluster for the planner's tests: it performs the planner's actions the way
//! the act layer and the Kubernetes controllers would, and lets tests move time and finish
//! Jobs and rollouts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::DeploymentCondition;
use k8s_openapi::api::batch::v1::{JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::action::{Action, JobKind, Plan};
use super::jobs::job_name;
use super::observed::{
    ApprovalEnforcement, GateState, Gates, JobState, NamespaceConsent, Observed, ObservedApproval,
    ObservedDeployment, ObservedJob, PlanConfig, PodProblem, PodProblemReason,
};
use super::plan;
use super::policy::NamespacePolicy;
use crate::api::labels::ANNOTATION_KNOWN_GOOD_RELEASE;
use crate::api::release::{ApprovalPolicy, DeploymentName, ImageSpec, JobCheck, Stage};
use crate::api::{Decision, Release, ReleaseSpec, ReleaseType};

pub const RELEASE: &str = "checkout";
pub const NAMESPACE: &str = "apps";
pub const VERSION: &str = "2.0.0";
pub const STAGING_NS: &str = "stg";
pub const PRODUCTION_NS: &str = "prod";
pub const API: &str = "checkout-api";
pub const WORKER: &str = "checkout-worker";
pub const OLD_API_IMAGE: &str = "reg/api:1.0.0";
pub const NEW_API_IMAGE: &str = "reg/api:2.0.0";
pub const OLD_WORKER_IMAGE: &str = "reg/worker:1.0.0";
pub const NEW_WORKER_IMAGE: &str = "reg/worker:2.0.0";

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// The moment every test starts at.
pub const START: i64 = 1_790_000_000;

pub fn job_template(container: &str) -> JobTemplateSpec {
    JobTemplateSpec {
        metadata: None,
        spec: Some(JobSpec {
            template: PodTemplateSpec {
                metadata: None,
                // Meets the Pod Security restricted level, the built-in default policy's.
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: container.into(),
                        image: Some("reg/smoke:1".into()),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    restart_policy: Some("Never".into()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
    }
}

fn stage(name: &str, namespace: &str) -> Stage {
    Stage {
        name: name.into(),
        namespace: Some(namespace.into()),
        deployments: vec![DeploymentName(API.into()), DeploymentName(WORKER.into())],
        backup: None,
        smoke_test: Some(JobCheck {
            template: job_template("smoke").into(),
            timeout: Some("10m".into()),
        }),
        approval: None,
        window: false,
        rollout_timeout: Some("15m".into()),
        bake: None,
    }
}

/// staging (no backup) then production (sign-off by one person, window, backup).
pub fn two_stage_spec() -> ReleaseSpec {
    let mut production = stage("production", PRODUCTION_NS);
    production.approval = Some(ApprovalPolicy {
        required: true,
        approvers: 1,
    });
    production.window = true;
    production.backup = Some(JobCheck {
        template: job_template("backup").into(),
        timeout: Some("5m".into()),
    });
    ReleaseSpec {
        application: "checkout".into(),
        version: VERSION.into(),
        release_type: ReleaseType::Major,
        owner: "team-payments".into(),
        target_date: None,
        calendar: Some("q4".into()),
        rollback_plan: Some("https://wiki/rollback".into()),
        notes: None,
        images: vec![
            ImageSpec {
                container: "api".into(),
                image: NEW_API_IMAGE.into(),
            },
            ImageSpec {
                container: "worker".into(),
                image: NEW_WORKER_IMAGE.into(),
            },
        ],
        requirements: vec![],
        stages: vec![stage("staging", STAGING_NS), production],
        notify: vec![],
        abort: false,
        incident: None,
    }
}

pub fn pod_template(containers: &[(&str, &str)]) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_owned(), "checkout".to_owned())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|(name, image)| Container {
                    name: (*name).into(),
                    image: Some((*image).into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

pub fn settled_deployment(namespace: &str, name: &str) -> ObservedDeployment {
    let template = if name == API {
        pod_template(&[("api", OLD_API_IMAGE)])
    } else {
        pod_template(&[("worker", OLD_WORKER_IMAGE), ("proxy", "envoy:1")])
    };
    ObservedDeployment {
        namespace: namespace.into(),
        name: name.into(),
        template,
        revision: Some("3".into()),
        generation: 5,
        observed_generation: 5,
        desired_replicas: 2,
        replicas: 2,
        updated_replicas: 2,
        ready_replicas: 2,
        available_replicas: 2,
        unavailable_replicas: 0,
        conditions: vec![],
        known_good_release: None,
        pod_problems: vec![],
        driven_by_other: None,
        driven_by: None,
        labels: BTreeMap::new(),
    }
}

/// The world a release runs in.
#[derive(Clone, Debug)]
pub struct World {
    pub release: Release,
    pub deployments: Vec<ObservedDeployment>,
    pub jobs: Vec<ObservedJob>,
    pub approvals: Vec<ObservedApproval>,
    pub approval_enforcement: ApprovalEnforcement,
    pub gates: Gates,
    /// What the stage namespaces other than [`NAMESPACE`] say; every one accepts the release
    /// unless a test changes it.
    pub namespace_consent: BTreeMap<String, NamespaceConsent>,
    /// The rules of the stage namespaces; the built-in default unless a test sets one.
    pub policies: BTreeMap<String, NamespacePolicy>,
    pub config: PlanConfig,
    pub now: DateTime<Utc>,
    /// Who set `spec.abort`, as the observe step reads it.
    pub abort_requested_by: Option<String>,
    /// The API server's refusal of the last action, as the controller remembers it.
    pub denied: Option<String>,
    /// Every action performed, in order.
    pub performed: Vec<Action>,
}

impl World {
    pub fn new(spec: ReleaseSpec) -> Self {
        let mut deployments = Vec::new();
        let mut namespace_consent = BTreeMap::new();
        for stage in &spec.stages {
            let namespace = stage.namespace.clone().unwrap_or_else(|| NAMESPACE.into());
            if namespace != NAMESPACE {
                namespace_consent.insert(namespace.clone(), NamespaceConsent::Accepted);
            }
            for deployment in &stage.deployments {
                if !deployments.iter().any(|d: &ObservedDeployment| {
                    d.namespace == namespace && d.name == deployment.0
                }) {
                    deployments.push(settled_deployment(&namespace, &deployment.0));
                }
            }
        }
        let release = Release {
            metadata: ObjectMeta {
                name: Some(RELEASE.into()),
                namespace: Some(NAMESPACE.into()),
                uid: Some("uid-checkout".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec,
            status: None,
        };
        Self {
            release,
            deployments,
            jobs: vec![],
            approvals: vec![],
            approval_enforcement: ApprovalEnforcement::Enforced,
            gates: Gates {
                requirements: GateState::open("RequirementsMet", "all 3 requirements are met"),
                requirement_details: vec![],
                window: Some(GateState::open("WindowOpen", "window open until 18:00 UTC")),
                invalid: None,
                forbidden: None,
            },
            namespace_consent,
            policies: BTreeMap::new(),
            config: PlanConfig::default(),
            now: at(START),
            abort_requested_by: None,
            denied: None,
            performed: vec![],
        }
    }

    pub fn two_stages() -> Self {
        Self::new(two_stage_spec())
    }

    pub fn observed(&self) -> Observed {
        Observed {
            release: self.release.clone(),
            deployments: self.deployments.clone(),
            jobs: self.jobs.clone(),
            approvals: self.approvals.clone(),
            approval_enforcement: self.approval_enforcement.clone(),
            gates: self.gates.clone(),
            namespace_consent: self.namespace_consent.clone(),
            policies: self.policies.clone(),
            abort_requested_by: self.abort_requested_by.clone(),
            denied: self.denied.clone(),
            config: self.config.clone(),
            now: self.now,
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.observed())
    }

    /// One reconcile as the controller does it: plan, write the status, perform the action.
    pub fn reconcile(&mut self) -> Plan {
        let plan = self.plan();
        self.write_status(&plan);
        self.perform(&plan.action);
        plan
    }

    pub fn write_status(&mut self, plan: &Plan) {
        self.release.status = Some(plan.status.clone());
    }

    /// What the act layer and the Deployment/Job controllers would do.
    pub fn perform(&mut self, action: &Action) {
        match action {
            Action::None => return,
            Action::CreateJob {
                namespace, name, ..
            } => {
                if self.job(namespace, name).is_none() {
                    self.jobs.push(ObservedJob {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        state: JobState::Running { since: self.now },
                        pod_problems: vec![],
                        release_uid: self.release.metadata.uid.clone(),
                    });
                }
            }
            Action::RollOut {
                namespace,
                deployment,
                images,
                ..
            } => {
                let d = self.deployment_mut(namespace, deployment);
                let mut changed = false;
                for container in d
                    .template
                    .spec
                    .iter_mut()
                    .flat_map(|s| s.containers.iter_mut())
                {
                    if let Some(image) = images.get(&container.name)
                        && container.image.as_ref() != Some(image)
                    {
                        container.image = Some(image.clone());
                        changed = true;
                    }
                }
                d.driven_by = Some(format!("{NAMESPACE}/{RELEASE}"));
                if changed {
                    start_rollout(d);
                }
            }
            Action::Revert {
                namespace,
                deployment,
                template,
                generation,
                driver,
                ..
            } => {
                let d = self.deployment_mut(namespace, deployment);
                assert_eq!(
                    d.generation, *generation,
                    "a revert is planned from the spec it applies to"
                );
                d.driven_by.clone_from(driver);
                if d.template != **template {
                    d.template = (**template).clone();
                    start_rollout(d);
                }
            }
            Action::MarkKnownGood {
                namespace,
                deployment,
                annotations,
                ..
            } => {
                let d = self.deployment_mut(namespace, deployment);
                d.known_good_release = annotations.get(ANNOTATION_KNOWN_GOOD_RELEASE).cloned();
            }
        }
        self.performed.push(action.clone());
    }

    pub fn job(&self, namespace: &str, name: &str) -> Option<&ObservedJob> {
        self.jobs
            .iter()
            .find(|j| j.namespace == namespace && j.name == name)
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> &ObservedDeployment {
        self.deployments
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
            .unwrap()
    }

    pub fn deployment_mut(&mut self, namespace: &str, name: &str) -> &mut ObservedDeployment {
        self.deployments
            .iter_mut()
            .find(|d| d.namespace == namespace && d.name == name)
            .unwrap()
    }

    /// The Deployment controller finishes every rollout.
    pub fn settle(&mut self) {
        for d in &mut self.deployments {
            settle(d);
        }
    }

    /// The Deployment controller gives up on a rollout.
    pub fn exceed_progress_deadline(&mut self, namespace: &str, name: &str) {
        let d = self.deployment_mut(namespace, name);
        d.observed_generation = d.generation;
        d.conditions = vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some(format!("ReplicaSet {name}-abc has timed out progressing.")),
            ..Default::default()
        }];
    }

    pub fn pod_problem(&mut self, namespace: &str, name: &str, reason: PodProblemReason) {
        let since = self.now;
        let d = self.deployment_mut(namespace, name);
        d.observed_generation = d.generation;
        d.pod_problems.push(PodProblem {
            pod: format!("{name}-abc-1"),
            reason,
            message: "Back-off pulling image".into(),
            since,
        });
    }

    pub fn job_name(&self, stage: &str, kind: JobKind) -> String {
        job_name(RELEASE, stage, kind, 1)
    }

    pub fn finish_job(&mut self, namespace: &str, stage: &str, kind: JobKind, succeeded: bool) {
        let name = self.job_name(stage, kind);
        let job = self
            .jobs
            .iter_mut()
            .find(|j| j.namespace == namespace && j.name == name)
            .unwrap();
        job.state = if succeeded {
            JobState::Succeeded
        } else {
            JobState::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into(),
            }
        };
    }

    pub fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
    }

    pub fn decide(&mut self, gate: &str, approver: &str, version: &str, decision: Decision) {
        let n = self.approvals.len();
        self.approvals.push(ObservedApproval {
            name: format!("approval-{n}"),
            release: RELEASE.into(),
            version: version.into(),
            gate: gate.into(),
            decision,
            approver: approver.into(),
            comment: None,
            created: Some(self.now),
            release_uid: self.release.metadata.uid.clone(),
            groups: None,
        });
    }

    pub fn approve_production(&mut self) {
        self.decide("production", "alice", VERSION, Decision::Approved);
    }

    pub fn set_abort(&mut self) {
        self.release.spec.abort = true;
        self.bump_generation();
    }

    pub fn bump_generation(&mut self) {
        let generation = self.release.metadata.generation.unwrap_or(1);
        self.release.metadata.generation = Some(generation + 1);
    }

    /// Reconciles (settling rollouts and nothing else) until the planner waits for something
    /// the world must do: no action, no status change, no immediate requeue. Returns the
    /// actions taken.
    pub fn run_until_waiting(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for _ in 0..100 {
            let before = self.release.status.clone();
            let plan = self.reconcile();
            let idle = plan.action == Action::None
                && before.as_ref() == Some(&plan.status)
                && plan.requeue_after != Some(std::time::Duration::ZERO);
            if plan.action != Action::None {
                actions.push(plan.action.clone());
            }
            self.settle();
            if idle {
                return actions;
            }
        }
        panic!("the planner never settled");
    }

    pub fn status(&self) -> &crate::api::ReleaseStatus {
        self.release.status.as_ref().unwrap()
    }
}

fn start_rollout(d: &mut ObservedDeployment) {
    d.generation += 1;
    d.updated_replicas = 0;
    d.conditions.clear();
    d.pod_problems.clear();
}

fn settle(d: &mut ObservedDeployment) {
    if d.observed_generation < d.generation
        || d.updated_replicas < d.desired_replicas
        || !d.pod_problems.is_empty()
    {
        if d.observed_generation < d.generation || d.updated_replicas < d.desired_replicas {
            let revision: u32 = d.revision.as_deref().unwrap_or("0").parse().unwrap();
            d.revision = Some((revision + 1).to_string());
        }
        d.observed_generation = d.generation;
        d.replicas = d.desired_replicas;
        d.updated_replicas = d.desired_replicas;
        d.ready_replicas = d.desired_replicas;
        d.available_replicas = d.desired_replicas;
        d.conditions.clear();
        d.pod_problems.clear();
    }
}

/// Someone runs `kubectl set image` on `d`: its first container runs `image`.
pub fn set_image_by_hand(d: &mut ObservedDeployment, image: &str) {
    if let Some(first) = d
        .template
        .spec
        .iter_mut()
        .flat_map(|s| s.containers.iter_mut())
        .next()
    {
        first.image = Some(image.into());
    }
    // A template change starts a rollout, whoever makes it.
    start_rollout(d);
}

/// Release `driver` (`namespace/name`) rolls out to `d`: each container runs `image(name)`.
pub fn roll_out_by(d: &mut ObservedDeployment, driver: &str, image: impl Fn(&str) -> String) {
    for container in d
        .template
        .spec
        .iter_mut()
        .flat_map(|s| s.containers.iter_mut())
    {
        container.image = Some(image(&container.name));
    }
    d.driven_by = Some(driver.into());
    start_rollout(d);
}
