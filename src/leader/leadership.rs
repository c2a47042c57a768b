//! Whether this replica may write now: the role the election task last decided, read by every
//! writer (and by the fence around the controller's client).

use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;

/// This replica's role, as the election task last decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Another replica holds the Lease, or nobody does yet.
    Follower,
    /// This replica holds the Lease, until the instant (or for good: election is off).
    /// `term` counts the times it became the leader.
    Leader { until: Option<Instant>, term: u64 },
}

impl Role {
    pub(super) fn is_leader(self) -> bool {
        match self {
            Self::Follower => false,
            Self::Leader { until: None, .. } => true,
            Self::Leader {
                until: Some(until), ..
            } => Instant::now() < until,
        }
    }

    /// The term while leader, `None` otherwise.
    pub(super) fn term(self) -> Option<u64> {
        match self {
            Self::Leader { term, .. } if self.is_leader() => Some(term),
            _ => None,
        }
    }
}

/// Whether this replica may write now. Cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    role: watch::Receiver<Role>,
}

impl Leadership {
    /// The leadership the election task keeps current through `role`.
    pub(super) fn new(role: watch::Receiver<Role>) -> Self {
        Self { role }
    }

    /// Always the leader: leader election is off, or a test runs a single controller.
    pub fn always() -> Self {
        let (_, role) = watch::channel(Role::Leader {
            until: None,
            term: 0,
        });
        Self { role }
    }

    /// Whether this replica holds the Lease and its last renewal is recent enough to write.
    pub fn is_leader(&self) -> bool {
        self.role.borrow().is_leader()
    }

    /// How long this replica may still write: `Some(Duration::MAX)` when election is off,
    /// the time left before its renew deadline while it leads, `None` when it does not.
    pub fn remaining(&self) -> Option<Duration> {
        match *self.role.borrow() {
            Role::Follower => None,
            Role::Leader { until: None, .. } => Some(Duration::MAX),
            Role::Leader {
                until: Some(until), ..
            } => until.checked_duration_since(Instant::now()),
        }
    }

    /// A leadership that ends at `until`, or a follower's (`None`), for tests of what
    /// depends on it. The role never changes afterwards.
    #[cfg(test)]
    pub(crate) fn fixed(until: Option<Instant>) -> Self {
        let (_, role) = watch::channel(match until {
            Some(until) => Role::Leader {
                until: Some(until),
                term: 1,
            },
            None => Role::Follower,
        });
        Self { role }
    }

    /// Emits each time this replica becomes the leader (not for the state it has now), so a
    /// controller can reconcile everything the previous leader left half-way, and everything
    /// it skipped itself as a follower. Ends when the election stops.
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut role = self.role.clone();
        let current = role.borrow_and_update().term();
        futures::stream::unfold((role, current), |(mut role, seen)| async move {
            loop {
                role.changed().await.ok()?;
                let term = role.borrow_and_update().term();
                if term.is_some() && term != seen {
                    return Some(((), (role, term)));
                }
            }
        })
    }

    /// Waits until this replica is the leader (returns at once when it is).
    pub async fn wait_until_leader(&self) {
        let mut role = self.role.clone();
        loop {
            if role.borrow_and_update().is_leader() {
                return;
            }
            if role.changed().await.is_err() {
                // The election stopped; nothing will make this replica the leader.
                std::future::pending::<()>().await;
            }
        }
    }
}
