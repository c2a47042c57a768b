//! Chaos: relman keeps its promises while the world around it fails.
//!
//! Three tests, one per scenario, run one at a time, each on a control plane of its own (the API
//! server restarts would disturb other tests on a shared one), with the real `relman` binary
//! as a child process so it can be SIGKILLed:
//!
//! 1. **Controller kills**: a fleet of releases, some made to fail their staging or production
//!    smoke test, some waiting for a production sign-off that arrives at a random moment; the
//!    controller is SIGKILLed at random points and restarted, again and again.
//! 2. **API server and etcd restarts**: the same kind of fleet while etcd and kube-apiserver are
//!    SIGKILLed and started again; relman must reconnect and finish everything.
//! 3. **Leader kills**: two relman processes with leader election on one Lease; the leader is
//!    SIGKILLed again and again. Every Event relman writes must come from the instance that
//!    held the Lease at that moment (never two writers).
//!
//! After each scenario every release is checked against what it must end as ([`Fate`]): its
//! phase and stage phases, each Deployment's image and revision (rolled out exactly once,
//! restored exactly once when reverted), the Deployment settled on one ReplicaSet, exactly one
//! smoke Job per stage attempt (every Job uid relman ever created is watched), every approval
//! still there and honoured (production never started before its sign-off). The summary table
//! is printed (`--nocapture` to see it) and the test fails if anything was lost or wrong.
//!
//! Sizes come from the environment (`make chaos` sets the large ones; the defaults are the
//! short run inside `make test`): `RELMAN_CHAOS_RELEASES`, `RELMAN_CHAOS_KILLS`,
//! `RELMAN_CHAOS_RESTART_RELEASES`, `RELMAN_CHAOS_RESTARTS`, `RELMAN_CHAOS_LEADER_RELEASES`,
//! `RELMAN_CHAOS_LEADER_KILLS`, `RELMAN_CHAOS_APPROVAL_WINDOW` (seconds). The
//! random choices come from `RELMAN_CHAOS_SEED` (printed at the start; set it to replay a run);
//! `RELMAN_CHAOS_LOG` sets the controllers' log filter (default `info`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relman::api::release::{ReleasePhase, StagePhase};
use relman::api::{Release, ReleaseApproval, ReleaseStatus};

use relman::api::labels::{LABEL_ATTEMPT, LABEL_JOB_KIND, LABEL_RELEASE, LABEL_STAGE};
use relman_testenv::{ADMIN_USER, ControlPlane, FAIL_LABEL, NODE_NAME};
use serde_json::json;
use tokio::task::JoinHandle;

/// The Lease the two replicas of the leader scenario compete for.
const LEASE: &str = "relman-chaos";
/// Leader election timings for the leader scenario: a takeover within about five seconds.
const LEADER_TIMINGS: [(&str, &str); 4] = [
    ("RELMAN_LEADER_ELECTION_LEASE_DURATION", "4s"),
    ("RELMAN_LEADER_ELECTION_RENEW_DEADLINE", "3s"),
    ("RELMAN_LEADER_ELECTION_RENEW_PERIOD", "1s"),
    ("RELMAN_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
];
/// How long a controller lives at most between two kills.
const MAX_LIFETIME: Duration = Duration::from_secs(4);
/// How long a killed controller stays down at most.
const MAX_DOWNTIME: Duration = Duration::from_secs(1);

/// How big the run is and which random choices it makes.
#[derive(Debug, Clone)]
struct Sizes {
    seed: u64,
    /// Releases of the controller-kill scenario.
    releases: usize,
    /// Controller kills in that scenario.
    kills: usize,
    /// Releases of the API server scenario.
    restart_releases: usize,
    /// Rounds of (etcd restart, kube-apiserver restart).
    restarts: usize,
    /// Releases of the leader scenario.
    leader_releases: usize,
    /// Leader kills.
    leader_kills: usize,
    /// Sign-offs arrive at random moments within this long after the releases were created.
    approval_window: Duration,
}

impl Sizes {
    /// From `RELMAN_CHAOS_*`; the defaults are the short run of `make test`.
    fn from_env() -> Self {
        let seed = env_or("RELMAN_CHAOS_SEED", || {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            (nanos % 1_000_000_007) as u64
        });
        let releases = env_or("RELMAN_CHAOS_RELEASES", || 12);
        Self {
            seed,
            releases,
            kills: env_or("RELMAN_CHAOS_KILLS", || 8),
            restart_releases: env_or("RELMAN_CHAOS_RESTART_RELEASES", || releases.div_ceil(3)),
            restarts: env_or("RELMAN_CHAOS_RESTARTS", || 1),
            leader_releases: env_or("RELMAN_CHAOS_LEADER_RELEASES", || releases.div_ceil(3)),
            leader_kills: env_or("RELMAN_CHAOS_LEADER_KILLS", || 2),
            approval_window: Duration::from_secs(env_or("RELMAN_CHAOS_APPROVAL_WINDOW", || 15)),
        }
    }
}

/// The variable `name` parsed, or `default()` when it is unset or empty.
fn env_or<T: FromStr>(name: &str, default: impl FnOnce() -> T) -> T {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid number")),
        _ => default(),
    }
}

