//! One way to run a controller: the wiring the four kinds share. A kind declares what it owns
//! and which other kinds wake it; the runner adds the rest the same way for all of them: the
//! watches (cluster-wide, or one controller per namespace of `--watch-namespaces`; owned kinds by
//! their owner label), the reconcile timer, the error policy and its back-off, and the graceful
//! shutdown on SIGTERM or Ctrl-C.

use super::Context;
use super::apply::owner_label_key;
use super::error::Error;
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use tracing::Instrument;

/// The most reconciles one controller runs at once. Unbounded, a burst of changes (ten thousand
/// objects created, or deleted with their namespace) started a reconcile for each at once: their
/// requests and answers in memory together (the RSS doubled) and a queue at the API server.
/// Bounded, the rest wait their turn, each object still reconciled once for all its changes.
pub const CONCURRENT_RECONCILES: u16 = 256;

/// What a kind of children is: a namespaced object an owner's watch can decode.
pub trait Owned:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + 'static
{
}

impl<C> Owned for C where
    C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static
{
}

/// What every kind the operator reconciles is: a namespaced object the runner can watch, and
/// share between threads.
pub trait Reconciled: Owned + Sync {}

impl<K: Owned + Sync> Reconciled for K {}

/// Which changes of its own objects wake a controller (its children, the kinds it watches and
/// its timers wake it either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakes {
    /// Every change: spec, status, labels, annotations.
    AnyChange,
    /// A new object, and a change of its spec (a new `metadata.generation`): for a kind whose
    /// status only the operator writes and whose reconcile reads nothing else that changes
    /// later. Each write of its own status then costs no second reconcile.
    SpecChange,
}

/// A controller for kind `K` being declared: [`Runner::new`], then [`Runner::owns`] and
/// [`Runner::watches`] as the kind needs, then [`Runner::run`].
pub struct Runner<K: Reconciled> {
    controller: Controller<K>,
    ctx: Arc<Context>,
    /// The one namespace it watches, or `None` for the whole cluster.
    namespace: Option<String>,
}

/// Runs `controller` (a [`Runner`] declared and run) for every scope the operator watches: the
/// whole cluster, or each namespace of `--watch-namespaces`, all at once, until shutdown.
pub async fn in_each_scope<K, F, Fut>(ctx: Arc<Context>, wakes: Wakes, controller: F)
where
    K: Reconciled,
    F: Fn(Runner<K>) -> Fut,
    Fut: Future<Output = ()>,
{
    let scopes: Vec<Option<String>> = if ctx.config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config
            .watch_namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|scope| controller(Runner::new(ctx.clone(), scope, wakes))),
    )
    .await;
}

impl<K: Reconciled> Runner<K> {
    /// A controller of every `K` in `namespace`, or in the cluster, woken by the changes of its
    /// own objects that `wakes` names. Its cache keeps each object [`trimmed`] of what no
    /// controller reads, and every change (the cache is never stale for a reconcile).
    pub fn new(ctx: Arc<Context>, namespace: Option<String>, wakes: Wakes) -> Self {
        let (reader, writer) = kube::runtime::reflector::store();
        let objects = watcher::watcher(api(&ctx, namespace.as_deref()), watcher::Config::default())
            .default_backoff()
            .modify(trimmed)
            .reflect(writer)
            .applied_objects();
        let controller = match wakes {
            Wakes::AnyChange => Controller::for_stream(objects, reader),
            Wakes::SpecChange => Controller::for_stream(
                objects.predicate_filter(predicates::generation, Default::default()),
                reader,
            ),
        }
        .with_config(controller::Config::default().concurrency(CONCURRENT_RECONCILES));
        Self {
            controller,
            ctx,
            namespace,
        }
    }

    /// The cache of every `K` this controller watches.
    pub fn store(&self) -> Store<K> {
        self.controller.store()
    }

