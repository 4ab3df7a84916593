//! Kubernetes Events for the state changes a person should notice.
//!
//! Published as `events.k8s.io/v1` Events by the operator itself rather than through
//! `kube::runtime::events::Recorder`: that recorder keeps a copy of every Event it published in
//! the last six minutes, whole, in a hash map (about 9 KB an Event with the map's slack), which
//! was most of the operator's heap after ten thousand TrainingJobs were created at once
//! (`bench/operator`, docs/decisions.md). This publisher keeps, for the same six minutes, only
//! what a repeat needs: a 64-bit digest of what the Event says, its name, how often it was said
//! and when. An exact repeat (same object, type, reason and note) within that time raises the
//! first Event's `series.count` instead of making another, so a warning repeated at each retry
//! (`NameTaken`) stays one Event.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The component Events are reported by.
pub const CONTROLLER: &str = "modelops";
/// How long an Event is remembered for its repeats to be counted on it.
pub const REPEAT_WITHIN: Duration = Duration::from_secs(6 * 60);

/// What is remembered of a published Event.
struct Published {
    name: String,
    count: i32,
    at: Instant,
}

/// Publishes Events, every controller through one.
pub struct Recorder {
    client: Client,
    instance: String,
    /// The digest's key, random per process: no one who can name objects can make two Events
    /// of different namespaces share a digest on purpose.
    keys: RandomState,
    recent: Mutex<Recent>,
}

/// The Events published within [`REPEAT_WITHIN`], by digest.
#[derive(Default)]
struct Recent {
    events: HashMap<u64, Published>,
    pruned: Option<Instant>,
}

impl Recent {
    /// Forgets what is older than [`REPEAT_WITHIN`], at most once a second (a scan of the map).
    fn prune(&mut self, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.events
            .retain(|_, e| now.duration_since(e.at) < REPEAT_WITHIN);
        // Given back once a burst has mostly been forgotten, not reallocated at every scan.
        if self.events.len() < self.events.capacity() / 4 {
            self.events.shrink_to_fit();
        }
        self.pruned = Some(now);
    }
}

/// The recorder every controller publishes through, reporting as [`CONTROLLER`] from the pod
/// `POD_NAME`.
pub fn recorder(client: Client) -> Recorder {
    Recorder {
        client,
        instance: std::env::var("POD_NAME").unwrap_or_else(|_| CONTROLLER.to_owned()),
        keys: RandomState::new(),
        recent: Mutex::default(),
    }
}

/// Publishes an event about `object`. A failure to publish is logged, never fatal: an event is a
/// courtesy, the status is the record.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let regarding = object.object_ref(&());
    if let Err(e) = recorder.publish(regarding, warning, reason, note).await {
        tracing::warn!("publishing event {reason}: {e}");
    }
}

impl Recorder {
    async fn publish(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) -> kube::Result<()> {
        let type_ = if warning { "Warning" } else { "Normal" };
        let digest = digest(&self.keys, &regarding, type_, reason, &note);
        let now = Instant::now();
        // The object's namespace is the Event's (the digest covers it, so a repeat's too).
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let events = Api::<Event>::namespaced(self.client.clone(), &namespace);
        let repeat = {
            let mut recent = self.recent.lock().expect("never poisoned");
            recent.prune(now);
            recent.events.get_mut(&digest).map(|e| {
                e.count += 1;
                e.at = now;
                (e.name.clone(), e.count)
            })
        };
        if let Some((name, count)) = repeat {
            let series = serde_json::json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(Timestamp::now()),
            }});
            let patched = events
                .patch(&name, &PatchParams::default(), &Patch::Merge(series))
                .await;
            match patched {
                Ok(_) => return Ok(()),
                // Gone (the API server keeps Events an hour): a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let at = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(CONTROLLER),
            at.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(at)),
            action: Some(reason.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            type_: Some(type_.to_owned()),
            regarding: Some(regarding),
            reporting_controller: Some(CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.recent.lock().expect("never poisoned").events.insert(
            digest,
            Published {
                name,
                count: 1,
                at: now,
            },
        );
        Ok(())
    }
}

/// What makes two Events the same: the object (by uid, so a namesake created later is another),
/// the type, the reason and the note.
fn digest(
    keys: &RandomState,
    regarding: &ObjectReference,
    type_: &str,
    reason: &str,
    note: &str,
) -> u64 {
    keys.hash_one((
        &regarding.api_version,
        &regarding.kind,
        &regarding.namespace,
        &regarding.name,
        &regarding.uid,
        type_,
        reason,
        note,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("modelops.dev/v1alpha1".into()),
            kind: Some("Dataset".into()),
            name: Some("iris".into()),
            namespace: Some("team-a".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn an_event_is_the_same_only_when_object_type_reason_and_note_are() {
        let keys = RandomState::new();
        let digest = |reference: &ObjectReference, type_, reason, note| {
            digest(&keys, reference, type_, reason, note)
        };
        let same = digest(&reference("1"), "Warning", "NameTaken", "taken");
        assert_eq!(
            same,
            digest(&reference("1"), "Warning", "NameTaken", "taken")
        );
        for other in [
            digest(&reference("2"), "Warning", "NameTaken", "taken"),
            digest(&reference("1"), "Normal", "NameTaken", "taken"),
            digest(&reference("1"), "Warning", "Started", "taken"),
            digest(&reference("1"), "Warning", "NameTaken", "taken again"),
        ] {
            assert_ne!(same, other);
        }
    }

    #[test]
    fn what_is_older_than_the_repeat_window_is_forgotten() {
        let published = |at| Published {
            name: "iris.1".into(),
            count: 1,
            at,
        };
        let mut recent = Recent::default();
        let start = Instant::now();
        recent.events.insert(1, published(start));
        recent.prune(start + REPEAT_WITHIN - Duration::from_millis(500));
        assert_eq!(recent.events.len(), 1, "younger than the window: kept");
        // Not scanned again within a second.
        recent.prune(start + REPEAT_WITHIN + Duration::from_millis(200));
        assert_eq!(recent.events.len(), 1);
        recent.prune(start + REPEAT_WITHIN + Duration::from_secs(1));
        assert!(recent.events.is_empty(), "as old as the window: forgotten");
    }
}