/// SplitMix64: small, seedable, good enough to pick kill moments and fates.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A duration in `[low, high]`, to the millisecond.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = u64::try_from((high - low).as_millis()).unwrap_or(u64::MAX);
        low + Duration::from_millis(self.next_u64() % (span + 1))
    }

    /// A derived generator, so one scenario's draws do not shift another's.
    fn fork(&mut self) -> Self {
        Self(self.next_u64())
    }
}

/// How a release must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Both smoke tests pass: `Succeeded`, both Deployments on the new image.
    Succeeds,
    /// Staging's smoke test fails: `RolledBack`, staging restored, production never touched.
    FailsStaging,
    /// Production's smoke test fails: `RolledBack`, production restored, staging keeps the
    /// release it verified.
    FailsProduction,
}

/// One release of the fleet: its own application and Deployments, so releases never wait for
/// each other and each one's expected end is known.
#[derive(Clone, Debug)]
struct Planned {
    app: String,
    fate: Fate,
    /// When the release is created, after the scenario started.
    created_due: Duration,
    /// When the production sign-off is created, after the scenario started; `None` when
    /// production needs none.
    approval_due: Option<Duration>,
}

impl Planned {
    fn release(&self) -> String {
        format!("{}-2-0-0", self.app)
    }

    fn deployment(&self, stage: &str) -> String {
        let suffix = if stage == "staging" {
            "staging"
        } else {
            "prod"
        };
        format!("{}-{suffix}", self.app)
    }

    fn old_image(&self) -> String {
        format!("{}:1.0.0", self.app)
    }

    fn new_image(&self) -> String {
        format!("{}:2.0.0", self.app)
    }

    fn approval(&self) -> String {
        format!("{}-production", self.release())
    }

    /// Whether `stage`'s smoke test is made to fail.
    fn smoke_fails(&self, stage: &str) -> bool {
        matches!(
            (self.fate, stage),
            (Fate::FailsStaging, "staging") | (Fate::FailsProduction, "production")
        )
    }

    /// Whether `stage` starts at all (production does not after a failed staging).
    fn starts(&self, stage: &str) -> bool {
        stage == "staging" || self.fate != Fate::FailsStaging
    }

    /// The image `stage`'s Deployment must end on, and its revision: rolled out once (2), or
    /// rolled out and restored once (3), or untouched (1).
    fn expected_deployment(&self, stage: &str) -> (String, &'static str) {
        if !self.starts(stage) {
            (self.old_image(), "1")
        } else if self.smoke_fails(stage) {
            (self.old_image(), "3")
        } else {
            (self.new_image(), "2")
        }
    }

    fn manifest(&self) -> Release {
        let smoke = |fails: bool| {
            let labels = if fails {
                json!({ FAIL_LABEL: "true" })
            } else {
                json!({})
            };
            json!({"timeout": "5m", "template": {"spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "smoke", "image": "smoke:1"}]}
            }}}})
        };
        let mut production = json!({"name": "production",
            "deployments": [self.deployment("production")],
            "smokeTest": smoke(self.smoke_fails("production"))});
        if self.approval_due.is_some() {
            production["approval"] = json!({"approvers": 1});
        }
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": self.release()},
            "spec": {
                "application": self.app,
                "version": "2.0.0",
                "type": "Major",
                "owner": "team-chaos",
                "rollbackPlan": "revert to 1.0.0",
                "notes": {"summary": "Version 2.", "migrationSteps": ["none"]},
                "images": [{"container": "api", "image": self.new_image()}],
                "stages": [
                    {"name": "staging", "deployments": [self.deployment("staging")],
                        "smokeTest": smoke(self.smoke_fails("staging"))},
                    production
                ]
            }
        }))
        .expect("valid Release")
    }
}

