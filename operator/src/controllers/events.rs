//! Kubernetes Events for the state changes a person should notice.

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The recorder every controller publishes through, reporting as `modelops`.
pub fn recorder(client: Client) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: "modelops".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
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
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!("publishing event {reason}: {e}");
    }
}