    /// Reconciles the owner when a `Child` it controls changes. Only children labelled with
    /// their owner's kind are watched (see [`owner_label_key`]), so the operator does not cache
    /// every Job or Deployment in the cluster.
    #[must_use]
    pub fn owns<Child: Owned>(self) -> Self {
        let api = api::<Child>(&self.ctx, self.namespace.as_deref());
        let config = watcher::Config::default().labels(&owner_label_key::<K>());
        Self {
            controller: self.controller.owns(api, config),
            ctx: self.ctx,
            namespace: self.namespace,
        }
    }

    /// As [`Runner::owns`], but the owner is woken only when what its reconcile reads of a child
    /// changes: `read` of it, its labels, its owner references or its deletion (and when a
    /// child appears or goes). Another controller's bookkeeping on the child then costs the
    /// owner no reconcile: Kubernetes' Job controller, for one, writes a `Suspended` condition
    /// on each new suspended Job, minutes after the Job was made when thousands were (its
    /// client's 20 requests per second), and each of those writes used to wake a reconcile.
    #[must_use]
    pub fn owns_reading<Child, Read>(self, read: fn(&Child) -> Read) -> Self
    where
        Child: Owned,
        Read: Hash + 'static,
    {
        let api = api::<Child>(&self.ctx, self.namespace.as_deref());
        let config = watcher::Config::default().labels(&owner_label_key::<K>());
        let mut seen = Seen::new(read);
        let changes = watcher::watcher(api, config)
            .default_backoff()
            .filter_map(move |event| futures::future::ready(seen.wakes(event).transpose()));
        Self {
            controller: self.controller.owns_stream(changes),
            ctx: self.ctx,
            namespace: self.namespace,
        }
    }

    /// Reconciles the `K`s in the same namespace that name a changed `Other`: those for which
    /// `named(object)` is the `Other`'s name (say, the TrainingJobs of a Dataset). It watches only
    /// the `Other`s' metadata (the API server sends no spec or status, the operator decodes
    /// none), which is all a name needs.
    #[must_use]
    pub fn watches_named<Other>(
        self,
        named: impl Fn(&K) -> Option<&str> + Send + Sync + 'static,
    ) -> Self
    where
        Other: Reconciled,
    {
        let mapper = naming(self.controller.store(), named);
        let api = api::<PartialObjectMeta<Other>>(&self.ctx, self.namespace.as_deref());
        let changes = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .touched_objects();
        Self {
            controller: self.controller.watches_stream(changes, mapper),
            ctx: self.ctx,
            namespace: self.namespace,
        }
    }