/// What a scenario found, for the summary.
#[derive(Debug, Default)]
struct Outcome {
    scenario: &'static str,
    /// Controller processes started.
    runs: usize,
    /// Controller processes SIGKILLed.
    kills: usize,
    /// etcd and kube-apiserver restarts.
    restarts: usize,
    releases: usize,
    succeeded: usize,
    rolled_back: usize,
    /// Releases not finished in time, or whose approval disappeared.
    lost: usize,
    /// Releases finished differently from their fate, or with a duplicate Job or a Deployment
    /// left between versions.
    wrong: usize,
    approvals: usize,
    smoke_jobs: usize,
    /// Leader terms seen and Events checked against them (leader scenario).
    leader_terms: usize,
    events_checked: usize,
    /// Events written by an instance that did not hold the Lease then.
    foreign_writes: usize,
    /// How long the kwok node was not Ready (an environment failure, not relman's).
    node_down: Duration,
    /// Deployments on the right version whose pods were not all available at the end (the
    /// environment's doing; reported, not counted as wrong).
    unavailable: usize,
    /// Those Deployments' pods: phase, readiness and why not.
    unavailable_pods: Vec<String>,
    duration: Duration,
    /// Every problem, one line each.
    problems: Vec<String>,
}

/// A `relman` process, SIGKILLed when dropped.
struct Relman {
    name: String,
    child: Child,
}

impl Relman {
    /// Starts the controller binary (its copy in `log_dir`) for `namespace` as instance `name`
    /// (its `POD_NAME`), with leader election on `lease` or off, logging to
    /// `<log_dir>/<name>.log`.
    fn spawn(
        cp: &ControlPlane,
        namespace: &str,
        name: &str,
        lease: Option<&str>,
        log_dir: &Path,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .expect("open the controller log");
        let mut command = Command::new(log_dir.join("relman"));
        command
            .env("KUBECONFIG", cp.kubeconfig_path())
            .env("RELMAN_NAMESPACE", namespace)
            .env("RELMAN_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "RELMAN_LOG",
                std::env::var("RELMAN_CHAOS_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        match lease {
            Some(lease) => {
                command
                    .env("RELMAN_LEADER_ELECTION", "true")
                    .env("RELMAN_LEADER_ELECTION_LEASE", lease)
                    .envs(LEADER_TIMINGS);
            }
            None => {
                command.env("RELMAN_LEADER_ELECTION", "false");
            }
        }
        let child = command.spawn().expect("start the relman binary");
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails when the process exited by itself: relman must never give up.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!("relman {} exited by itself: {status}", self.name),
        }
    }
}

