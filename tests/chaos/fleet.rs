//! A scenario's fleet: one namespace with an application per release, the releases and
//! sign-offs created as they fall due, and watches on the Jobs and the node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relman::api::labels::{LABEL_ATTEMPT, LABEL_JOB_KIND, LABEL_RELEASE, LABEL_STAGE};
use relman::api::{Release, ReleaseApproval};
use relman_testenv::{ADMIN_USER, ControlPlane, NODE_NAME};
use tokio::task::JoinHandle;

use crate::check::{settled, terminal};
use crate::process::Relman;
use crate::sizes::Rng;
use crate::support;

/// How a release must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
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
pub struct Planned {
    pub app: String,
    pub fate: Fate,
    /// When the release is created, after the scenario started.
    pub created_due: Duration,
    /// When the production sign-off is created, after the scenario started; `None` when
    /// production needs none.
    pub approval_due: Option<Duration>,
}

impl Planned {
    pub fn release(&self) -> String {
        format!("{}-2-0-0", self.app)
    }

    pub fn deployment(&self, stage: &str) -> String {
        let suffix = if stage == "staging" {
            "staging"
        } else {
            "prod"
        };
        format!("{}-{suffix}", self.app)
    }

    pub fn old_image(&self) -> String {
        format!("{}:1.0.0", self.app)
    }

    pub fn new_image(&self) -> String {
        format!("{}:2.0.0", self.app)
    }

    pub fn approval(&self) -> String {
        format!("{}-production", self.release())
    }

    /// Whether `stage`'s smoke test is made to fail.
    pub fn smoke_fails(&self, stage: &str) -> bool {
        matches!(
            (self.fate, stage),
            (Fate::FailsStaging, "staging") | (Fate::FailsProduction, "production")
        )
    }

    /// Whether `stage` starts at all (production does not after a failed staging).
    pub fn starts(&self, stage: &str) -> bool {
        stage == "staging" || self.fate != Fate::FailsStaging
    }

    /// The image `stage`'s Deployment must end on, and its revision: rolled out once (2), or
    /// rolled out and restored once (3), or untouched (1).
    pub fn expected_deployment(&self, stage: &str) -> (String, &'static str) {
        if !self.starts(stage) {
            (self.old_image(), "1")
        } else if self.smoke_fails(stage) {
            (self.old_image(), "3")
        } else {
            (self.new_image(), "2")
        }
    }

    pub fn manifest(&self) -> Release {
        let release = support::release(&self.app, "2.0.0")
            .owner("team-chaos")
            .staging(!self.smoke_fails("staging"))
            .production(!self.smoke_fails("production"));
        if self.approval_due.is_some() {
            release.production_approval().build()
        } else {
            release.build()
        }
    }
}

/// The smoke Jobs seen per (release, stage, attempt): every uid, from a watch that runs for
/// the whole scenario, so a Job deleted and created again would count twice.
pub type JobLog = Arc<Mutex<BTreeMap<(String, String, String), BTreeSet<String>>>>;

/// One scenario's namespace and releases.
pub struct Fleet {
    pub client: kube::Client,
    pub ns: String,
    pub planned: Vec<Planned>,
    pub releases: Api<Release>,
    pub approvals: Api<ReleaseApproval>,
    /// Releases created so far.
    pub created_releases: BTreeSet<String>,
    /// Approvals created: name → uid.
    pub created_approvals: BTreeMap<String, String>,
    pub jobs: JobLog,
    pub job_watch: JoinHandle<()>,
    /// How long the kwok node was not Ready, by a poll every second.
    pub node_down: Arc<Mutex<Duration>>,
    pub node_watch: JoinHandle<()>,
    pub started: Instant,
}

impl Fleet {
    /// A namespace with `count` applications, each with a staging and a production Deployment
    /// running 1.0.0, and their planned releases (not created yet).
    pub async fn new(
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
                let deployment = support::deployment(&p.deployment(stage), &p.old_image(), 1);
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
    pub async fn wait_deployments_available(&self) -> anyhow::Result<()> {
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
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.started = Instant::now();
        self.create_due().await
    }

    /// Creates the releases and sign-offs that are due by now.
    pub async fn create_due(&mut self) -> anyhow::Result<()> {
        self.create_due_releases().await?;
        self.create_due_approvals().await
    }

    /// Creates the releases that are due by now.
    pub async fn create_due_releases(&mut self) -> anyhow::Result<()> {
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
    pub async fn create_due_approvals(&mut self) -> anyhow::Result<()> {
        let elapsed = self.started.elapsed();
        let due: Vec<Planned> = self
            .planned
            .iter()
            .filter(|p| p.approval_due.is_some_and(|due| due <= elapsed))
            // A sign-off names its Release's uid: it waits until the Release exists.
            .filter(|p| self.created_releases.contains(&p.release()))
            .filter(|p| !self.created_approvals.contains_key(&p.approval()))
            .cloned()
            .collect();
        for p in due {
            let mut approval = support::approval(
                &p.approval(),
                &p.release(),
                "2.0.0",
                "production",
                ADMIN_USER,
            );
            approval.spec.comment = Some("Staging verified (chaos).".to_owned());
            // A sign-off counts only for the Release object whose uid it names.
            let release = retry(&format!("read release {}", p.release()), || async {
                self.releases.get(&p.release()).await
            })
            .await?;
            approval.spec.release_uid = release.metadata.uid;
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
    pub async fn unfinished(&self) -> Option<usize> {
        let list = self.releases.list(&ListParams::default()).await.ok()?;
        let finished = list.items.iter().filter(|r| terminal(r)).count();
        Some(self.planned.len().saturating_sub(finished))
    }

    /// Creates due approvals and waits, until every release is finished or `deadline`.
    /// `controllers` must stay up meanwhile.
    pub async fn run_to_the_end(
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
    pub async fn pause(&mut self, duration: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.create_due().await?;
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(200))).await;
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
pub async fn watch_node(client: kube::Client, down: Arc<Mutex<Duration>>) {
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
pub async fn watch_jobs(client: kube::Client, ns: String, log: JobLog) {
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

pub fn record_job(log: &JobLog, job: &Job) {
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

/// Retries `call` for up to two minutes (the API server may be restarting).
pub async fn retry<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
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
