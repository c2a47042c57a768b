//! Readiness for `/readyz`: flags that the controllers set once their watches have listed
//! every object, so a replica reports ready only when it could take over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once, when a controller's cache has synced; cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// A flag that is not set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the cache synced.
    pub fn mark_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the cache has synced.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let flag = ReadyFlag::new();
        let seen_by_http = flag.clone();
        assert!(!seen_by_http.is_ready());
        flag.mark_ready();
        assert!(seen_by_http.is_ready());
    }
}
