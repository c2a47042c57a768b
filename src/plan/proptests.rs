//! Property tests: random sequences of observations (rollouts finishing or failing, Jobs
//! finishing, time passing, sign-offs, windows, aborts, controller crashes) must never break
//! the release guide's rules.

use proptest::prelude::*;

use super::action::{Action, JobKind, Plan};
use super::observed::{GateState, JobState, PodProblemReason, template_images};
use super::rollout::{runs_known_good, runs_release_images};
use super::sim::*;
use crate::api::release::{ReleasePhase, StagePhase};
use crate::api::{Compact, Decision};
use crate::api::{ReleaseSpec, ReleaseStatus};

#[derive(Clone, Debug)]
enum Op {
    /// Plan, write the status, perform the action.
    Reconcile,
    /// Plan and write the status, then crash before the action.
    CrashBeforeAction,
    /// Every rollout completes.
    Settle,
    /// A running Job finishes.
    FinishJob { pick: usize, success: bool },
    /// A Deployment's rollout exceeds its progress deadline.
    ExceedDeadline { pick: usize },
    /// A Deployment's new pods cannot start.
    PodProblem { pick: usize },
    /// A Job's pod cannot start.
    JobPodProblem { pick: usize },
    /// Time passes.
    Advance { secs: i64 },
    /// Someone decides on the production gate.
    Decide {
        this_version: bool,
        approver: u8,
        reject: bool,
    },
    /// The window opens or closes.
    Window { open: bool },
    /// The requirements become met or not.
    Requirements { met: bool },
    /// spec.abort is set.
    Abort,
    /// Someone runs `kubectl set image` on a Deployment.
    HandEdit { pick: usize },
    /// A newer Release rolls out to a Deployment of a succeeded release.
    TakenOver { pick: usize },
}

/// The Release of the simulated world, as its driven-by marker names it.
const ME: &str = "apps/checkout";
/// A newer Release.
const NEWER: &str = "apps/checkout-9-0-0";
/// The image a hand edit sets.
const HAND_IMAGE: &str = "reg/hand:1";

/// Whether someone other than the release changed `deployment` last: relman must leave it.
fn touched_by_others(deployment: &super::observed::ObservedDeployment) -> bool {
    deployment.driven_by.as_deref() == Some(NEWER)
        || template_images(&deployment.template)
            .values()
            .any(|image| image == HAND_IMAGE)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        120 => Just(Op::Reconcile),
        20 => Just(Op::CrashBeforeAction),
        50 => Just(Op::Settle),
        40 => (any::<usize>(), prop::bool::weighted(0.9))
            .prop_map(|(pick, success)| Op::FinishJob { pick, success }),
        5 => any::<usize>().prop_map(|pick| Op::ExceedDeadline { pick }),
        5 => any::<usize>().prop_map(|pick| Op::PodProblem { pick }),
        5 => any::<usize>().prop_map(|pick| Op::JobPodProblem { pick }),
        30 => (1i64..900).prop_map(|secs| Op::Advance { secs }),
        30 => (prop::bool::weighted(0.8), 0u8..3, prop::bool::weighted(0.03)).prop_map(
            |(this_version, approver, reject)| Op::Decide {
                this_version,
                approver,
                reject
            }
        ),
        10 => any::<bool>().prop_map(|open| Op::Window { open }),
        10 => prop::bool::weighted(0.8).prop_map(|met| Op::Requirements { met }),
        1 => Just(Op::Abort),
        2 => any::<usize>().prop_map(|pick| Op::HandEdit { pick }),
        2 => any::<usize>().prop_map(|pick| Op::TakenOver { pick }),
    ]
}

/// Variations of the two-stage release.
fn spec() -> impl Strategy<Value = ReleaseSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        1u32..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(staging_backup, production_approval, approvers, production_window, staging_smoke)| {
                let mut spec = two_stage_spec();
                if staging_backup {
                    spec.stages[0].backup = spec.stages[1].backup.clone();
                }
                if !staging_smoke {
                    spec.stages[0].smoke_test = None;
                }
                match &mut spec.stages[1].approval {
                    Some(approval) if production_approval => approval.approvers = approvers,
                    _ => spec.stages[1].approval = None,
                }
                spec.stages[1].window = production_window;
                spec
            },
        )
}

fn failed(status: &ReleaseStatus) -> bool {
    status.stages.iter().any(|s| s.failure.is_some())
}

fn stage_index(status: &ReleaseStatus, name: &str) -> usize {
    status.stages.iter().position(|s| s.name == name).unwrap()
}

