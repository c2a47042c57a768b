//! Leader election on a `coordination.k8s.io/v1` Lease: of the replicas that run, only the
//! one holding the Lease writes. Every replica keeps its watches and caches warm, so a
//! takeover costs one reconcile of each Release, not a relist.
//!
//! The rules follow client-go's leader election:
//!
//! - The holder renews the Lease every `renew_period`. Each write carries the Lease's
//!   resourceVersion, so two candidates can never both win a round (the loser gets 409).
//! - Another candidate takes the Lease when it is free, or when it has not seen it change for
//!   `lease_duration` measured on its own clock (clock skew between nodes does not matter).
//! - The holder considers itself leader only until `renew_deadline` after the start of its
//!   last successful renewal. That deadline is checked on every [`Leadership::is_leader`]
//!   call, so a replica that cannot renew (API server unreachable, a hung request, a stopped
//!   election task) stops writing by itself, before anyone else can take the Lease
//!   (`renew_deadline < lease_duration`).
//! - On a clean stop the holder steps down and frees the Lease, so the next replica takes
//!   over within `retry_period` instead of waiting for the Lease to expire.

mod fence;
mod leadership;

pub use fence::{Fence, FenceError, WRITE_BUDGET};
pub use leadership::Leadership;
use leadership::Role;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The Lease's name unless the settings name another (`RELMAN_LEADER_ELECTION_LEASE`).
pub const DEFAULT_LEASE_NAME: &str = "relman-leader";

