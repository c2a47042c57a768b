//! Watches that survive an API server restart.
//!
//! kube's watcher resumes a dropped watch from the last resourceVersion it saw. When the API
//! server was restarted (or etcd compacted), that version can be gone: the API server refuses
//! the watch with 410 Gone. The watcher retries the same version, forever when the refusal
//! comes as the answer to the watch request rather than as an event on an open watch, so a
//! controller would stop seeing changes. [`watch`] starts a fresh watcher (a new list, then a
//! watch from the listed version) whenever the API server says Gone; a reflector fed by it
//! rebuilds its store from the new list.
//!
//! [`NoTriggerPause`] keeps one failing watch from pausing a kube `Controller`'s other
//! watches.

use std::fmt::Debug;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

/// A watcher of `api` under `config` that starts over with a fresh list when the
/// resourceVersion it would resume from is gone (410). Errors are passed on (add a backoff).
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start = move || watcher::watcher(api.clone(), config.clone()).boxed();
    let first: BoxStream<'static, watcher::Result<Event<K>>> = start();
    stream::unfold((first, start), |(mut inner, start)| async move {
        let item = inner.next().await?;
        if let Err(error) = &item
            && is_gone(error)
        {
            tracing::info!(%error, "the watch's resourceVersion is gone; listing again");
            inner = start();
        }
        Some((item, (inner, start)))
    })
}

/// The trigger backoff of relman's kube `Controller`s: no pause at all.
///
/// A `Controller` merges all its trigger streams and puts the merged stream behind one
/// backoff (kube's default: 0.8 s, doubling up to 30 s, reset only after two quiet minutes), so
/// an error from any watch paused the events of every other. After an API server restart
/// each of relman's watches fails a few times while the server is down and once more with
/// 410 Gone, and the controller reacted to almost nothing for minutes. Each watch relman hands
/// a `Controller` has its own backoff (`default_backoff`) and [`watch`] relists after a 410,
/// so the shared pause only delays the healthy watches. This one never pauses, and never gives
/// up (a backoff that gives up ends the controller's trigger stream).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTriggerPause;

impl Iterator for NoTriggerPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for NoTriggerPause {
    fn reset(&mut self) {}
}

/// Logs an error a kube `Controller` yields instead of a reconciled object: a watch failure as a
/// warning (the watch retries after its own backoff, see [`NoTriggerPause`]), a failed reconcile
/// at debug level (its error policy has reported it already).
pub fn log_controller_error<R, Q>(controller: &str, error: &kube::runtime::controller::Error<R, Q>)
where
    R: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match error {
        kube::runtime::controller::Error::QueueError(error) => {
            tracing::warn!(controller, %error, "a watch failed; it retries after its own backoff");
        }
        error => tracing::debug!(controller, %error, "reconcile failed"),
    }
}

/// Whether `error` says the resourceVersion the watch asked for is gone (410).
pub fn is_gone(error: &watcher::Error) -> bool {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => return false,
    };
    code == 410
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("too old resource version", "Expired").with_code(code))
    }

    #[test]
    fn gone_is_recognised_however_it_arrives() {
        assert!(is_gone(&watcher::Error::WatchStartFailed(
            kube::Error::Api(status(410))
        )));
        assert!(is_gone(&watcher::Error::WatchError(status(410))));
        assert!(is_gone(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(410))
        )));
        assert!(!is_gone(&watcher::Error::WatchStartFailed(
            kube::Error::Api(status(500))
        )));
        assert!(!is_gone(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn the_trigger_backoff_never_pauses_and_never_gives_up() {
        let mut backoff = NoTriggerPause;
        for _ in 0..1_000 {
            assert_eq!(backoff.next(), Some(Duration::ZERO));
        }
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::ZERO));
    }
}