fn verified_before(status: &ReleaseStatus, index: usize) -> bool {
    status.stages[..index]
        .iter()
        .all(|s| s.phase == Some(StagePhase::Verified))
}

fn captured_template<'a>(
    status: &'a ReleaseStatus,
    stage: &str,
    namespace: &str,
    deployment: &str,
) -> Option<&'a crate::api::Compact<k8s_openapi::api::core::v1::PodTemplateSpec>> {
    status
        .stages
        .iter()
        .filter(|s| s.name == stage)
        .flat_map(|s| &s.deployments)
        .find(|d| d.namespace == namespace && d.name == deployment)
        .and_then(|d| d.known_good_template.as_ref())
}

/// Every captured Deployment that exists runs its known-good images, except in stages that
/// passed their checks when the release failed a later check (they keep the release).
fn all_at_known_good(world: &World, status: &ReleaseStatus) -> bool {
    let withdrawn = status
        .stages
        .iter()
        .filter_map(|s| s.failure.as_ref())
        .any(|f| f.reason == "Aborted" || f.reason == "ApprovalRejected");
    let reverted = |s: &&crate::api::release::StageStatus| {
        withdrawn || s.phase != Some(crate::api::release::StagePhase::Verified)
    };
    status
        .stages
        .iter()
        .filter(reverted)
        .flat_map(|s| &s.deployments)
        .all(|d| {
            let Some(template) = &d.known_good_template else {
                return true;
            };
            world
                .deployments
                .iter()
                .find(|o| o.namespace == d.namespace && o.name == d.name)
                .is_none_or(|o| {
                    touched_by_others(o) || runs_known_good(&o.template, &template.get())
                })
        })
}

/// Whether a failed (not withdrawn) release left `namespace/name` on the release because its
/// stage had passed its checks.
fn kept_by_verified_stage(status: &ReleaseStatus, namespace: &str, name: &str) -> bool {
    let withdrawn = status
        .stages
        .iter()
        .filter_map(|s| s.failure.as_ref())
        .any(|f| f.reason == "Aborted" || f.reason == "ApprovalRejected");
    !withdrawn
        && status.stages.iter().any(|s| {
            s.phase == Some(crate::api::release::StagePhase::Verified)
                && s.deployments.iter().any(|d| {
                    d.namespace == namespace && d.name == name && d.known_good_template.is_some()
                })
        })
}

/// Plans once, checks the invariants, then writes the status and (unless crashing) acts.
fn checked_reconcile(world: &mut World, act: bool) -> Result<Plan, TestCaseError> {
    let observed = world.observed();
    let plan = super::plan(&observed);
    prop_assert_eq!(
        &plan,
        &super::plan(&observed),
        "the planner is deterministic"
    );
    let old = world.release.status.clone().unwrap_or_default();
    let new = &plan.status;

    // Known-good captures are never changed once written.
    for stage in &old.stages {
        for d in &stage.deployments {
            let kept = captured_template(new, &stage.name, &d.namespace, &d.name);
            prop_assert_eq!(
                kept,
                d.known_good_template.as_ref(),
                "capture of {} changed",
                d.name
            );
        }
    }

    match &plan.action {
        Action::RollOut {
            stage,
            namespace,
            deployment,
            ..
        } => {
            prop_assert!(
                captured_template(&old, stage, namespace, deployment).is_some(),
                "rollout of {namespace}/{deployment} without a persisted known-good capture"
            );
            prop_assert!(!failed(&old) && !failed(new), "rollout after a failure");
            prop_assert!(
                verified_before(&old, stage_index(&old, stage)),
                "stage {stage} rolls out before the stages before it are verified"
            );
        }
        Action::CreateJob { stage, .. } | Action::MarkKnownGood { stage, .. } => {
            prop_assert!(
                !failed(&old) && !failed(new),
                "{:?} after a failure",
                plan.action
            );
            prop_assert!(verified_before(new, stage_index(new, stage)));
        }
        Action::Revert {
            stage,
            namespace,
            deployment,
            template,
            generation,
            ..
        } => {
            prop_assert!(failed(new), "revert without a failure");
            let target = world.deployment(namespace, deployment);
            prop_assert_eq!(
                target.driven_by.as_deref(),
                Some(ME),
                "a revert of {}/{}, which the release does not drive",
                namespace,
                deployment
            );
            prop_assert!(
                runs_release_images(&target.template, &world.release.spec.images),
                "a revert of {namespace}/{deployment}, which no longer runs the release"
            );
            prop_assert_eq!(*generation, target.generation);
            prop_assert_eq!(
                captured_template(&old, stage, namespace, deployment)
                    .or(captured_template(new, stage, namespace, deployment))
                    .map(Compact::get),
                Some((**template).clone()),
                "a revert restores the captured template"
            );
        }
        Action::None => {}
    }
    if failed(&old) {
        prop_assert!(
            matches!(plan.action, Action::None | Action::Revert { .. }),
            "only reverts after a failure, got {:?}",
            plan.action
        );
    }
    if failed(new) && !matches!(plan.action, Action::Revert { .. }) {
        prop_assert!(
            all_at_known_good(world, new),
            "a failure with Deployments left to revert, but no revert"
        );
    }
    if new.phase == Some(ReleasePhase::RolledBack) {
        prop_assert!(all_at_known_good(world, new), "RolledBack but not reverted");
        // Never RolledBack while a Deployment the release drives in a reverted stage still
        // runs the images the release brought.
        for d in new
            .stages
            .iter()
            .filter(|s| s.phase != Some(StagePhase::Verified))
            .flat_map(|s| &s.deployments)
        {
            let Some(known_good) = d.known_good_template.as_ref().map(Compact::get) else {
                continue;
            };
            let Some(o) = world
                .deployments
                .iter()
                .find(|o| o.namespace == d.namespace && o.name == d.name)
            else {
                continue;
            };
            prop_assert!(
                !(o.driven_by.as_deref() == Some(ME)
                    && runs_release_images(&o.template, &world.release.spec.images)
                    && !runs_release_images(&known_good, &world.release.spec.images)),
                "RolledBack while {}/{} still runs the release",
                d.namespace,
                d.name
            );
        }
    }

    world.write_status(&plan);
    if act {
        world.perform(&plan.action);
    }
    Ok(plan)
}

