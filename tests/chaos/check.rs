//! What a fleet's releases must have ended as, checked after a scenario.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use relman::api::labels::LABEL_RELEASE;
use relman::api::release::{ReleasePhase, StagePhase};
use relman::api::{Release, ReleaseApproval, ReleaseStatus};

use crate::fleet::{Fate, Fleet, Planned, record_job};
use crate::summary::Outcome;

impl Fleet {
    /// Checks every release against its fate; fills `outcome`.
    pub async fn check(&mut self, outcome: &mut Outcome) -> anyhow::Result<()> {
        self.job_watch.abort();
        self.node_watch.abort();
        let node_down = *self.node_down.lock().unwrap();
        outcome.node_down += node_down;
        if !node_down.is_zero() {
            outcome.problems.push(format!(
                "environment: the kwok node was not Ready for {}s of this scenario (kwok could \
                 not keep up or died): pods could not become Ready, so rollouts timing out \
                 and Deployments between versions may not be relman's doing",
                node_down.as_secs()
            ));
        }
        // The watch may have been behind; the final list is authoritative for what exists.
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.ns);
        for job in jobs
            .list(&ListParams::default().labels(LABEL_RELEASE))
            .await?
        {
            record_job(&self.jobs, &job);
        }
        let seen = self.jobs.lock().unwrap().clone();
        outcome.releases += self.planned.len();
        outcome.approvals += self.created_approvals.len();
        outcome.smoke_jobs += seen.values().map(BTreeSet::len).sum::<usize>();
        for p in &self.planned {
            let mut lost = Vec::new();
            let mut wrong = Vec::new();
            let mut unavailable = Vec::new();
            self.check_release(p, &seen, &mut lost, &mut wrong, &mut unavailable)
                .await?;
            outcome.unavailable += unavailable.len();
            outcome.unavailable_pods.extend(unavailable.iter().cloned());
            let name = p.release();
            if !lost.is_empty() {
                outcome.lost += 1;
            } else if !wrong.is_empty() {
                outcome.wrong += 1;
            }
            for problem in lost.iter().chain(&wrong) {
                outcome
                    .problems
                    .push(format!("{}/{name} ({:?}): {problem}", self.ns, p.fate));
            }
        }
        let releases = self.releases.list(&ListParams::default()).await?.items;
        let count = |phase| {
            releases
                .iter()
                .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(phase))
                .count()
        };
        outcome.succeeded += count(ReleasePhase::Succeeded);
        outcome.rolled_back += count(ReleasePhase::RolledBack);
        Ok(())
    }

    /// Appends to `lost` what went missing and to `wrong` what differs from `p`'s fate.
    pub async fn check_release(
        &self,
        p: &Planned,
        jobs: &BTreeMap<(String, String, String), BTreeSet<String>>,
        lost: &mut Vec<String>,
        wrong: &mut Vec<String>,
        unavailable: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let release = self.releases.get(&p.release()).await?;
        let status = release.status.clone().unwrap_or_default();
        let expected_phase = match p.fate {
            Fate::Succeeds => ReleasePhase::Succeeded,
            Fate::FailsStaging | Fate::FailsProduction => ReleasePhase::RolledBack,
        };
        if !terminal(&release) {
            lost.push(format!(
                "not finished: phase {:?}, stage {:?}, conditions {}",
                status.phase,
                status.stage,
                conditions(&status)
            ));
            return Ok(());
        }
        if status.phase != Some(expected_phase) {
            wrong.push(format!(
                "ended {:?}, expected {expected_phase:?}; conditions {}",
                status.phase,
                conditions(&status)
            ));
        }
        let condition = |type_: &str| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.clone(), c.message.clone()))
        };
        match p.fate {
            Fate::Succeeds => {
                if condition("Ready").map(|c| c.0).as_deref() != Some("True") {
                    wrong.push(format!("Ready is not True: {}", conditions(&status)));
                }
            }
            Fate::FailsStaging | Fate::FailsProduction => {
                let rolled_back = condition("RolledBack");
                if rolled_back.as_ref().map(|c| c.0.as_str()) != Some("True") {
                    wrong.push(format!("RolledBack is not True: {}", conditions(&status)));
                }
                let message = rolled_back.map(|c| c.1).unwrap_or_default();
                let stage = if p.fate == Fate::FailsStaging {
                    "staging"
                } else {
                    "production"
                };
                let expected = format!(
                    "{} to revision 3 (the template of known-good revision 1)",
                    p.deployment(stage)
                );
                if !message.contains(&expected) {
                    wrong.push(format!(
                        "the RolledBack message does not say {expected:?}: {message:?}"
                    ));
                }
            }
        }

        for stage in ["staging", "production"] {
            self.check_stage(p, stage, &status, jobs, wrong, unavailable)
                .await?;
        }

        if p.approval_due.is_some() {
            match self.created_approvals.get(&p.approval()) {
                None => lost.push(format!("approval {} was never created", p.approval())),
                Some(uid) => match self.approvals.get_opt(&p.approval()).await? {
                    None => lost.push(format!("approval {} is gone", p.approval())),
                    Some(a) if a.metadata.uid.as_ref() != Some(uid) => lost.push(format!(
                        "approval {} was deleted and created again",
                        p.approval()
                    )),
                    Some(a) => {
                        self.check_approval_honoured(p, &status, &a, wrong);
                    }
                },
            }
        }
        Ok(())
    }

    /// Production started only after its sign-off existed, and the status records it.
    pub fn check_approval_honoured(
        &self,
        p: &Planned,
        status: &ReleaseStatus,
        approval: &ReleaseApproval,
        wrong: &mut Vec<String>,
    ) {
        if !p.starts("production") {
            return;
        }
        let created = approval.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let started = status
            .stages
            .iter()
            .find(|s| s.name == "production")
            .and_then(|s| s.started_at.as_ref())
            .map(|t| t.0);
        match (created, started) {
            (Some(created), Some(started)) if started < created => wrong.push(format!(
                "production started at {started} before its sign-off was created at {created}"
            )),
            (_, None) => wrong.push("production has no start time".to_owned()),
            _ => {}
        }
        if !status.approvals.iter().any(|a| a.name == p.approval()) {
            wrong.push(format!(
                "status.approvals does not record {}: {:?}",
                p.approval(),
                status.approvals
            ));
        }
    }

    /// The pods of Deployment `name` (label `app=name`): phase, Ready condition and the first
    /// container's waiting or terminated reason, for the report.
    pub async fn pod_states(&self, name: &str) -> anyhow::Result<String> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await?;
        let states: Vec<String> = list
            .items
            .iter()
            .map(|pod| {
                let status = pod.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| format!("Ready={} {}", c.status, c.reason.unwrap_or_default()))
                    .unwrap_or_else(|| "no Ready condition".into());
                let container = status
                    .container_statuses
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .and_then(|c| c.state)
                    .map(|state| {
                        if let Some(w) = state.waiting {
                            format!("waiting {}", w.reason.unwrap_or_default())
                        } else if let Some(t) = state.terminated {
                            format!("terminated {}", t.reason.unwrap_or_default())
                        } else if state.running.is_some() {
                            "running".to_owned()
                        } else {
                            "no state".to_owned()
                        }
                    })
                    .unwrap_or_else(|| "no container status".into());
                format!(
                    "{} on {} {} {ready} {container}",
                    pod.metadata.name.clone().unwrap_or_default(),
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_else(|| "no node".into()),
                    status.phase.unwrap_or_default(),
                )
            })
            .collect();
        Ok(if states.is_empty() {
            "no pods".to_owned()
        } else {
            states.join("; ")
        })
    }

    /// One stage: its phase, its Deployment's image, revision and ReplicaSets, the captured
    /// revisions, and its smoke Jobs.
    pub async fn check_stage(
        &self,
        p: &Planned,
        stage: &str,
        status: &ReleaseStatus,
        jobs: &BTreeMap<(String, String, String), BTreeSet<String>>,
        wrong: &mut Vec<String>,
        unavailable: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let stage_status = status.stages.iter().find(|s| s.name == stage);
        let phase = stage_status.and_then(|s| s.phase);
        let expected_phase = if !p.starts(stage) {
            None
        } else if p.smoke_fails(stage) {
            Some(StagePhase::RolledBack)
        } else {
            Some(StagePhase::Verified)
        };
        if expected_phase.is_none() {
            if matches!(phase, Some(ph) if ph != StagePhase::Pending) {
                wrong.push(format!("{stage} ran ({phase:?}) although staging failed"));
            }
        } else if phase != expected_phase {
            wrong.push(format!(
                "{stage} ended {phase:?}, expected {expected_phase:?}"
            ));
        }

        // The Deployment: on the expected image and revision, settled on one ReplicaSet.
        let name = p.deployment(stage);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let deployment = deployments.get(&name).await?;
        let (image, revision) = p.expected_deployment(stage);
        let actual_image = deployment
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if actual_image != image {
            wrong.push(format!("{name} runs {actual_image}, expected {image}"));
        }
        let actual_revision = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .cloned()
            .unwrap_or_default();
        if actual_revision != revision {
            wrong.push(format!(
                "{name} is at revision {actual_revision}, expected {revision}"
            ));
        }
        // A Deployment the release changed must be on one version: its last rollout observed
        // and every replica updated, no old one left (the ReplicaSets are checked below); one
        // it never touched must still be on its first generation. Whether the pods are Ready
        // at the end is kwok's business (an API server restart can leave them unready), so it
        // is reported as the environment's, not counted against relman.
        if p.starts(stage) && !on_one_version(&deployment) {
            wrong.push(format!(
                "{name} is between versions: {:?}",
                deployment.status
            ));
        } else if p.starts(stage) && !settled(&deployment) {
            unavailable.push(format!("{name}: {}", self.pod_states(&name).await?));
        }
        if !p.starts(stage) && deployment.metadata.generation != Some(1) {
            wrong.push(format!(
                "{name} was changed although its stage never started (generation {:?})",
                deployment.metadata.generation
            ));
        }
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.ns);
        let scaled: Vec<String> = replica_sets
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await?
            .items
            .into_iter()
            .filter(|rs| rs.spec.replicas.unwrap_or(1) > 0)
            .map(|rs| {
                let image = rs
                    .spec
                    .template
                    .and_then(|t| t.spec)
                    .and_then(|s| s.containers.into_iter().next())
                    .and_then(|c| c.image)
                    .unwrap_or_default();
                format!("{} ({image})", rs.metadata.name.unwrap_or_default())
            })
            .collect();
        if scaled.len() != 1 || !scaled[0].contains(&format!("({image})")) {
            wrong.push(format!(
                "{name} should run one ReplicaSet of {image}, runs {scaled:?}"
            ));
        }

        // What the status captured.
        if p.starts(stage) {
            let captured = stage_status.and_then(|s| s.deployments.first());
            let revisions = captured.map(|d| {
                (
                    d.known_good_revision.clone(),
                    d.rolled_out_revision.clone(),
                    d.restored_revision.clone(),
                )
            });
            let expected_restored = p.smoke_fails(stage).then(|| "3".to_owned());
            let expected = Some((
                Some("1".to_owned()),
                Some("2".to_owned()),
                expected_restored,
            ));
            if revisions != expected {
                wrong.push(format!(
                    "{stage} captured (known-good, rolled out, restored) {revisions:?}, \
                     expected {expected:?}"
                ));
            }
        }

        // Exactly one smoke Job per stage attempt, for the attempts the status counts.
        let attempts = stage_status.and_then(|s| s.attempt).unwrap_or(0);
        let release = p.release();
        let mine: BTreeMap<&String, &BTreeSet<String>> = jobs
            .iter()
            .filter(|((r, s, _), _)| *r == release && s == stage)
            .map(|((_, _, attempt), uids)| (attempt, uids))
            .collect();
        let expected_attempts: BTreeSet<String> = (1..=attempts).map(|a| a.to_string()).collect();
        let seen_attempts: BTreeSet<String> = mine.keys().map(|a| (*a).clone()).collect();
        if p.starts(stage) && attempts != 1 {
            wrong.push(format!(
                "{stage} was attempted {attempts} times, expected once"
            ));
        }
        if seen_attempts != expected_attempts {
            wrong.push(format!(
                "{stage} has smoke Jobs for attempts {seen_attempts:?}, expected {expected_attempts:?}"
            ));
        }
        for (attempt, uids) in mine {
            if uids.len() != 1 {
                wrong.push(format!(
                    "{stage} attempt {attempt} has {} smoke Jobs (uids {uids:?})",
                    uids.len()
                ));
            }
        }
        Ok(())
    }
}

