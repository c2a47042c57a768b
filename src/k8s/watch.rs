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
//! [`without_errors`] is what a kube `Controller` gets to see of a watch: every failure
//! logged, none passed on (see there why).

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

/// The objects of a watch stream, its errors logged and dropped: the form every watch takes
/// before it reaches a kube `Controller` (`for_stream`, `watches_stream`).
///
/// A `Controller` merges all its trigger streams and puts the merged stream behind one
/// backoff: an error from any watch pauses every trigger, and the pause grows with each
/// further error until two quiet minutes pass. After an API server restart each of relman's
/// watches fails a few times while the server is down and once more with 410 Gone, so a
/// controller fed those errors stopped reacting to anything for minutes. Each watch here has
/// its own backoff (`default_backoff`) and [`watch`] relists after a 410, so the error itself
/// tells the controller nothing it must act on. `watch_name` names the watch in the log.
pub fn without_errors<S, T>(
    stream: S,
    watch_name: &'static str,
) -> impl Stream<Item = watcher::Result<T>> + Send + 'static
where
    S: Stream<Item = watcher::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    stream.filter_map(move |item| {
        futures::future::ready(match item {
            Ok(object) => Some(Ok(object)),
            Err(error) => {
                if is_gone(&error) {
                    tracing::debug!(watch = watch_name, %error, "watch expired; relisting");
                } else {
                    tracing::warn!(watch = watch_name, %error, "watch failed; retrying after its backoff");
                }
                None
            }
        })
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

    #[tokio::test]
    async fn a_controller_sees_the_objects_of_a_watch_and_none_of_its_errors() {
        let items: Vec<watcher::Result<u32>> = vec![
            Ok(1),
            Err(watcher::Error::WatchError(status(410))),
            Ok(2),
            Err(watcher::Error::WatchStartFailed(kube::Error::Api(status(
                500,
            )))),
            Err(watcher::Error::NoResourceVersion),
            Ok(3),
        ];
        let seen: Vec<u32> = without_errors(stream::iter(items), "test")
            .map(|item| item.expect("errors are dropped"))
            .collect()
            .await;
        assert_eq!(seen, vec![1, 2, 3]);
    }
}