fn apply(world: &mut World, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Reconcile => {
            checked_reconcile(world, true)?;
        }
        Op::CrashBeforeAction => {
            checked_reconcile(world, false)?;
        }
        Op::Settle => world.settle(),
        Op::FinishJob { pick, success } => {
            let running: Vec<usize> = (0..world.jobs.len())
                .filter(|&i| matches!(world.jobs[i].state, JobState::Running { .. }))
                .collect();
            if !running.is_empty() {
                let job = &mut world.jobs[running[pick % running.len()]];
                job.state = if *success {
                    JobState::Succeeded
                } else {
                    JobState::Failed {
                        reason: "BackoffLimitExceeded".into(),
                        message: String::new(),
                    }
                };
            }
        }
        Op::ExceedDeadline { pick } | Op::PodProblem { pick } => {
            let rolling: Vec<usize> = (0..world.deployments.len())
                .filter(|&i| {
                    let d = &world.deployments[i];
                    d.observed_generation < d.generation || d.updated_replicas < d.desired_replicas
                })
                .collect();
            if !rolling.is_empty() {
                let d = world.deployments[rolling[pick % rolling.len()]].clone();
                if matches!(op, Op::ExceedDeadline { .. }) {
                    world.exceed_progress_deadline(&d.namespace, &d.name);
                } else {
                    world.pod_problem(&d.namespace, &d.name, PodProblemReason::ImagePullBackOff);
                }
            }
        }
        Op::JobPodProblem { pick } => {
            let now = world.now;
            if !world.jobs.is_empty() {
                let count = world.jobs.len();
                let job = &mut world.jobs[pick % count];
                job.pod_problems.push(super::observed::PodProblem {
                    pod: format!("{}-pod", job.name),
                    reason: PodProblemReason::CrashLoopBackOff,
                    message: String::new(),
                    since: now,
                });
            }
        }
        Op::Advance { secs } => world.advance(*secs),
        Op::Decide {
            this_version,
            approver,
            reject,
        } => {
            let version = if *this_version { VERSION } else { "9.9.9" };
            let decision = if *reject {
                Decision::Rejected
            } else {
                Decision::Approved
            };
            world.decide(
                "production",
                &format!("person-{approver}"),
                version,
                decision,
            );
        }
        Op::Window { open } => {
            world.gates.window = Some(if *open {
                GateState::open("WindowOpen", "open")
            } else {
                GateState::closed(
                    "WindowClosed",
                    "closed",
                    Some(world.now + chrono::Duration::hours(1)),
                )
            });
        }
        Op::Requirements { met } => {
            world.gates.requirements = if *met {
                GateState::open("RequirementsMet", "met")
            } else {
                GateState::closed("NotesMissing", "no notes", None)
            };
        }
        Op::Abort => world.set_abort(),
        Op::HandEdit { pick } => {
            let count = world.deployments.len();
            set_image_by_hand(&mut world.deployments[pick % count], HAND_IMAGE);
        }
        Op::TakenOver { pick } => {
            // One driver at a time: only a finished release's Deployments are taken over.
            if world.release.status.as_ref().and_then(|s| s.phase) == Some(ReleasePhase::Succeeded)
            {
                let count = world.deployments.len();
                roll_out_by(&mut world.deployments[pick % count], NEWER, |c| {
                    format!("reg/{c}:9.0.0")
                });
            }
        }
    }
    Ok(())
}