/// Whether the Deployment runs one version: its spec observed, every replica updated, no old
/// replica left.
pub fn on_one_version(d: &Deployment) -> bool {
    let status = d.status.clone().unwrap_or_default();
    let replicas = d.spec.replicas;
    d.metadata.generation == status.observed_generation
        && status.updated_replicas == replicas
        && status.replicas == replicas
}

/// Whether the Deployment's rollout is complete: every replica updated and available.
pub fn settled(d: &Deployment) -> bool {
    let status = d.status.clone().unwrap_or_default();
    let replicas = d.spec.replicas;
    d.metadata.generation == status.observed_generation
        && status.updated_replicas == replicas
        && status.available_replicas == replicas
        && status.replicas == replicas
        && status.unavailable_replicas.unwrap_or(0) == 0
}

/// Whether the release reached a phase it never leaves by itself.
pub fn terminal(release: &Release) -> bool {
    matches!(
        release.status.as_ref().and_then(|s| s.phase),
        Some(ReleasePhase::Succeeded | ReleasePhase::RolledBack | ReleasePhase::Failed)
    )
}

/// The conditions, one `Type=Status(Reason)` each, for messages.
pub fn conditions(status: &ReleaseStatus) -> String {
    status
        .conditions
        .iter()
        .map(|c| format!("{}={}({}: {})", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join(", ")
}