/// What can go wrong while electing a leader.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A call to the API server about the Lease failed.
    #[error("Kubernetes API call on the leader Lease failed: {0}")]
    Kube(#[from] kube::Error),
    /// A call to the API server about the Lease did not answer in time.
    #[error("the leader Lease call did not finish within {0:?}")]
    Timeout(Duration),
    /// The timings cannot keep a single leader.
    #[error("invalid leader election timing: {0}")]
    InvalidTiming(&'static str),
}

/// Where the Lease is, who this replica is, and the timings.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's holder identity; unique among the replicas.
    pub identity: String,
    /// How long others wait after the Lease last changed before they take it.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the holder stops writing.
    pub renew_deadline: Duration,
    /// How often the holder renews.
    pub renew_period: Duration,
    /// How often a replica that does not hold the Lease (or failed to renew it) tries again.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// The Lease `lease_name` in `namespace`, held as `identity`, with the default timings:
    /// a 15 s lease, renewed every 5 s, given up 10 s after the last renewal, retried every
    /// 2 s.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_period: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The same Lease with other timings; see the module docs for what each one does.
    pub fn with_timings(
        mut self,
        lease_duration: Duration,
        renew_deadline: Duration,
        renew_period: Duration,
        retry_period: Duration,
    ) -> Result<Self, LeaderError> {
        if renew_deadline >= lease_duration {
            return Err(LeaderError::InvalidTiming(
                "the renew deadline must be shorter than the lease duration",
            ));
        }
        if renew_period >= renew_deadline {
            return Err(LeaderError::InvalidTiming(
                "the renew period must be shorter than the renew deadline",
            ));
        }
        if retry_period.is_zero() || renew_period.is_zero() {
            return Err(LeaderError::InvalidTiming(
                "the renew and retry periods must be positive",
            ));
        }
        if lease_duration.as_secs() < 1 || lease_duration.subsec_nanos() != 0 {
            return Err(LeaderError::InvalidTiming(
                "the lease duration is stored in whole seconds and must be at least 1 s",
            ));
        }
        self.lease_duration = lease_duration;
        self.renew_deadline = renew_deadline;
        self.renew_period = renew_period;
        self.retry_period = retry_period;
        Ok(self)
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// `host` plus a suffix that differs between processes, so two relman processes on one host
/// (or a restarted pod that kept its name) never share an identity.
pub fn unique_identity(host: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{:x}{nanos:08x}", std::process::id())
}

/// What a follower saw of the Lease, to tell when its holder stopped renewing.
#[derive(Debug)]
struct Sighting {
    resource_version: Option<String>,
    at: Instant,
    lease_duration: Duration,
}

/// Runs the election for one replica; see the module docs.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    role: watch::Sender<Role>,
    /// The Lease as this replica last wrote it, while it holds it.
    held: Option<Lease>,
    /// The Lease as this replica last saw it change, while another replica holds it.
    sighting: Option<Sighting>,
    /// The term of this replica's latest leadership.
    term: u64,
}

impl LeaderElector {
    /// An elector for `config`'s Lease, and the [`Leadership`] it keeps current. Nothing
    /// happens until [`LeaderElector::run`] runs; until then the replica is a follower.
    pub fn new(client: Client, config: LeaderElectionConfig) -> (Self, Leadership) {
        let (role, receiver) = watch::channel(Role::Follower);
        let elector = Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            role,
            held: None,
            sighting: None,
            term: 0,
        };
        (elector, Leadership::new(receiver))
    }

    /// Competes for the Lease until `stop` completes, then steps down and frees the Lease if
    /// this replica holds it. Call `stop` after the controllers have stopped writing.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tracing::info!(
            lease = %self.config.lease_name,
            namespace = %self.config.namespace,
            identity = %self.config.identity,
            "leader election started"
        );
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                wait = self.step() => {
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        self.step_down_and_free().await;
    }

    /// One round: acquire or renew, update the role; returns how long to wait for the next.
    async fn step(&mut self) -> Duration {
        let started = Instant::now();
        let attempt = tokio::time::timeout(self.config.renew_deadline, self.acquire_or_renew());
        let outcome = match attempt.await {
            Ok(outcome) => outcome,
            Err(_) => Err(LeaderError::Timeout(self.config.renew_deadline)),
        };
        match outcome {
            Ok(true) => {
                if !self.role.borrow().is_leader() {
                    self.term = self.term.saturating_add(1);
                }
                self.set_role(Role::Leader {
                    until: Some(started + self.config.renew_deadline),
                    term: self.term,
                });
                self.config.renew_period
            }
            Ok(false) => {
                self.set_role(Role::Follower);
                self.config.retry_period
            }
            Err(error) => {
                let role = *self.role.borrow();
                tracing::warn!(
                    %error,
                    lease = %self.config.lease_name,
                    leader = role.is_leader(),
                    "could not acquire or renew the leader Lease; retrying"
                );
                if !role.is_leader() {
                    self.set_role(Role::Follower);
                }
                self.config.retry_period
            }
        }
    }

    /// Publishes `role`, logging a change of leadership.
    fn set_role(&mut self, role: Role) {
        let was_leader = self.role.borrow().is_leader();
        let leader = role.is_leader();
        if leader && !was_leader {
            tracing::info!(identity = %self.config.identity, lease = %self.config.lease_name, "became the leader: this replica writes now");
        } else if was_leader && !leader {
            tracing::warn!(identity = %self.config.identity, lease = %self.config.lease_name, "lost leadership: this replica stopped writing");
        }
        if !leader {
            self.held = None;
        }
        self.role.send_replace(role);
    }

    /// Renews the Lease this replica holds, or takes it when free or expired. Returns whether
    /// this replica holds it now.
    async fn acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        if let Some(held) = self.held.take() {
            // The usual round of a leader: one write, from the copy it wrote last.
            if let Some(lease) = self.write(renewed(held, &self.config)).await? {
                self.held = Some(lease);
                return Ok(true);
            }
            // Somebody else wrote the Lease since: look at it below.
        }
        let Some(lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return self.create().await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.filter(|h| !h.is_empty());
        if holder.as_deref() == Some(self.config.identity.as_str()) {
            let written = self.write(renewed(lease, &self.config)).await?;
            let holds = written.is_some();
            self.held = written;
            return Ok(holds);
        }
        if holder.is_some() && !self.expired(&lease) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        let taken = taken(lease, &self.config, transitions);
        let written = self.write(taken).await?;
        let holds = written.is_some();
        self.held = written;
        Ok(holds)
    }

    /// Whether the holder of `lease` has not renewed it for its lease duration, as seen on
    /// this replica's clock.
    fn expired(&mut self, lease: &Lease) -> bool {
        let version = lease.resource_version();
        let seconds = lease
            .spec
            .as_ref()
            .and_then(|spec| spec.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(self.config.lease_duration.as_secs());
        let unchanged = self
            .sighting
            .as_ref()
            .is_some_and(|seen| seen.resource_version == version);
        if !unchanged {
            self.sighting = Some(Sighting {
                resource_version: version,
                at: Instant::now(),
                lease_duration: Duration::from_secs(seconds),
            });
        }
        self.sighting
            .as_ref()
            .is_some_and(|seen| seen.at.elapsed() >= seen.lease_duration)
    }

    /// Creates the Lease held by this replica; `false` when another replica created it first.
    async fn create(&mut self) -> Result<bool, LeaderError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.held = Some(created);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Replaces the Lease with `lease`, guarded by its resourceVersion; `None` on a conflict
    /// (another replica wrote it since it was read).
    async fn write(&self, lease: Lease) -> Result<Option<Lease>, LeaderError> {
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Stops writing at once, then frees the Lease if this replica holds it, so another
    /// replica takes over without waiting for it to expire.
    async fn step_down_and_free(mut self) {
        let held = self.held.take();
        self.set_role(Role::Follower);
        let Some(mut lease) = held else {
            return;
        };
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
        }
        let freed = tokio::time::timeout(self.config.retry_period, self.write(lease)).await;
        match freed {
            Ok(Ok(Some(_))) => {
                tracing::info!(lease = %self.config.lease_name, "leader Lease freed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not free the leader Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("freeing the leader Lease timed out; it expires by itself"),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// `lease` renewed by its holder.
fn renewed(mut lease: Lease, config: &LeaderElectionConfig) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(config.lease_duration_seconds());
    lease
}

/// `lease` taken over by `config.identity`.
fn taken(mut lease: Lease, config: &LeaderElectionConfig, transitions: i32) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(config.identity.clone());
    spec.acquire_time = Some(now());
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(config.lease_duration_seconds());
    spec.lease_transitions = Some(transitions);
    lease
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn timings_must_keep_one_leader() {
        let config = LeaderElectionConfig::new("l", "ns", "me");
        let s = Duration::from_secs;
        assert!(
            config
                .clone()
                .with_timings(s(15), s(10), s(5), s(2))
                .is_ok()
        );
        assert!(
            config
                .clone()
                .with_timings(s(10), s(10), s(5), s(2))
                .is_err()
        );
        assert!(
            config
                .clone()
                .with_timings(s(15), s(5), s(5), s(2))
                .is_err()
        );
        assert!(
            config
                .with_timings(
                    Duration::from_millis(1500),
                    s(1),
                    Duration::from_millis(500),
                    s(1)
                )
                .is_err()
        );
    }

    #[test]
    fn identities_differ_between_calls_and_keep_the_host() {
        let a = unique_identity("relman-0");
        assert!(a.starts_with("relman-0_"), "{a}");
    }

    fn leader(term: u64) -> Role {
        Role::Leader { until: None, term }
    }

    #[tokio::test]
    async fn a_leader_whose_deadline_passed_stops_writing_by_itself() {
        let (sender, receiver) = watch::channel(Role::Leader {
            until: Some(Instant::now() + Duration::from_millis(50)),
            term: 1,
        });
        let leadership = Leadership::new(receiver);
        assert!(leadership.is_leader());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            !leadership.is_leader(),
            "no renewal for the deadline: not the leader"
        );
        drop(sender);
    }

    #[tokio::test]
    async fn gained_emits_on_each_new_leadership_only() {
        let (sender, receiver) = watch::channel(Role::Follower);
        let leadership = Leadership::new(receiver);
        let mut gained = Box::pin(leadership.gained());
        sender.send_replace(leader(1));
        assert_eq!(gained.next().await, Some(()));
        // A renewal is not a new leadership; losing and regaining is, even when the stream
        // sees only the last of those changes.
        sender.send_replace(leader(1));
        sender.send_replace(Role::Follower);
        sender.send_replace(leader(2));
        assert_eq!(gained.next().await, Some(()));
        sender.send_replace(leader(2));
        assert!(
            futures::FutureExt::now_or_never(gained.next()).is_none(),
            "a renewal does not emit"
        );
        drop(sender);
        assert_eq!(gained.next().await, None, "ends when the election stops");
    }

    #[test]
    fn always_is_the_leader_without_an_election() {
        assert!(Leadership::always().is_leader());
    }
}
