//! The namespaces relman serves: every namespace, or a list of them (`RELMAN_NAMESPACE`).
//!
//! With a list, each namespaced kind is watched once per namespace (`Api::namespaced`), so
//! relman needs `list` and `watch` only there, never cluster-wide. The per-namespace watches
//! feed one reflector store through [`watch_in`]: a store takes a watcher's `Init`…`InitDone`
//! as "replace everything", so merging the raw streams would let one namespace's relist wipe
//! the others' objects. [`watch_in`] turns them into one stream that lists once (when every
//! namespace has listed) and then turns a later relist of one namespace into the changes it
//! found there: an `Apply` per listed object and a `Delete` per object of that namespace the
//! list no longer has.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Where relman reconciles Releases and watches what they drive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (cluster-wide watches).
    #[default]
    All,
    /// These namespaces only: one watch per namespace and kind.
    Namespaces(BTreeSet<String>),
}

impl Scope {
    /// One namespace.
    pub fn one(namespace: impl Into<String>) -> Self {
        Self::Namespaces(BTreeSet::from([namespace.into()]))
    }

    /// A comma-separated list of namespaces (whitespace around each is ignored); empty means
    /// every namespace. An empty item or a name that cannot be a namespace is an error, so a
    /// slip never widens relman's scope.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::All);
        }
        let mut namespaces = BTreeSet::new();
        for item in text.split(',') {
            let name = item.trim();
            if name.is_empty() {
                return Err(format!(
                    "{text:?} has an empty item: list namespaces separated by commas (a,b,c)"
                ));
            }
            if !is_dns_label(name) {
                return Err(format!(
                    "{name:?} is not a namespace name (lower-case letters, digits and '-', at \
                     most 63)"
                ));
            }
            namespaces.insert(name.to_owned());
        }
        Ok(Self::Namespaces(namespaces))
    }

    /// Whether Releases of `namespace` are served.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(namespaces) => namespaces.contains(namespace),
        }
    }

    /// An Api for `K` per namespace, or one for every namespace.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Self::All => vec![Api::all(client.clone())],
            Self::Namespaces(namespaces) => namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("every namespace"),
            Self::Namespaces(namespaces) => {
                let list: Vec<&str> = namespaces.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// An RFC 1123 label, as namespace names are.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// The watch events of `K` in `scope` under `config`, for the reflector whose store is
/// `store` (each namespace's watch relists after a 410 and backs off on its own,
/// [`super::watch::watch`]). Feed the stream to that store's writer and no other: a relist of
/// one namespace is turned into changes by comparing it with the store.
pub fn watch_in<K>(
    client: &Client,
    scope: &Scope,
    config: watcher::Config,
    store: Store<K>,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut streams: Vec<BoxStream<'static, watcher::Result<Event<K>>>> = scope
        .apis::<K>(client)
        .into_iter()
        .map(|api| {
            super::watch::watch(api, config.clone())
                .default_backoff()
                .boxed()
        })
        .collect();
    if streams.is_empty() {
        // No namespace at all: an empty store, listed, that never changes.
        return stream::iter([Ok(Event::Init), Ok(Event::InitDone)])
            .chain(stream::pending())
            .boxed();
    }
    if streams.len() == 1
        && let Some(only) = streams.pop()
    {
        return only;
    }
    let namespaces = match scope {
        Scope::All => Vec::new(),
        Scope::Namespaces(namespaces) => namespaces.iter().cloned().collect(),
    };
    let tagged = stream::select_all(
        streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.map(move |event| (i, event)).boxed()),
    );
    let mut merge = Merge::new(namespaces, store);
    tagged
        .flat_map(move |(i, event)| stream::iter(merge.step(i, event)))
        .boxed()
}