impl Drop for Relman {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The smoke Jobs seen per (release, stage, attempt): every uid, from a watch that runs for
/// the whole scenario, so a Job deleted and created again would count twice.
type JobLog = Arc<Mutex<BTreeMap<(String, String, String), BTreeSet<String>>>>;

/// One scenario's namespace and releases.
struct Fleet {
    client: kube::Client,
    ns: String,
    planned: Vec<Planned>,
    releases: Api<Release>,
    approvals: Api<ReleaseApproval>,
    /// Releases created so far.
    created_releases: BTreeSet<String>,
    /// Approvals created: name → uid.
    created_approvals: BTreeMap<String, String>,
    jobs: JobLog,
    job_watch: JoinHandle<()>,
    /// How long the kwok node was not Ready, by a poll every second.
    node_down: Arc<Mutex<Duration>>,
    node_watch: JoinHandle<()>,
    started: Instant,
}

impl Fleet {
    /// A namespace with `count` applications, each with a staging and a production Deployment
    /// running 1.0.0, and their planned releases (not created yet).
    async fn new(
        cp: &ControlPlane,
        prefix: &str,
        count: usize,
        approval_window: Duration,
        rng: &mut Rng,
    ) -> anyhow::Result<Self> {
        let client = cp.client().await?;
        let ns = cp.test_namespace(prefix).await?.name().to_owned();
        let planned: Vec<Planned> = (0..count)
            .map(|i| {
                let fate = match rng.next_u64() % 10 {
                    0..=5 => Fate::Succeeds,
                    6 | 7 => Fate::FailsStaging,
                    _ => Fate::FailsProduction,
                };
                // Releases arrive over the window, so the chaos meets them at every step;
                // about half wait for a sign-off, which arrives at a random moment after.
                let created_due = rng.between(Duration::ZERO, approval_window);
                let approval_due = rng
                    .chance(50)
                    .then(|| created_due + rng.between(Duration::ZERO, approval_window));
                Planned {
                    app: format!("app-{i:03}"),
                    fate,
                    created_due,
                    approval_due,
                }
            })
            .collect();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        for p in &planned {
            for stage in ["staging", "production"] {
                let name = p.deployment(stage);
                let deployment: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {
                            "metadata": {"labels": {"app": name}},
                            "spec": {"containers": [{"name": "api", "image": p.old_image()}]}
                        }
                    }
                }))?;
                deployments
                    .create(&PostParams::default(), &deployment)
                    .await?;
            }
        }
        let jobs = JobLog::default();
        let job_watch = tokio::spawn(watch_jobs(client.clone(), ns.clone(), jobs.clone()));
        let node_down = Arc::new(Mutex::new(Duration::ZERO));
        let node_watch = tokio::spawn(watch_node(client.clone(), node_down.clone()));
        let fleet = Self {
            releases: Api::namespaced(client.clone(), &ns),
            approvals: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            planned,
            created_releases: BTreeSet::new(),
            created_approvals: BTreeMap::new(),
            jobs,
            job_watch,
            node_down,
            node_watch,
            started: Instant::now(),
        };
        fleet.wait_deployments_available().await?;
        Ok(fleet)
    }

    /// Waits until every Deployment of the namespace runs its first revision.
    async fn wait_deployments_available(&self) -> anyhow::Result<()> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let deadline = Instant::now() + Duration::from_secs(60 + 2 * self.planned.len() as u64);
        loop {
            let list = deployments.list(&ListParams::default()).await?;
            let waiting = list.items.iter().filter(|d| !settled(d)).count();
            if waiting == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{waiting} Deployments of {} did not become available",
                self.ns
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts the scenario clock: from now on [`Fleet::create_due`] creates the releases and
    /// approvals as they fall due.
    async fn start(&mut self) -> anyhow::Result<()> {
        self.started = Instant::now();
        self.create_due().await
    }

    /// Creates the releases and sign-offs that are due by now.
    async fn create_due(&mut self) -> anyhow::Result<()> {
        self.create_due_releases().await?;
        self.create_due_approvals().await
    }

    /// Creates the releases that are due by now.
    async fn create_due_releases(&mut self) -> anyhow::Result<()> {
        let elapsed = self.started.elapsed();
        let due: Vec<Planned> = self
            .planned
            .iter()
            .filter(|p| p.created_due <= elapsed && !self.created_releases.contains(&p.release()))
            .cloned()
            .collect();
        for p in &due {
            retry(&format!("create release {}", p.release()), || async {
                match self
                    .releases
                    .create(&PostParams::default(), &p.manifest())
                    .await
                {
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
            self.created_releases.insert(p.release());
        }
        Ok(())
    }

    /// Creates the sign-offs that are due by now.
    async fn create_due_approvals(&mut self) -> anyhow::Result<()> {
        let elapsed = self.started.elapsed();
        let due: Vec<Planned> = self
            .planned
            .iter()
            .filter(|p| p.approval_due.is_some_and(|due| due <= elapsed))
            .filter(|p| !self.created_approvals.contains_key(&p.approval()))
            .cloned()
            .collect();
        for p in due {
            let approval: ReleaseApproval = serde_json::from_value(json!({
                "apiVersion": "relman.io/v1alpha1",
                "kind": "ReleaseApproval",
                "metadata": {"name": p.approval()},
                "spec": {"release": p.release(), "version": "2.0.0", "gate": "production",
                    "decision": "Approved", "approver": ADMIN_USER,
                    "comment": "Staging verified (chaos)."}
            }))?;
            let uid = retry(&format!("create approval {}", p.approval()), || async {
                match self
                    .approvals
                    .create(&PostParams::default(), &approval)
                    .await
                {
                    // Created by an attempt whose answer was lost in an API server restart.
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        self.approvals.get(&p.approval()).await
                    }
                    other => other,
                }
            })
            .await?
            .metadata
            .uid
            .unwrap_or_default();
            self.created_approvals.insert(p.approval(), uid);
        }
        Ok(())
    }

    /// How many releases are not finished yet; `None` when the API server does not answer.
    async fn unfinished(&self) -> Option<usize> {
        let list = self.releases.list(&ListParams::default()).await.ok()?;
        let finished = list.items.iter().filter(|r| terminal(r)).count();
        Some(self.planned.len().saturating_sub(finished))
    }

    /// Creates due approvals and waits, until every release is finished or `deadline`.
    /// `controllers` must stay up meanwhile.
    async fn run_to_the_end(
        &mut self,
        controllers: &mut [&mut Relman],
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            self.create_due().await?;
            for relman in controllers.iter_mut() {
                relman.ensure_running()?;
            }
            let pending_approvals = self
                .planned
                .iter()
                .filter(|p| p.approval_due.is_some())
                .count()
                > self.created_approvals.len();
            let pending = pending_approvals || self.created_releases.len() < self.planned.len();
            if !pending && self.unfinished().await == Some(0) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(()); // The check reports what is unfinished.
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits `duration`, creating due approvals meanwhile.
    async fn pause(&mut self, duration: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.create_due().await?;
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(200))).await;
        }
        Ok(())
    }

    /// Checks every release against its fate; fills `outcome`.
    async fn check(&mut self, outcome: &mut Outcome) -> anyhow::Result<()> {
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
    async fn check_release(
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
    fn check_approval_honoured(
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
    async fn pod_states(&self, name: &str) -> anyhow::Result<String> {
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
    async fn check_stage(
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

impl Drop for Fleet {
    fn drop(&mut self) {
        self.job_watch.abort();
        self.node_watch.abort();
    }
}

/// Adds to `down` every second the kwok node is seen not Ready (an unanswered poll, as during
/// an API server restart, does not count), until aborted. A node that is not Ready makes every
/// pod unready: the run then measures the machine, not relman.
async fn watch_node(client: kube::Client, down: Arc<Mutex<Duration>>) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        if let Ok(node) = nodes.get(NODE_NAME).await {
            let ready = node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                *down.lock().unwrap() += Duration::from_secs(1);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Records every smoke Job of `ns` into `log` until aborted; survives API server restarts.
async fn watch_jobs(client: kube::Client, ns: String, log: JobLog) {
    let jobs: Api<Job> = Api::namespaced(client, &ns);
    let stream = watcher(jobs, watcher::Config::default().labels(LABEL_RELEASE))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    loop {
        match stream.try_next().await {
            Ok(Some(job)) => record_job(&log, &job),
            Ok(None) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn record_job(log: &JobLog, job: &Job) {
    let labels = job.metadata.labels.clone().unwrap_or_default();
    if labels.get(LABEL_JOB_KIND).map(String::as_str) != Some("smoke") {
        return;
    }
    let key = |label: &str| labels.get(label).cloned().unwrap_or_default();
    let entry = (key(LABEL_RELEASE), key(LABEL_STAGE), key(LABEL_ATTEMPT));
    log.lock()
        .unwrap()
        .entry(entry)
        .or_default()
        .insert(job.metadata.uid.clone().unwrap_or_default());
}

/// Whether the Deployment runs one version: its spec observed, every replica updated, no old
/// replica left.
fn on_one_version(d: &Deployment) -> bool {
    let status = d.status.clone().unwrap_or_default();
    let replicas = d.spec.replicas;
    d.metadata.generation == status.observed_generation
        && status.updated_replicas == replicas
        && status.replicas == replicas
}

/// Whether the Deployment's rollout is complete: every replica updated and available.
fn settled(d: &Deployment) -> bool {
    let status = d.status.clone().unwrap_or_default();
    let replicas = d.spec.replicas;
    d.metadata.generation == status.observed_generation
        && status.updated_replicas == replicas
        && status.available_replicas == replicas
        && status.replicas == replicas
        && status.unavailable_replicas.unwrap_or(0) == 0
}

/// Whether the release reached a phase it never leaves by itself.
fn terminal(release: &Release) -> bool {
    matches!(
        release.status.as_ref().and_then(|s| s.phase),
        Some(ReleasePhase::Succeeded | ReleasePhase::RolledBack | ReleasePhase::Failed)
    )
}

/// The conditions, one `Type=Status(Reason)` each, for messages.
fn conditions(status: &ReleaseStatus) -> String {
    status
        .conditions
        .iter()
        .map(|c| format!("{}={}({}: {})", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Retries `call` for up to two minutes (the API server may be restarting).
async fn retry<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("{what}: still failing after two minutes: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// How long a scenario may take to finish its releases after the chaos stopped.
fn finish_deadline(releases: usize) -> Instant {
    Instant::now() + Duration::from_secs(180 + 6 * releases as u64)
}

/// Scenario 1: SIGKILL the only controller at random points, again and again.
async fn controller_kills(
    cp: &ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut outcome = Outcome {
        scenario: "controller kills",
        ..Outcome::default()
    };
    let mut fleet =
        Fleet::new(cp, "chaos-kill", sizes.releases, sizes.approval_window, rng).await?;
    let mut relman = Relman::spawn(cp, &fleet.ns, "relman-kill-0", None, log_dir);
    outcome.runs += 1;
    fleet.start().await?;
    while outcome.kills < sizes.kills {
        let lifetime = rng.between(Duration::from_millis(200), MAX_LIFETIME);
        fleet.pause(lifetime).await?;
        relman.ensure_running()?;
        if fleet.unfinished().await == Some(0) {
            break;
        }
        relman.kill();
        outcome.kills += 1;
        fleet
            .pause(rng.between(Duration::ZERO, MAX_DOWNTIME))
            .await?;
        relman = Relman::spawn(
            cp,
            &fleet.ns,
            &format!("relman-kill-{}", outcome.kills),
            None,
            log_dir,
        );
        outcome.runs += 1;
    }
    fleet
        .run_to_the_end(&mut [&mut relman], finish_deadline(sizes.releases))
        .await?;
    drop(relman);
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// Scenario 2: restart etcd and kube-apiserver (SIGKILL, then start again) under a running
/// controller.
async fn apiserver_restarts(
    cp: &mut ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut outcome = Outcome {
        scenario: "API server + etcd restarts",
        ..Outcome::default()
    };
    let mut fleet = Fleet::new(
        cp,
        "chaos-api",
        sizes.restart_releases,
        sizes.approval_window,
        rng,
    )
    .await?;
    let mut relman = Relman::spawn(cp, &fleet.ns, "relman-api-0", None, log_dir);
    outcome.runs += 1;
    fleet.start().await?;
    for _ in 0..sizes.restarts {
        fleet
            .pause(rng.between(Duration::from_secs(1), Duration::from_secs(6)))
            .await?;
        cp.restart_etcd(rng.between(Duration::from_millis(500), Duration::from_secs(3)))
            .await?;
        outcome.restarts += 1;
        fleet
            .pause(rng.between(Duration::from_secs(1), Duration::from_secs(6)))
            .await?;
        cp.restart_apiserver(rng.between(Duration::from_millis(500), Duration::from_secs(3)))
            .await?;
        outcome.restarts += 1;
        relman.ensure_running()?;
    }
    fleet
        .run_to_the_end(&mut [&mut relman], finish_deadline(sizes.restart_releases))
        .await?;
    drop(relman);
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// One holder of the Lease, from its acquisition on.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    /// The holder's `POD_NAME` (the Lease identity without its per-process suffix).
    instance: String,
    acquired: Timestamp,
    transitions: i32,
}

/// Records every term of the Lease `LEASE` in `ns` until aborted.
async fn watch_lease(client: kube::Client, ns: String, terms: Arc<Mutex<Vec<Term>>>) {
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE}"));
    let stream = watcher(leases, config).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    loop {
        match stream.try_next().await {
            Ok(Some(lease)) => {
                let Some(spec) = lease.spec else { continue };
                let (Some(holder), Some(acquired)) = (spec.holder_identity, spec.acquire_time)
                else {
                    continue;
                };
                let term = Term {
                    instance: holder
                        .rsplit_once('_')
                        .map_or(holder.clone(), |(pod, _)| pod.to_owned()),
                    acquired: acquired.0,
                    transitions: spec.lease_transitions.unwrap_or_default(),
                };
                let mut terms = terms.lock().unwrap();
                if terms.last() != Some(&term) {
                    terms.push(term);
                }
            }
            Ok(None) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The instance holding the Lease now, if any.
async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .ok()??;
    let holder = lease.spec?.holder_identity?;
    Some(
        holder
            .rsplit_once('_')
            .map_or(holder.clone(), |(pod, _)| pod.to_owned()),
    )
}

/// Scenario 3: two replicas with leader election; SIGKILL the leader again and again.
async fn leader_kills(
    cp: &ControlPlane,
    sizes: &Sizes,
    rng: &mut Rng,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut outcome = Outcome {
        scenario: "leader kills",
        ..Outcome::default()
    };
    let mut fleet = Fleet::new(
        cp,
        "chaos-leader",
        sizes.leader_releases,
        sizes.approval_window,
        rng,
    )
    .await?;
    let terms = Arc::new(Mutex::new(Vec::new()));
    let lease_watch = tokio::spawn(watch_lease(
        fleet.client.clone(),
        fleet.ns.clone(),
        terms.clone(),
    ));
    let mut replicas = vec![
        Relman::spawn(cp, &fleet.ns, "relman-a-0", Some(LEASE), log_dir),
        Relman::spawn(cp, &fleet.ns, "relman-b-0", Some(LEASE), log_dir),
    ];
    outcome.runs += 2;
    fleet.start().await?;
    while outcome.kills < sizes.leader_kills {
        // Wait until one of the running replicas leads, let it work a while, kill it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let leader = loop {
            let holder = lease_holder(&fleet.client, &fleet.ns).await;
            if let Some(i) = replicas
                .iter()
                .position(|r| holder.as_deref() == Some(r.name.as_str()))
            {
                break i;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no running replica took the Lease within a minute (holder {holder:?})"
            );
            fleet.pause(Duration::from_millis(100)).await?;
        };
        fleet
            .pause(rng.between(Duration::from_millis(500), Duration::from_secs(6)))
            .await?;
        for replica in &mut replicas {
            replica.ensure_running()?;
        }
        if fleet.unfinished().await == Some(0) {
            break;
        }
        replicas[leader].kill();
        outcome.kills += 1;
        fleet
            .pause(rng.between(Duration::ZERO, Duration::from_secs(2)))
            .await?;
        let letter = if replicas[leader].name.starts_with("relman-a") {
            "a"
        } else {
            "b"
        };
        replicas[leader] = Relman::spawn(
            cp,
            &fleet.ns,
            &format!("relman-{letter}-{}", outcome.kills),
            Some(LEASE),
            log_dir,
        );
        outcome.runs += 1;
    }
    {
        let (a, b) = replicas.split_at_mut(1);
        fleet
            .run_to_the_end(
                &mut [&mut a[0], &mut b[0]],
                finish_deadline(sizes.leader_releases),
            )
            .await?;
    }
    drop(replicas);
    // Let the watch catch up, then compare every Event with the terms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    lease_watch.abort();
    let terms = terms.lock().unwrap().clone();
    check_single_writer(&fleet, &terms, &mut outcome).await?;
    fleet.check(&mut outcome).await?;
    outcome.duration = began.elapsed();
    Ok(outcome)
}

/// Every Event relman wrote in the fleet's namespace was written (first and, for a series,
/// last) while its instance held the Lease: at a time within its term, which ends when the
/// next holder acquired it.
async fn check_single_writer(
    fleet: &Fleet,
    terms: &[Term],
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    outcome.leader_terms += terms.len();
    for pair in terms.windows(2) {
        if pair[1].transitions != pair[0].transitions + 1 {
            outcome.problems.push(format!(
                "the Lease watch missed a term between {pair:?}: cannot attribute every write"
            ));
            outcome.foreign_writes += 1;
        }
    }
    let events: Api<KubeEvent> = Api::namespaced(fleet.client.clone(), &fleet.ns);
    let events = events.list(&ListParams::default()).await?;
    for event in events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("relman"))
    {
        let instance = event.reporting_instance.clone().unwrap_or_default();
        let mut times: Vec<Timestamp> = event.event_time.iter().map(|t| t.0).collect();
        times.extend(event.series.as_ref().map(|s| s.last_observed_time.0));
        for time in times {
            outcome.events_checked += 1;
            let holder = terms.iter().rev().find(|t| t.acquired <= time);
            if holder.map(|t| t.instance.as_str()) != Some(instance.as_str()) {
                outcome.foreign_writes += 1;
                outcome.problems.push(format!(
                    "Event {} ({} on {:?}) written by {instance} at {time}, when the Lease \
                     was held by {:?}",
                    event.metadata.name.as_deref().unwrap_or_default(),
                    event.reason.as_deref().unwrap_or_default(),
                    event.regarding.as_ref().and_then(|r| r.name.clone()),
                    holder
                ));
            }
        }
    }
    Ok(())
}

/// The summary table.
fn summary(sizes: &Sizes, outcomes: &[Outcome], total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrelman chaos summary (seed {}; replay with RELMAN_CHAOS_SEED={})",
        sizes.seed, sizes.seed
    );
    let _ = writeln!(
        out,
        "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>9}",
        "scenario",
        "runs",
        "kills",
        "restarts",
        "releases",
        "succeeded",
        "rolled back",
        "lost",
        "wrong",
        "approvals",
        "smoke Jobs",
        "duration"
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>8}s",
            o.scenario,
            o.runs,
            o.kills,
            o.restarts,
            o.releases,
            o.succeeded,
            o.rolled_back,
            o.lost,
            o.wrong,
            o.approvals,
            o.smoke_jobs,
            o.duration.as_secs()
        );
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let _ = writeln!(
        out,
        "{:<27} {:>5} {:>6} {:>9} {:>9} {:>10} {:>12} {:>5} {:>6} {:>10} {:>10} {:>8}s",
        "total",
        sum(|o| o.runs),
        sum(|o| o.kills),
        sum(|o| o.restarts),
        sum(|o| o.releases),
        sum(|o| o.succeeded),
        sum(|o| o.rolled_back),
        sum(|o| o.lost),
        sum(|o| o.wrong),
        sum(|o| o.approvals),
        sum(|o| o.smoke_jobs),
        total.as_secs()
    );
    let _ = writeln!(
        out,
        "leader terms {}, relman Events checked against them {}, written outside their \
         writer's term {}",
        sum(|o| o.leader_terms),
        sum(|o| o.events_checked),
        sum(|o| o.foreign_writes)
    );
    let node_down: Duration = outcomes.iter().map(|o| o.node_down).sum();
    let _ = writeln!(
        out,
        "kwok node not Ready during the run: {}s; Deployments on the right version with \
         unavailable pods at the end: {} (the environment's, not relman's)",
        node_down.as_secs(),
        sum(|o| o.unavailable)
    );
    for pods in outcomes.iter().flat_map(|o| &o.unavailable_pods) {
        let _ = writeln!(out, "  - {pods}");
    }
    let lost = sum(|o| o.lost) + sum(|o| o.wrong) + sum(|o| o.foreign_writes);
    let _ = writeln!(out, "lost or wrong: {lost}");
    for problem in outcomes.iter().flat_map(|o| &o.problems) {
        let _ = writeln!(out, "  - {problem}");
    }
    out
}

/// Where the controllers' logs go: `target/tmp/chaos-<seed>/`. The `relman` binary is copied
/// there too and run from there, so a build during the run cannot swap it.
fn log_dir(seed: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}"));
    std::fs::create_dir_all(&dir).expect("create the chaos log directory");
    std::fs::copy(env!("CARGO_BIN_EXE_relman"), dir.join("relman"))
        .expect("copy the relman binary");
    dir
}

/// The scenarios run one at a time, each on a control plane of its own: cargo runs the tests
/// of one binary in parallel, and two control planes and fleets at once would measure the
/// machine rather than relman.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which scenario a test runs.
#[derive(Clone, Copy)]
enum Scenario {
    ControllerKills,
    ApiserverRestarts,
    LeaderKills,
}

/// Runs `scenario` with the sizes and seed of the environment, prints its summary, and fails
/// when anything was lost or wrong.
async fn run(scenario: Scenario) -> anyhow::Result<()> {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let sizes = Sizes::from_env();
    let logs = log_dir(sizes.seed);
    println!(
        "relman chaos: {sizes:?}; replay with RELMAN_CHAOS_SEED={}; controller logs in {}",
        sizes.seed,
        logs.display()
    );
    let began = Instant::now();
    let mut cp = ControlPlane::start().await?;
    // Each scenario draws from its own stream, so one seed replays any of them alone.
    let mut rng = Rng(sizes.seed);
    let (mut kill_rng, mut restart_rng, mut leader_rng) = (rng.fork(), rng.fork(), rng.fork());
    let outcome = match scenario {
        Scenario::ControllerKills => controller_kills(&cp, &sizes, &mut kill_rng, &logs).await?,
        Scenario::ApiserverRestarts => {
            apiserver_restarts(&mut cp, &sizes, &mut restart_rng, &logs).await?
        }
        Scenario::LeaderKills => leader_kills(&cp, &sizes, &mut leader_rng, &logs).await?,
    };
    let report = summary(&sizes, std::slice::from_ref(&outcome), began.elapsed());
    println!("{report}");
    assert_eq!(
        outcome.lost + outcome.wrong + outcome.foreign_writes,
        0,
        "chaos found lost or wrong releases:{report}"
    );
    assert_eq!(
        outcome.succeeded + outcome.rolled_back,
        outcome.releases,
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_controller_kills() -> anyhow::Result<()> {
    run(Scenario::ControllerKills).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_leader_kills() -> anyhow::Result<()> {
    run(Scenario::LeaderKills).await
}

/// Restarts etcd and kube-apiserver under running releases. It found two controller bugs: a
/// Release watch retrying a resourceVersion the restarted API server no longer had (fixed by
/// `k8s::watch`), and watch errors pausing every trigger of the controller behind kube's
/// shared backoff for minutes (fixed by `k8s::watch::NoTriggerPause`): before that fix this
/// scenario ran into its deadline, after it the releases finish about 20 s after the restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_apiserver_and_etcd_restarts() -> anyhow::Result<()> {
    run(Scenario::ApiserverRestarts).await
}
