//! What the controller remembers between reconciles so it does not ask the API server again:
//! the notes it published, when it last looked at a rollout's pods, and the resourceVersions
//! its own Deployment writes returned. Each memo only saves reads: losing it (a restart) costs
//! one read more, never a wrong decision.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::plan::PodProblem;

/// How long a published notes ConfigMap is trusted without a read: an edit or a deletion by
/// someone else is repaired within this time.
pub const NOTES_RECHECK: Duration = Duration::from_secs(600);

/// How long a rollout or a Job runs before relman lists its pods, and then how often it lists
/// them again. A pod that cannot start (image pull, crash loop, unschedulable) shows only after
/// a few seconds anyway; listing the pods of every short rollout was a quarter of relman's
/// requests.
pub const POD_CHECK_DELAY: Duration = Duration::from_secs(5);

/// The longest wait between two lists of a rollout's or a Job's pods while they show no
/// problem. The wait grows with how long the thing has run (a quarter of it): a rollout of
/// minutes is slow because the cluster is busy, and listing its pods every few seconds added
/// to the load (in a benchmark of 1,000 Releases at 64 reconcile slots, 106 pod lists per
/// Release). A pod problem, once seen, is looked at again every [`POD_CHECK_DELAY`], and its
/// grace counts from the pod's own timestamps, so a failing rollout is judged on time.
pub const POD_CHECK_MAX_INTERVAL: Duration = Duration::from_secs(30);

/// How long after a list that found `problems` (or none) the pods of something that has run
/// for `running_for` are listed again.
fn pod_check_interval(running_for: Duration, problems: bool) -> Duration {
    if problems {
        POD_CHECK_DELAY
    } else {
        (running_for / 4).clamp(POD_CHECK_DELAY, POD_CHECK_MAX_INTERVAL)
    }
}

/// Entries not touched for this long are dropped.
const FORGET_AFTER: Duration = Duration::from_secs(2 * 3600);

/// A map whose entries go away some time after they were last touched.
#[derive(Debug)]
struct Expiring<V> {
    entries: HashMap<String, (Instant, V)>,
    last_sweep: Instant,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }
}

impl<V> Expiring<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    fn insert(&mut self, key: String, value: V, now: Instant) {
        if now.duration_since(self.last_sweep) > FORGET_AFTER / 4 {
            self.entries
                .retain(|_, (touched, _)| now.duration_since(*touched) < FORGET_AFTER);
            self.last_sweep = now;
        }
        self.entries.insert(key, (now, value));
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// The notes relman published: per ConfigMap, a hash of what it holds and when that was last
/// confirmed (by a read or by relman's own write).
#[derive(Debug, Default)]
pub struct NotesMemo(Mutex<Expiring<(u64, Instant)>>);

impl NotesMemo {
    /// Whether `namespace/name` is known to hold `content` (confirmed less than
    /// [`NOTES_RECHECK`] ago).
    pub fn is_current(&self, namespace: &str, name: &str, content: &impl Hash) -> bool {
        let key = format!("{namespace}/{name}");
        let hash = hash(content);
        self.0.lock().is_ok_and(|memo| {
            memo.get(&key)
                .is_some_and(|(h, at)| *h == hash && at.elapsed() < NOTES_RECHECK)
        })
    }

    /// Records that `namespace/name` holds `content` now.
    pub fn confirmed(&self, namespace: &str, name: &str, content: &impl Hash) {
        let now = Instant::now();
        if let Ok(mut memo) = self.0.lock() {
            memo.insert(format!("{namespace}/{name}"), (hash(content), now), now);
        }
    }
}

fn hash(content: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}

/// What relman saw of a running rollout's or Job's pods, keyed by what is running (a
/// Deployment's generation, a Job's uid).
#[derive(Debug, Default)]
pub struct PodChecks(Mutex<Expiring<PodCheck>>);

#[derive(Clone, Debug)]
struct PodCheck {
    running_since: Instant,
    listed: Option<(Instant, Vec<PodProblem>)>,
}

/// Whether to list the pods of something running, or what to use instead.
#[derive(Debug, PartialEq)]
pub enum PodCheckDue {
    /// List them now (then call [`PodChecks::listed`]).
    List,
    /// Use these problems (from the last list, or none yet); look again after `recheck`.
    Known {
        /// The problems the last list found (empty before the first).
        problems: Vec<PodProblem>,
        /// When a list is due.
        recheck: Duration,
    },
}

impl PodChecks {
    /// Whether the pods of `key` are due a list now.
    pub fn due(&self, key: &str) -> PodCheckDue {
        self.due_at(key, Instant::now())
    }

