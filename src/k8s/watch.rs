//! Watches that survive an API server restart.
//!
//! kube's watcher resumes a dropped watch from the last resourceVersion it saw. When the API
//! server was restarted (or etcd compacted), that version can be gone: the API server refuses
//! the watch with 410 Gone. The watcher retries the same version, forever when the refusal
//! comes as the answer to the watch request rather than as an event on an open watch, so a
//! controller would stop seeing changes. [`watch`] starts a fresh watcher (a new list, then a
//! watch from the listed version) whenever the API server says Gone; a reflector fed by it
//! rebuilds its store from the new list.

use std::fmt::Debug;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
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
}