    /// As [`Runner::watches_named`], for a reconcile that also reads the `Other`s: they are
    /// watched whole and kept in a cache ([`trimmed`], as the controller's own), which it returns
    /// for the reconcile to read instead of asking the API server each time. A cache is updated
    /// before the change it saw wakes anyone.
    pub fn watches_named_cached<Other>(
        self,
        named: impl Fn(&K) -> Option<&str> + Send + Sync + 'static,
    ) -> (Self, Store<Other>)
    where
        Other: Reconciled,
    {
        let mapper = naming(self.controller.store(), named);
        let (cache, writer) = kube::runtime::reflector::store();
        let api = api::<Other>(&self.ctx, self.namespace.as_deref());
        let changes = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trimmed)
            .reflect(writer)
            .touched_objects();
        let runner = Self {
            controller: self.controller.watches_stream(changes, mapper),
            ctx: self.ctx,
            namespace: self.namespace,
        };
        (runner, cache)
    }

    /// Reconciles every `K` in the same namespace as a changed `Other` for which
    /// `related(other, object)` holds (say, the ModelDeployment a Monitor targets), when that
    /// needs more of the `Other` than its name (see [`Runner::watches_named`]).
    #[must_use]
    pub fn watches<Other>(
        self,
        related: impl Fn(&Other, &K) -> bool + Send + Sync + 'static,
    ) -> Self
    where
        Other: Reconciled,
    {
        let store = self.controller.store();
        let api = api::<Other>(&self.ctx, self.namespace.as_deref());
        let mapper = move |other: Other| related_objects(store.state(), &other, &related);
        Self {
            controller: self
                .controller
                .watches(api, watcher::Config::default(), mapper),
            ctx: self.ctx,
            namespace: self.namespace,
        }
    }

    /// Runs `reconcile` for every change until a shutdown signal, timing each reconcile and
    /// handing failures to [`error_policy`].
    pub async fn run<F, Fut>(self, reconcile: F)
    where
        F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let kind = K::kind(&()).into_owned();
        let timed = move |object: Arc<K>, ctx: Arc<Context>| {
            // Every log line of the reconcile carries what it reconciles (as `object`: a span's
            // JSON has a `name` of its own, the span's, which would hide a field of that name).
            let meta = object.meta();
            let span = tracing::info_span!(
                "reconcile",
                kind = %kind,
                namespace = meta.namespace.as_deref().unwrap_or_default(),
                object = meta.name.as_deref().unwrap_or_default(),
                generation = meta.generation.unwrap_or_default(),
            );
            // Started before the reconcile and dropped after it: the timer sees all of it.
            let timer = ctx.metrics.reconcile_timer(&kind);
            let reconciled = span.in_scope(|| reconcile(object, ctx));
            async move {
                let result = reconciled.await;
                drop(timer);
                crate::memory::note_work();
                result
            }
            .instrument(span)
        };
        let label = K::kind(&()).to_lowercase();
        self.controller
            .shutdown_on_signal()
            .run(timed, error_policy, self.ctx)
            .for_each(|result| {
                // Failures were logged and counted by the error policy already.
                if let Err(e) = result {
                    tracing::debug!("{label} reconcile: {e}");
                }
                futures::future::ready(())
            })
            .await;
    }
}

/// The children an owner has seen, for [`Runner::owns_reading`]: for each (by a digest of its
/// namespace, name and uid) a digest of what its owner reads, and the listing it was last seen
/// in. Digests are keyed at random per process, so no one can craft a child whose change looks
/// like no change. About 24 bytes a child; a child's entry goes with the child.
struct Seen<Child, Read> {
    read: fn(&Child) -> Read,
    keys: RandomState,
    digests: HashMap<u64, (u64, u32)>,
    /// Counts the watch's (re)listings: a child not listed again is gone.
    listing: u32,
}

impl<Child: Resource, Read: Hash> Seen<Child, Read> {
    fn new(read: fn(&Child) -> Read) -> Self {
        Self {
            read,
            keys: RandomState::new(),
            digests: HashMap::new(),
            listing: 0,
        }
    }

    /// The child of `event` when it should wake its owner: new, gone, or changed in what the
    /// owner reads. Errors pass through (the watcher retries them).
    fn wakes(
        &mut self,
        event: Result<watcher::Event<Child>, watcher::Error>,
    ) -> Result<Option<Child>, watcher::Error> {
        Ok(match event? {
            watcher::Event::Apply(child) | watcher::Event::InitApply(child) => {
                let key = self.key(&child);
                let digest = self.digest(&child);
                let before = self.digests.insert(key, (digest, self.listing));
                (before.map(|(d, _)| d) != Some(digest)).then_some(child)
            }
            watcher::Event::Delete(child) => {
                let key = self.key(&child);
                self.digests.remove(&key);
                Some(child)
            }
            watcher::Event::Init => {
                self.listing = self.listing.wrapping_add(1);
                None
            }
            watcher::Event::InitDone => {
                let listing = self.listing;
                self.digests.retain(|_, (_, seen)| *seen == listing);
                if self.digests.len() < self.digests.capacity() / 4 {
                    self.digests.shrink_to_fit();
                }
                None
            }
        })
    }

    fn key(&self, child: &Child) -> u64 {
        let meta = child.meta();
        self.keys.hash_one((&meta.namespace, &meta.name, &meta.uid))
    }

