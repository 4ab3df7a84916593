//! The worker's logs: `tracing` events in spans, one per command and one per step of it
//! (`fetch`, `train`, `publish`, … ; docs/observability.md), written to standard output.
//!
//! Two formats, chosen by `MODELOPS_LOG_FORMAT` (the operator sets it on its pods from its own
//! `--log-format`): `text` (the default), one line per event with its message and fields as
//! people read them (the lines are the same as before spans existed, so `kubectl logs` and the
//! tests that read them are unchanged), and `json`, one object per event with its level, time,
//! fields, the span it is in and the list of spans above it, for log pipelines.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable that selects the format: `text` or `json`.
pub const LOG_FORMAT_ENV: &str = "MODELOPS_LOG_FORMAT";

/// The text format: the event's message, then its other fields as `key=value`.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the process' log subscriber in the format `MODELOPS_LOG_FORMAT` names (an unknown
/// one is `text`, and says so). Call once, first thing.
pub fn init() {
    let format = std::env::var(LOG_FORMAT_ENV).unwrap_or_default();
    let logs = tracing_subscriber::fmt().with_writer(std::io::stdout);
    if format == "json" {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.event_format(Plain).init();
        if !format.is_empty() && format != "text" {
            tracing::warn!(
                "{LOG_FORMAT_ENV}={format:?} is not a log format (text or json): writing text"
            );
        }
    }
}