    fn due_at(&self, key: &str, now: Instant) -> PodCheckDue {
        let Ok(mut checks) = self.0.lock() else {
            return PodCheckDue::List;
        };
        let check = match checks.get(key) {
            Some(check) => check.clone(),
            None => {
                let check = PodCheck {
                    running_since: now,
                    listed: None,
                };
                checks.insert(key.to_owned(), check.clone(), now);
                check
            }
        };
        let next = match &check.listed {
            Some((at, problems)) => {
                *at + pod_check_interval(*at - check.running_since, !problems.is_empty())
            }
            None => check.running_since + POD_CHECK_DELAY,
        };
        if now >= next {
            return PodCheckDue::List;
        }
        PodCheckDue::Known {
            problems: check
                .listed
                .map(|(_, problems)| problems)
                .unwrap_or_default(),
            recheck: next - now,
        }
    }

    /// Records what a list of the pods of `key` found; returns when the next list is due.
    pub fn listed(&self, key: &str, problems: &[PodProblem]) -> Duration {
        self.listed_at(key, problems, Instant::now())
    }

    fn listed_at(&self, key: &str, problems: &[PodProblem], now: Instant) -> Duration {
        let Ok(mut checks) = self.0.lock() else {
            return POD_CHECK_DELAY;
        };
        let running_since = checks.get(key).map_or(now, |c| c.running_since);
        let check = PodCheck {
            running_since,
            listed: Some((now, problems.to_vec())),
        };
        checks.insert(key.to_owned(), check, now);
        pod_check_interval(now - running_since, !problems.is_empty())
    }

    /// Forgets `key` (it is no longer running).
    pub fn finished(&self, key: &str) {
        if let Ok(mut checks) = self.0.lock() {
            checks.remove(key);
        }
    }
}

/// The Releases whose Jobs the API server accepted in a dry run, per generation and set of
/// namespaces checked: the check is made again only when the spec or a namespace's consent
/// changes (or after a restart).
#[derive(Debug, Default)]
pub struct DryRuns(Mutex<Expiring<()>>);

impl DryRuns {
    /// Whether the dry run of `key` passed before.
    pub fn passed(&self, key: &str) -> bool {
        self.0.lock().is_ok_and(|memo| memo.get(key).is_some())
    }

    /// Records that the dry run of `key` passed.
    pub fn pass(&self, key: String) {
        if let Ok(mut memo) = self.0.lock() {
            memo.insert(key, (), Instant::now());
        }
    }
}

/// The resourceVersion each of relman's Deployment writes returned, until the Deployment
/// cache has caught up with it: until then the reconcile reads that Deployment from the API,
/// so it never plans from a Deployment older than its own last write.
#[derive(Debug, Default)]
pub struct WrittenVersions(Mutex<Expiring<u64>>);

impl WrittenVersions {
    /// Records that relman's write of `namespace/name` returned `resource_version`.
    pub fn wrote(&self, namespace: &str, name: &str, resource_version: Option<&str>) {
        let key = format!("{namespace}/{name}");
        let now = Instant::now();
        if let Ok(mut written) = self.0.lock() {
            match resource_version.and_then(|rv| rv.parse().ok()) {
                Some(rv) => written.insert(key, rv, now),
                // Not a number: the cache cannot be compared with it; read from the API until
                // the entry expires.
                None => written.insert(key, u64::MAX, now),
            }
        }
    }

