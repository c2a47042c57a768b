//! Watches for condition gates: one watch per kind (and namespace) that a waiting Release's
//! `spec.requirements[].condition` names, started on first use, so a gate opens as soon as its
//! condition flips instead of at the next poll.
//!
//! Each watch keeps a reflector store the reconcile reads instead of the API, and wakes the
//! Releases that name a changed object. A watch that cannot run (RBAC grants `get` but not
//! `list`/`watch`, or the kind went away) is reported once and the gate falls back to a read
//! per reconcile and a recheck every 15 s. A watch no waiting Release needs any more stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

use crate::api::Release;
use crate::api::release::ConditionGate;

/// How often a watch checks that some waiting Release still needs it.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What one watch covers: a kind, in one namespace (or cluster-wide for a cluster-scoped kind).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WatchKey {
    api_version: String,
    kind: String,
    namespace: Option<String>,
}

impl WatchKey {
    /// Whether `gate`, in a Release of `namespace`, names an object this watch covers.
    fn covers(&self, gate: &ConditionGate, release_namespace: Option<&str>) -> bool {
        gate.api_version == self.api_version
            && gate.kind == self.kind
            && (self.namespace.is_none() || self.namespace.as_deref() == release_namespace)
    }
}

/// One running watch.
struct Watch {
    store: Store<DynamicObject>,
    /// True from the watch's first complete list until its next error.
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the reconcile should read the object a condition gate names.
#[derive(Debug)]
pub enum Lookup {
    /// The watch has it (the newest version seen).
    Found(Arc<DynamicObject>),
    /// The watch has listed every object of the kind and this one is not among them.
    Missing,
    /// No synced watch: read the object from the API (and look again later).
    Unwatched,
}

/// The condition-gate watches of one controller. Cheap to clone.
#[derive(Clone)]
pub struct GateWatches {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    wake: mpsc::UnboundedSender<ObjectRef<Release>>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<Release>>>>,
    releases: OnceLock<Store<Release>>,
    watches: Mutex<HashMap<WatchKey, Watch>>,
    /// Kinds resolved through discovery (only successes: a kind may be installed later).
    kinds: Mutex<HashMap<(String, String), (ApiResource, Scope)>>,
}

impl GateWatches {
    /// Watches made with `client`; nothing runs until [`GateWatches::lookup`] asks.
    pub fn new(client: Client) -> Self {
        let (wake, woken) = mpsc::unbounded();
        Self {
            inner: Arc::new(Inner {
                client,
                wake,
                woken: Mutex::new(Some(woken)),
                releases: OnceLock::new(),
                watches: Mutex::new(HashMap::new()),
                kinds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Where the watches find the Releases to wake: the controller's Release store.
    pub fn set_releases(&self, store: Store<Release>) {
        let _ = self.inner.releases.set(store);
    }

    /// The Releases to reconcile because an object their gates name changed. The first call
    /// takes the stream; later calls get an empty one.
    pub fn wakeups(&self) -> impl Stream<Item = ObjectRef<Release>> + Send + 'static {
        let woken = self.inner.woken.lock().ok().and_then(|mut w| w.take());
        match woken {
            Some(receiver) => receiver.boxed(),
            None => futures::stream::empty().boxed(),
        }
    }

    /// The resource and scope of `gate`'s kind, from discovery (cached once found); `None`
    /// when the API server does not serve it.
    pub async fn resolve(&self, gate: &ConditionGate) -> Option<(ApiResource, Scope)> {
        let key = (gate.api_version.clone(), gate.kind.clone());
        if let Some(found) = self.inner.kinds.lock().ok()?.get(&key) {
            return Some(found.clone());
        }
        let (group, version) = match gate.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", gate.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &gate.kind);
        let (resource, caps) = pinned_kind(&self.inner.client, &gvk).await.ok()?;
        let found = (resource, caps.scope);
        if let Ok(mut kinds) = self.inner.kinds.lock() {
            kinds.insert(key, found.clone());
        }
        Some(found)
    }

    /// The object `gate` names for a Release in `namespace`, from the kind's watch; starts the
    /// watch on first use.
    pub fn lookup(
        &self,
        gate: &ConditionGate,
        resource: &ApiResource,
        scope: &Scope,
        namespace: &str,
    ) -> Lookup {
        let key = WatchKey {
            api_version: gate.api_version.clone(),
            kind: gate.kind.clone(),
            namespace: matches!(scope, Scope::Namespaced).then(|| namespace.to_owned()),
        };
        let Ok(mut watches) = self.inner.watches.lock() else {
            return Lookup::Unwatched;
        };
        let watch = watches
            .entry(key.clone())
            .or_insert_with(|| self.start(key, resource));
        if !watch.synced.load(Ordering::SeqCst) {
            return Lookup::Unwatched;
        }
        let reference = match scope {
            Scope::Namespaced => {
                ObjectRef::new_with(&gate.name, resource.clone()).within(namespace)
            }
            Scope::Cluster => ObjectRef::new_with(&gate.name, resource.clone()),
        };
        match watch.store.get(&reference) {
            Some(object) => Lookup::Found(object),
            None => Lookup::Missing,
        }
    }

    /// How many watches run now.
    pub fn len(&self) -> usize {
        self.inner.watches.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Whether no watch runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spawns the watch for `key`.
    fn start(&self, key: WatchKey, resource: &ApiResource) -> Watch {
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(self.inner.client.clone(), ns, resource),
            None => Api::all_with(self.inner.client.clone(), resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let synced = Arc::new(AtomicBool::new(false));
        let inner = Arc::downgrade(&self.inner);
        let task = tokio::spawn(run_watch(key.clone(), api, writer, synced.clone(), inner));
        tracing::info!(kind = %key.kind, api_version = %key.api_version,
            namespace = key.namespace.as_deref().unwrap_or("*"), "watching a condition-gate kind");
        Watch {
            store,
            synced,
            task,
        }
    }
}

impl Inner {
    /// The Releases still checking their requirements whose condition gates fall under `key`.
    fn waiting(&self, key: &WatchKey) -> Option<Vec<Arc<Release>>> {
        let releases = self.releases.get()?;
        Some(releases.state_filter(|r| {
            !r.is_finished() && !r.has_started() && gates_under(r, key).next().is_some()
        }))
    }

    /// Wakes the waiting Releases whose gates name `name` under `key` (every one of `key`'s
    /// when `name` is `None`).
    fn wake(&self, key: &WatchKey, name: Option<&str>) {
        for release in self.waiting(key).unwrap_or_default() {
            if gates_under(&release, key).any(|g| name.is_none_or(|name| g.name == name)) {
                let _ = self
                    .wake
                    .unbounded_send(ObjectRef::from_obj(release.as_ref()));
            }
        }
    }
}

/// `release`'s condition gates that fall under `key`.
fn gates_under<'a>(
    release: &'a Release,
    key: &'a WatchKey,
) -> impl Iterator<Item = &'a ConditionGate> + 'a {
    let namespace = release.metadata.namespace.as_deref();
    release
        .spec
        .requirements
        .iter()
        .filter_map(|q| q.condition.as_ref())
        .filter(move |g| key.covers(g, namespace))
}

/// Runs one watch until no waiting Release needs it (or the controller is gone).
async fn run_watch(
    key: WatchKey,
    api: Api<DynamicObject>,
    writer: reflector::store::Writer<DynamicObject>,
    synced: Arc<AtomicBool>,
    inner: std::sync::Weak<Inner>,
) {
    let mut events = std::pin::pin!(
        reflector(
            writer,
            crate::k8s::watch::watch(api, watcher::Config::default()),
        )
        .default_backoff()
    );
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.tick().await;
    let mut reported = false;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(inner) = inner.upgrade() else { return };
                match event {
                    Some(Ok(watcher::Event::InitDone)) => {
                        synced.store(true, Ordering::SeqCst);
                        reported = false;
                        inner.wake(&key, None);
                    }
                    Some(Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object))) => {
                        inner.wake(&key, Some(&object.name_any()));
                    }
                    Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
                    Some(Err(error)) => {
                        synced.store(false, Ordering::SeqCst);
                        if !reported {
                            reported = true;
                            tracing::warn!(kind = %key.kind, api_version = %key.api_version,
                                %error, "cannot watch a condition-gate kind; its gates are read \
                                on each reconcile and rechecked every 15 s (grant list and watch \
                                on it: rbac.conditionGateRules)");
                        }
                    }
                    None => return,
                }
            }
            _ = sweep.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                // Unknown (no Release store yet) counts as needed.
                if inner.waiting(&key).is_some_and(|w| w.is_empty()) {
                    tracing::info!(kind = %key.kind, "no Release waits on this condition-gate kind; watch stopped");
                    if let Ok(mut watches) = inner.watches.lock() {
                        // Dropping the Watch aborts this task: return right after.
                        let _stopping = watches.remove(&key);
                        drop(watches);
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(api_version: &str, kind: &str) -> ConditionGate {
        serde_json::from_value(serde_json::json!({
            "apiVersion": api_version, "kind": kind, "name": "build-42", "type": "Succeeded"
        }))
        .expect("valid gate")
    }

    #[test]
    fn a_namespaced_watch_covers_only_its_namespace_and_kind() {
        let key = WatchKey {
            api_version: "tekton.dev/v1".into(),
            kind: "PipelineRun".into(),
            namespace: Some("shop".into()),
        };
        assert!(key.covers(&gate("tekton.dev/v1", "PipelineRun"), Some("shop")));
        assert!(!key.covers(&gate("tekton.dev/v1", "PipelineRun"), Some("other")));
        assert!(!key.covers(&gate("tekton.dev/v1", "TaskRun"), Some("shop")));
        assert!(!key.covers(&gate("tekton.dev/v1beta1", "PipelineRun"), Some("shop")));
    }

    #[test]
    fn a_cluster_watch_covers_every_namespace() {
        let key = WatchKey {
            api_version: "example.io/v1".into(),
            kind: "Signal".into(),
            namespace: None,
        };
        assert!(key.covers(&gate("example.io/v1", "Signal"), Some("a")));
        assert!(key.covers(&gate("example.io/v1", "Signal"), Some("b")));
    }
}
