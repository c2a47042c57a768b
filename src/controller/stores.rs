//! The reflector stores the reconcile reads instead of the API: the Jobs relman created, the
//! Deployments it drives, the ReleaseApprovals and the admission policies and bindings, filled by the same watches that wake the Releases. A store is read only
//! once it has listed everything; until then (a controller that just started) the reconcile
//! asks the API as before.
//!
//! A store may lag a write relman just made by a moment. The planner is built for that: a Job
//! it does not see yet is created again under the same name (the API server answers
//! AlreadyExists and relman carries on), and approvals never change once created. A cached
//! Deployment is used only once it is at least as new as relman's own last write of it
//! ([`super::memo::WrittenVersions`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use crate::api::{ReleaseApproval, ReleasePolicy};
use crate::k8s::scope::{Scope, watch_in};

/// A store and whether it has listed everything yet.
#[derive(Clone)]
pub struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    ready: Arc<AtomicBool>,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// A cache of what lists under `config` in `scope` (one watch per namespace, or one for
    /// every namespace), and the stream that fills it (touched objects, for
    /// `Controller::watches_stream`). Managed fields are dropped: nothing reads them, and they
    /// are much of an object's size.
    pub fn watch(
        client: &Client,
        scope: &Scope,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        Self::filled_by(|store| watch_in(client, scope, config, store))
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// Sets `ready` once the store has seen its first complete list.
    fn mark_ready_when_listed(&self) {
        let (store, ready) = (self.store.clone(), self.ready.clone());
        tokio::spawn(async move {
            // Store::wait_until_ready may wake only one of several waiters: ask again now and then.
            loop {
                match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => return ready.store(true, Ordering::SeqCst),
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            }
        });
    }

    /// Whether the store has listed everything.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The objects matching `filter`, or `None` while the store has not listed everything.
    pub fn filter(&self, filter: impl Fn(&K) -> bool) -> Option<Vec<Arc<K>>> {
        self.ready
            .load(Ordering::SeqCst)
            .then(|| self.store.state_filter(filter))
    }

    /// The object `namespace/name`, or `None` while the store has not listed everything or
    /// does not hold it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        if !self.ready.load(Ordering::SeqCst) {
            return None;
        }
        self.store
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }

    /// Every object, or `None` while the store has not listed everything.
    pub fn all(&self) -> Option<Vec<Arc<K>>> {
        self.filter(|_| true)
    }

    /// A cache of every object `api` lists under `config` (one watch, for a cluster-scoped
    /// kind), and the stream that fills it, as [`Cache::watch`] makes them.
    pub fn watch_cluster(
        api: kube::Api<K>,
        config: watcher::Config,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        Self::filled_by(|_| crate::k8s::watch::watch(api, config).default_backoff())
    }

    /// A cache filled by the watch events `events` makes for its store, without managed
    /// fields, and the stream of touched objects.
    fn filled_by<E>(
        events: impl FnOnce(Store<K>) -> E,
    ) -> (
        Self,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    )
    where
        E: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    {
        let writer = reflector::store::Writer::default();
        let store = writer.as_reader();
        let ready = Arc::new(AtomicBool::new(false));
        let stream = reflector(
            writer,
            events(store.clone()).modify(|object: &mut K| object.meta_mut().managed_fields = None),
        )
        .touched_objects();
        let cache = Self { store, ready };
        cache.mark_ready_when_listed();
        (cache, stream)
    }
}

/// The caches one controller keeps; empty outside a running controller (reads go to the API).
#[derive(Clone, Default)]
pub struct Caches {
    /// The namespaces the caches watch: a Job in another namespace is read from the API.
    pub scope: Scope,
    /// The Jobs labelled with `relman.io/release`.
    pub jobs: Option<Cache<Job>>,
    /// Every ReleaseApproval the controller may read.
    pub approvals: Option<Cache<ReleaseApproval>>,
    /// The Deployments labelled with `relman.io/release` (those relman drives or drove).
    pub deployments: Option<Cache<Deployment>>,
    /// The ReleasePolicies of the namespaces in `scope`; another namespace's are read from
    /// the API.
    pub policies: Option<Cache<ReleasePolicy>>,
    /// Every ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding: whether the
    /// approval identity policy covers a namespace is decided from them on every reconcile,
    /// and a change of either wakes the Releases.
    pub admission: Option<(
        Cache<ValidatingAdmissionPolicy>,
        Cache<ValidatingAdmissionPolicyBinding>,
    )>,
}

impl Caches {
    /// The ReleasePolicies of `namespace`, or `None` when the cache does not cover it (or has
    /// not listed everything yet).
    pub fn policies_of(&self, namespace: &str) -> Option<Vec<Arc<ReleasePolicy>>> {
        let cache = self.policies.as_ref()?;
        if !self.scope.contains(namespace) {
            return None;
        }
        cache.filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
    }
}