    /// Whether a cached copy of `namespace/name` at `cached` is at least as new as relman's
    /// last write of it. resourceVersions are compared as numbers (etcd's revisions); one that
    /// is not a number is never taken as fresh while a write is pending.
    pub fn is_fresh(&self, namespace: &str, name: &str, cached: Option<&str>) -> bool {
        let key = format!("{namespace}/{name}");
        let Ok(mut written) = self.0.lock() else {
            return false;
        };
        let Some(&wrote) = written.get(&key) else {
            return true;
        };
        match cached.and_then(|rv| rv.parse::<u64>().ok()) {
            Some(seen) if seen >= wrote => {
                written.remove(&key);
                true
            }
            _ => false,
        }
    }
}

/// Jobs found under a name relman was about to use, made for another Release object (or by
/// someone else), by the uid of the Release that met them: the observe step shows them to the
/// planner, which never counts them and moves the stage to the next attempt's names. Bounded:
/// a Release's entry goes when the Release does, or after two hours untouched (by then the
/// next attempt's names are in the Release's status).
#[derive(Debug, Default)]
pub struct TakenJobs(Mutex<Expiring<Vec<crate::plan::ObservedJob>>>);

impl TakenJobs {
    /// Remembers that `job` (namespace, name, its release uid label) blocks `release`.
    pub fn taken(&self, release: &str, job: crate::plan::ObservedJob) {
        if let Ok(mut taken) = self.0.lock() {
            let mut jobs = taken.get(release).cloned().unwrap_or_default();
            if !jobs
                .iter()
                .any(|j| j.namespace == job.namespace && j.name == job.name)
            {
                jobs.push(job);
            }
            taken.insert(release.to_owned(), jobs, Instant::now());
        }
    }

    /// The Jobs that block `release`.
    pub fn of(&self, release: &str) -> Vec<crate::plan::ObservedJob> {
        self.0
            .lock()
            .ok()
            .and_then(|t| t.get(release).cloned())
            .unwrap_or_default()
    }

    /// `release` is gone: forget what blocked it.
    pub fn forget(&self, release: &str) {
        if let Ok(mut taken) = self.0.lock() {
            taken.remove(release);
        }
    }

    /// How many Releases have an entry.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().map(|t| t.entries.len()).unwrap_or_default()
    }
}

/// The API server's last refusal (403) of an action relman took for a Release, by the
/// Release's uid, until an action for it succeeds. Bounded like [`TakenJobs`]: the entry goes
/// with the Release, or after two hours without a refusal (the release retries every minute
/// while refused, which keeps its entry).
#[derive(Debug, Default)]
pub struct Denials(Mutex<Expiring<String>>);

impl Denials {
    /// Remembers `message` for `release`; whether it is new (the release has not been
    /// stalled with it yet).
    pub fn denied(&self, release: &str, message: &str) -> bool {
        self.0.lock().is_ok_and(|mut denials| {
            let new = denials.get(release).map(String::as_str) != Some(message);
            denials.insert(release.to_owned(), message.to_owned(), Instant::now());
            new
        })
    }

    /// The refusal remembered for `release`.
    pub fn get(&self, release: &str) -> Option<String> {
        self.0.lock().ok().and_then(|d| d.get(release).cloned())
    }

    /// An action for `release` went through, or the Release is gone: nothing is refused any
    /// more.
    pub fn allowed(&self, release: &str) {
        if let Ok(mut denials) = self.0.lock() {
            denials.remove(release);
        }
    }

    /// How many Releases have an entry.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().map(|d| d.entries.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_and_taken_jobs_go_with_their_release() {
        let denials = Denials::default();
        assert!(denials.denied("uid-1", "forbidden"));
        assert!(
            !denials.denied("uid-1", "forbidden"),
            "the same refusal is not new"
        );
        assert!(denials.denied("uid-2", "forbidden"));
        denials.allowed("uid-1");
        assert_eq!(denials.get("uid-1"), None);
        assert_eq!(denials.len(), 1);