    fn digest(&self, child: &Child) -> u64 {
        let meta = child.meta();
        self.keys.hash_one((
            (self.read)(child),
            &meta.labels,
            meta.owner_references
                .iter()
                .flatten()
                .map(|r| (&r.uid, r.controller))
                .collect::<Vec<_>>(),
            meta.deletion_timestamp.is_some(),
        ))
    }
}

/// What the caches keep of an object: everything but its `managedFields` (the server-side apply
/// bookkeeping, often larger than the spec, which the operator never reads: it applies with
/// forced ownership) and the `kubectl.kubernetes.io/last-applied-configuration` annotation (a
/// copy of the spec that client-side `kubectl apply` leaves). At 10,000 objects they are most
/// of the cache.
fn trimmed<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// The annotation of client-side `kubectl apply`: the whole manifest, again.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The API of `T` in `namespace`, or in every namespace.
fn api<T>(ctx: &Context, namespace: Option<&str>) -> Api<T>
where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    }
}

/// The `candidates` to reconcile when `other` changed: those in its namespace that `related`
/// picks.
fn related_objects<K: Reconciled, Other: Resource>(
    candidates: Vec<Arc<K>>,
    other: &Other,
    related: impl Fn(&Other, &K) -> bool,
) -> Vec<ObjectRef<K>> {
    let namespace = other.namespace();
    candidates
        .into_iter()
        .filter(|object| object.namespace() == namespace && related(other, object))
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

/// The mapper of a watch of `Other`s that wakes the `K`s (in `store`) naming the changed one.
fn naming<K: Reconciled, Other: Resource>(
    store: Store<K>,
    named: impl Fn(&K) -> Option<&str>,
) -> impl Fn(Other) -> Vec<ObjectRef<K>> {
    move |other: Other| {
        related_objects(store.state(), &other, |other, object| {
            names(&named, other, object)
        })
    }
}

/// Whether `object` names `other`, by what `named` reads from it.
fn names<K, Other: Resource>(
    named: impl Fn(&K) -> Option<&str>,
    other: &Other,
    object: &K,
) -> bool {
    other
        .meta()
        .name
        .as_deref()
        .is_some_and(|name| named(object) == Some(name))
}

/// What a failed reconcile does next: log, count, and retry after the error's back-off. A child
/// name taken by someone else's object is also a Warning Event on the owner, where its user
/// looks.
pub fn error_policy<K: Resource<DynamicType = ()> + Send + Sync + 'static>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    if matches!(error, Error::NotOurs { .. }) {
        let (ctx, object, note) = (Arc::clone(&ctx), Arc::clone(&object), error.to_string());
        tokio::spawn(async move {
            super::events::publish(
                &ctx.recorder,
                object.as_ref(),
                true,
                modelops_api::conditions::reasons::NAME_TAKEN,
                note,
            )
            .await;
        });
    }
    let kind = K::kind(&());
    tracing::warn!(
        kind = %kind,
        name = %object.meta().name.as_deref().unwrap_or_default(),
        namespace = %object.meta().namespace.as_deref().unwrap_or_default(),
        category = error.category(),
        "reconcile failed: {error}"
    );
    ctx.metrics.reconcile_failed(&kind, error.category());
    Action::requeue(error.retry_after())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::jobs;
    use modelops_api::{Dataset, TrainingJob};

    fn job(namespace: &str, name: &str, dataset: &str) -> Arc<TrainingJob> {
        let mut job: TrainingJob =
            serde_yaml::from_str(include_str!("../../../examples/digits/trainingjob.yaml"))
                .unwrap();
        job.metadata.namespace = Some(namespace.into());
        job.metadata.name = Some(name.into());
        job.spec.dataset_ref.name = dataset.into();
        Arc::new(job)
    }

    #[test]
    fn only_related_objects_of_the_same_namespace_are_woken() {
        let mut dataset: Dataset =
            serde_yaml::from_str(include_str!("../../../examples/digits/dataset.yaml")).unwrap();
        dataset.metadata.namespace = Some("team-a".into());
        let candidates = vec![
            job("team-a", "uses-it", "digits"),
            job("team-a", "uses-another", "iris"),
            job("team-b", "same-name-elsewhere", "digits"),
        ];
        let woken = related_objects(candidates, &dataset, |dataset, job| {
            job.spec.dataset_ref.name == dataset.name_any()
        });
        let names: Vec<_> = woken.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["uses-it"]);
    }

    #[test]
    fn a_metadata_change_wakes_the_objects_that_name_it() {
        let dataset = PartialObjectMeta::<Dataset> {
            types: None,
            metadata: kube::core::ObjectMeta {
                name: Some("digits".into()),
                namespace: Some("team-a".into()),
                ..Default::default()
            },
            _phantom: std::marker::PhantomData,
        };
        let candidates = vec![
            job("team-a", "uses-it", "digits"),
            job("team-a", "uses-another", "iris"),
            job("team-b", "same-name-elsewhere", "digits"),
        ];
        fn dataset_of(job: &TrainingJob) -> Option<&str> {
            Some(&job.spec.dataset_ref.name)
        }
        let woken = related_objects(candidates, &dataset, |dataset, job| {
            names(dataset_of, dataset, job)
        });
        let woken: Vec<_> = woken.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(woken, ["uses-it"]);
    }

    fn worker_job(name: &str, uid: &str, status: serde_json::Value) -> jobs::WatchedJob {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "team-a", "name": name, "uid": uid,
                         "labels": {"modelops.dev/trainingjob": "tj"},
                         "ownerReferences": [{"apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob",
                                              "name": "tj", "uid": "owner", "controller": true}]},
            "spec": {"suspend": true, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_owner_wakes_for_what_it_reads_of_a_child_not_for_other_writes() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let mut seen = Seen::new(jobs::read);
        let mut wakes = |event| seen.wakes(Ok(event)).unwrap().is_some();
        let new = worker_job("tj-train", "1", serde_json::json!({}));
        let suspended = worker_job(
            "tj-train",
            "1",
            serde_json::json!({"conditions": [
            {"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}),
        );
        let failed_once = worker_job(
            "tj-train",
            "1",
            serde_json::json!({"failed": 1, "active": 1}),
        );
        assert!(wakes(Apply(new.clone())), "a new child wakes its owner");
        assert!(!wakes(Apply(new.clone())), "the same child again does not");
        assert!(
            !wakes(Apply(suspended.clone())),
            "the Job controller's Suspended condition is not read by the owner"
        );
        assert!(wakes(Apply(failed_once.clone())), "a failed pod is");
        let mut relabelled = failed_once.clone();
        relabelled.metadata.labels = None;
        assert!(wakes(Apply(relabelled)), "so are its labels");
        let mut released = failed_once.clone();
        released.metadata.owner_references = None;
        assert!(wakes(Apply(released)), "and its owner");
        assert!(wakes(Apply(failed_once.clone())));
        assert!(
            wakes(Delete(failed_once.clone())),
            "a deleted child wakes its owner"
        );
        assert!(
            wakes(Apply(failed_once.clone())),
            "and is new when it comes back"
        );
        let recreated = worker_job(
            "tj-train",
            "2",
            serde_json::json!({"failed": 1, "active": 1}),
        );
        assert!(
            wakes(Apply(recreated)),
            "a child made again under its name is new"
        );

        // A relisting: unchanged children wake no one, and those not listed again are forgotten.
        let other = worker_job("other-train", "3", serde_json::json!({}));
        assert!(wakes(Apply(other.clone())));
        assert!(!wakes(Init));
        assert!(
            !wakes(InitApply(failed_once.clone())),
            "listed again, unchanged"
        );
        assert!(!wakes(InitDone));
        assert_eq!(
            seen.digests.len(),
            1,
            "the children not listed again are forgotten"
        );
        let mut wakes = |event| seen.wakes(Ok(event)).unwrap().is_some();
        assert!(wakes(Apply(other)), "a forgotten child is new again");
    }
}