/// The state that turns several namespaces' watch events into one store's.
struct Merge<K: Resource<DynamicType = ()> + Clone + 'static> {
    namespaces: Vec<String>,
    /// The store the merged events are applied to, to find what a relist dropped.
    store: Store<K>,
    /// A namespace's list in progress (between its `Init` and `InitDone`).
    listing: Vec<Option<HashMap<String, K>>>,
    /// Before the merged stream's own `InitDone`: each namespace's objects once it has listed.
    listed: Vec<Option<HashMap<String, K>>>,
    /// Whether the merged stream has sent its `InitDone`.
    initialized: bool,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Merge<K> {
    fn new(namespaces: Vec<String>, store: Store<K>) -> Self {
        let n = namespaces.len();
        Self {
            namespaces,
            store,
            listing: vec![None; n],
            listed: vec![None; n],
            initialized: false,
        }
    }

    /// The merged events for `event` from namespace number `i`.
    fn step(
        &mut self,
        i: usize,
        event: watcher::Result<Event<K>>,
    ) -> Vec<watcher::Result<Event<K>>> {
        let event = match event {
            Ok(event) => event,
            Err(error) => return vec![Err(error)],
        };
        if i >= self.namespaces.len() {
            return Vec::new();
        }
        match event {
            Event::Init => {
                self.listing[i] = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                let listing = self.listing[i].get_or_insert_with(HashMap::new);
                listing.insert(object.name_any(), object);
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.listing[i].take().unwrap_or_default();
                if self.initialized {
                    self.relisted(i, listed)
                } else {
                    self.listed[i] = Some(listed);
                    self.first_list_if_complete()
                }
            }
            // A namespace that has listed goes on watching while others still list: its list
            // is kept current until the merged list goes out.
            Event::Apply(object) if !self.initialized => {
                if let Some(listed) = self.listed[i].as_mut() {
                    listed.insert(object.name_any(), object);
                }
                Vec::new()
            }
            Event::Delete(object) if !self.initialized => {
                if let Some(listed) = self.listed[i].as_mut() {
                    listed.remove(&object.name_any());
                }
                Vec::new()
            }
            event => vec![Ok(event)],
        }
    }

    /// The merged `Init`, every namespace's objects and `InitDone`, once all have listed.
    fn first_list_if_complete(&mut self) -> Vec<watcher::Result<Event<K>>> {
        if self.listed.iter().any(Option::is_none) {
            return Vec::new();
        }
        self.initialized = true;
        let mut out = vec![Ok(Event::Init)];
        for listed in self.listed.iter_mut() {
            out.extend(
                listed
                    .take()
                    .into_iter()
                    .flat_map(HashMap::into_values)
                    .map(|o| Ok(Event::InitApply(o))),
            );
        }
        out.push(Ok(Event::InitDone));
        out
    }

    /// A later relist of namespace `i`: its objects applied, and those of its objects the
    /// store holds that the list no longer has deleted.
    fn relisted(&mut self, i: usize, listed: HashMap<String, K>) -> Vec<watcher::Result<Event<K>>> {
        let namespace = &self.namespaces[i];
        let names: HashSet<&String> = listed.keys().collect();
        let mut out: Vec<watcher::Result<Event<K>>> = self
            .store
            .state()
            .into_iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(namespace.as_str()))
            .filter(|o| !names.contains(&o.name_any()))
            .map(|o| Ok(Event::Delete((*o).clone())))
            .collect();
        out.extend(listed.into_values().map(|o| Ok(Event::Apply(o))));
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    use super::*;

    fn object(namespace: &str, name: &str, version: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.to_owned());
        object.metadata.name = Some(name.to_owned());
        object.metadata.resource_version = Some(version.to_owned());
        object
    }

    /// A merge over namespaces `a` and `b` and the store its events are applied to.
    struct Harness {
        merge: Merge<ConfigMap>,
        writer: reflector::store::Writer<ConfigMap>,
        store: Store<ConfigMap>,
        sent: Vec<String>,
    }

    impl Harness {
        fn new() -> Self {
            let writer = reflector::store::Writer::default();
            let store = writer.as_reader();
            Self {
                merge: Merge::new(vec!["a".into(), "b".into()], store.clone()),
                writer,
                store,
                sent: Vec::new(),
            }
        }

        /// Feeds `event` from namespace number `i` and applies what comes out to the store.
        fn feed(&mut self, i: usize, event: Event<ConfigMap>) {
            for out in self.merge.step(i, Ok(event)) {
                let out = out.unwrap();
                self.sent.push(match &out {
                    Event::Init => "Init".to_owned(),
                    Event::InitApply(o) => format!("InitApply {}", o.name_any()),
                    Event::InitDone => "InitDone".to_owned(),
                    Event::Apply(o) => format!("Apply {}", o.name_any()),
                    Event::Delete(o) => format!("Delete {}", o.name_any()),
                });
                self.writer.apply_watcher_event(&out);
            }
        }

        /// `namespace/name@version` of everything in the store.
        fn held(&self) -> BTreeSet<String> {
            self.store
                .state()
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}@{}",
                        o.namespace().unwrap_or_default(),
                        o.name_any(),
                        o.resource_version().unwrap_or_default()
                    )
                })
                .collect()
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_parse_from_a_comma_separated_list() {
        assert_eq!(Scope::parse("").unwrap(), Scope::All);
        assert_eq!(Scope::parse("shop").unwrap(), Scope::one("shop"));
        assert_eq!(
            Scope::parse(" shop , shop-prod,shop").unwrap(),
            Scope::Namespaces(set(&["shop", "shop-prod"]))
        );
        for bad in [
            "shop,",
            ",shop",
            "shop,,prod",
            "Shop",
            "shop prod",
            "-shop",
            "*",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let scope = Scope::parse("b,a").unwrap();
        assert!(scope.contains("a") && scope.contains("b") && !scope.contains("c"));
        assert!(Scope::All.contains("anything"));
        assert_eq!(scope.to_string(), "a,b");
    }

    #[test]
    fn the_merged_list_goes_out_once_every_namespace_has_listed() {
        let mut h = Harness::new();
        h.feed(0, Event::Init);
        h.feed(0, Event::InitApply(object("a", "one", "1")));
        h.feed(0, Event::InitDone);
        // a watches on while b still lists: nothing reaches the store yet.
        h.feed(0, Event::Apply(object("a", "two", "2")));
        h.feed(0, Event::Apply(object("a", "one", "3")));
        h.feed(1, Event::Init);
        h.feed(1, Event::InitApply(object("b", "one", "4")));
        assert!(h.sent.is_empty(), "{:?}", h.sent);
        assert!(h.store.state().is_empty());
        h.feed(1, Event::InitDone);
        assert_eq!(h.sent.first().map(String::as_str), Some("Init"));
        assert_eq!(h.sent.last().map(String::as_str), Some("InitDone"));
        assert_eq!(h.held(), set(&["a/one@3", "a/two@2", "b/one@4"]));
        // Then changes pass through.
        h.feed(1, Event::Delete(object("b", "one", "5")));
        h.feed(0, Event::Apply(object("a", "three", "6")));
        assert_eq!(h.held(), set(&["a/one@3", "a/two@2", "a/three@6"]));
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others_and_drops_what_went_away() {
        let mut h = Harness::new();
        for (i, ns) in [(0, "a"), (1, "b")] {
            h.feed(i, Event::Init);
            h.feed(i, Event::InitApply(object(ns, "one", "1")));
            h.feed(i, Event::InitApply(object(ns, "two", "1")));
            h.feed(i, Event::InitDone);
        }
        h.sent.clear();
        // a's watch lost its version and lists again: "one" went away meanwhile, "two" changed.
        h.feed(0, Event::Init);
        h.feed(0, Event::InitApply(object("a", "two", "2")));
        h.feed(0, Event::InitApply(object("a", "three", "2")));
        assert_eq!(h.held().len(), 4, "nothing changes until a has listed");
        h.feed(0, Event::InitDone);
        assert_eq!(
            h.held(),
            set(&["a/two@2", "a/three@2", "b/one@1", "b/two@1"])
        );
        assert!(h.sent.contains(&"Delete one".to_owned()), "{:?}", h.sent);
        assert!(
            !h.sent.iter().any(|e| e.starts_with("Init")),
            "a relist of one namespace must not replace the store: {:?}",
            h.sent
        );
    }
}