        let taken = TakenJobs::default();
        let job = crate::plan::ObservedJob {
            namespace: "shop".into(),
            name: "web-1-0-0-staging-smoke-1".into(),
            state: crate::plan::JobState::Succeeded,
            pod_problems: Vec::new(),
            release_uid: Some("other".into()),
        };
        taken.taken("uid-1", job.clone());
        taken.taken("uid-1", job);
        assert_eq!(taken.of("uid-1").len(), 1, "one entry per Job");
        taken.forget("uid-1");
        assert!(taken.of("uid-1").is_empty());
        assert_eq!(taken.len(), 0);
    }

    #[test]
    fn notes_are_trusted_only_with_the_same_content() {
        let memo = NotesMemo::default();
        assert!(
            !memo.is_current("shop", "web-notes", &"v1"),
            "nothing known yet"
        );
        memo.confirmed("shop", "web-notes", &"v1");
        assert!(memo.is_current("shop", "web-notes", &"v1"));
        assert!(!memo.is_current("shop", "web-notes", &"v2"), "new content");
        assert!(
            !memo.is_current("other", "web-notes", &"v1"),
            "other namespace"
        );
    }

    #[test]
    fn pods_are_listed_only_after_the_delay_and_then_at_most_every_delay() {
        let checks = PodChecks::default();
        let start = Instant::now();
        match checks.due_at("deploy/shop/web/2", start) {
            PodCheckDue::Known { problems, recheck } => {
                assert!(problems.is_empty());
                assert_eq!(recheck, POD_CHECK_DELAY);
            }
            PodCheckDue::List => panic!("a rollout that just started needs no pod list"),
        }
        let later = start + POD_CHECK_DELAY;
        assert_eq!(checks.due_at("deploy/shop/web/2", later), PodCheckDue::List);
        let problem = PodProblem {
            pod: "web-1".into(),
            reason: crate::plan::PodProblemReason::CrashLoopBackOff,
            message: "back-off".into(),
            since: chrono::Utc::now(),
        };
        checks.listed("deploy/shop/web/2", std::slice::from_ref(&problem));
        match checks.due("deploy/shop/web/2") {
            PodCheckDue::Known { problems, .. } => assert_eq!(problems, vec![problem]),
            PodCheckDue::List => panic!("listed just now"),
        }
        checks.finished("deploy/shop/web/2");
        assert!(matches!(
            checks.due("deploy/shop/web/2"),
            PodCheckDue::Known { .. }
        ));
    }

    #[test]
    fn pods_without_problems_are_listed_less_often_the_longer_they_run() {
        let checks = PodChecks::default();
        let key = "deploy/shop/web/3";
        let start = Instant::now();
        assert!(matches!(
            checks.due_at(key, start),
            PodCheckDue::Known { .. }
        ));
        // Listed at 5 s, 60 s and 10 min: the next list comes 5 s, 15 s and 30 s later.
        for (at, wait) in [(5, 5), (60, 15), (600, 30)] {
            let listed = start + Duration::from_secs(at);
            assert_eq!(
                checks.listed_at(key, &[], listed),
                Duration::from_secs(wait)
            );
            match checks.due_at(key, listed + Duration::from_secs(wait) / 2) {
                PodCheckDue::Known { recheck, .. } => {
                    assert_eq!(
                        recheck,
                        Duration::from_secs(wait) - Duration::from_secs(wait) / 2
                    );
                }
                PodCheckDue::List => panic!("listed {wait} s ago at most"),
            }
            assert_eq!(
                checks.due_at(key, listed + Duration::from_secs(wait)),
                PodCheckDue::List
            );
        }
        // A problem brings the pace back to every 5 s, however long it has run.
        let problem = PodProblem {
            pod: "web-1".into(),
            reason: crate::plan::PodProblemReason::CrashLoopBackOff,
            message: "back-off".into(),
            since: chrono::Utc::now(),
        };
        let listed = start + Duration::from_secs(700);
        assert_eq!(
            checks.listed_at(key, std::slice::from_ref(&problem), listed),
            POD_CHECK_DELAY
        );
        assert_eq!(
            checks.due_at(key, listed + POD_CHECK_DELAY),
            PodCheckDue::List
        );
    }

    #[test]
    fn a_dry_run_is_remembered_by_its_key() {
        let runs = DryRuns::default();
        assert!(!runs.passed("u-1/1/shop"));
        runs.pass("u-1/1/shop".into());
        assert!(runs.passed("u-1/1/shop"));
        assert!(
            !runs.passed("u-1/2/shop"),
            "a new generation is checked again"
        );
    }

    #[test]
    fn a_cached_deployment_is_fresh_once_it_reaches_relmans_last_write() {
        let written = WrittenVersions::default();
        assert!(
            written.is_fresh("shop", "web", Some("5")),
            "no write pending"
        );
        written.wrote("shop", "web", Some("10"));
        assert!(
            !written.is_fresh("shop", "web", Some("9")),
            "older than the write"
        );
        assert!(!written.is_fresh("shop", "web", None));
        assert!(written.is_fresh("shop", "web", Some("12")), "caught up");
        assert!(
            written.is_fresh("shop", "web", Some("3")),
            "nothing pending any more"
        );
        written.wrote("shop", "api", Some("not-a-number"));
        assert!(!written.is_fresh("shop", "api", Some("99")));
    }
}