/// Lets the world cooperate (rollouts complete, Jobs succeed, gates open) until the release
/// ends, checking every plan on the way.
fn drive_to_the_end(world: &mut World) -> Result<(), TestCaseError> {
    world.gates.requirements = GateState::open("RequirementsMet", "met");
    world.gates.window = Some(GateState::open("WindowOpen", "open"));
    for person in ["final-1", "final-2"] {
        world.decide("production", person, VERSION, Decision::Approved);
    }
    for _ in 0..200 {
        world.settle();
        for job in &mut world.jobs {
            job.pod_problems.clear();
            if matches!(job.state, JobState::Running { .. }) {
                job.state = JobState::Succeeded;
            }
        }
        checked_reconcile(world, true)?;
        let phase = world.status().phase;
        if matches!(
            phase,
            Some(ReleasePhase::Succeeded | ReleasePhase::RolledBack)
        ) {
            // Let any last step finish, then stop.
            let plan = checked_reconcile(world, true)?;
            prop_assert_eq!(&plan.action, &Action::None);
            return Ok(());
        }
    }
    Err(TestCaseError::fail(format!(
        "the release never ended: {:?}",
        world.status().phase
    )))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_release_guide_holds_for_any_sequence_of_events(
        spec in spec(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut world = World::new(spec);
        for op in &ops {
            apply(&mut world, op)?;
        }
        drive_to_the_end(&mut world)?;

        // Never half-way between two versions: every Deployment runs the release's images
        // (after success) or its original ones (after a rollback).
        let status = world.status().clone();
        for deployment in world.deployments.iter().filter(|d| !touched_by_others(d)) {
            match status.phase {
                Some(ReleasePhase::Succeeded) => prop_assert!(
                    runs_release_images(&deployment.template, &world.release.spec.images),
                    "{} does not run the release", deployment.name
                ),
                Some(ReleasePhase::RolledBack) if kept_by_verified_stage(&status, &deployment.namespace, &deployment.name) => prop_assert!(
                    runs_release_images(&deployment.template, &world.release.spec.images),
                    "{} belongs to a verified stage and keeps the release", deployment.name
                ),
                Some(ReleasePhase::RolledBack) => {
                    let original = settled_deployment(&deployment.namespace, &deployment.name);
                    prop_assert_eq!(
                        template_images(&deployment.template),
                        template_images(&original.template),
                        "{} was not reverted", &deployment.name
                    );
                }
                other => prop_assert!(false, "unexpected end phase {other:?}"),
            }
        }
        // No step done twice: one Job per check, one rollout per Deployment at most once per
        // template change (a repeated RollOut after a crash is a no-op in the world).
        let mut jobs: Vec<&str> = world.jobs.iter().map(|j| j.name.as_str()).collect();
        let before = jobs.len();
        jobs.dedup();
        prop_assert_eq!(jobs.len(), before);
        prop_assert!(world.jobs.len() <= 4);
        if status.phase == Some(ReleasePhase::Succeeded) {
            prop_assert!(status.stages.iter().all(|s| s.phase == Some(StagePhase::Verified)));
            let created = world.performed.iter().filter(|a| matches!(a, Action::CreateJob { kind: JobKind::SmokeTest, .. })).count();
            prop_assert!(created <= 2);
        }
    }

    #[test]
    fn replaying_an_observation_changes_nothing_more(
        spec in spec(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut world = World::new(spec);
        for op in &ops {
            apply(&mut world, op)?;
        }
        // Apply the next plan, then plan again on the unchanged world: a steady state or the
        // same step again, never a different side effect.
        let first = checked_reconcile(&mut world, true)?;
        let world_after = world.clone();
        let second = checked_reconcile(&mut world, true)?;
        if first.action == second.action && first.action != Action::None {
            // Repeating an idempotent action must not change the world.
            prop_assert_eq!(
                world.deployments.iter().map(|d| (&d.template, d.generation)).collect::<Vec<_>>(),
                world_after.deployments.iter().map(|d| (&d.template, d.generation)).collect::<Vec<_>>()
            );
            prop_assert_eq!(world.jobs.len(), world_after.jobs.len());
        }
    }
}
