//! The SLA monitor's core: SLIs, threshold rules, SLO burn-rate alerts and alert state, computed
//! from raw `RequestCompleted` events (issue 5). It does no I/O and reads no clock: the consumer
//! loop that will drive it passes every decoded event to [`SlaMonitor::observe`] and calls
//! [`SlaMonitor::evaluate`] every second (and after bursts), producing each returned
//! [`AlertTransition`]'s [`Alert`] to `frontier.alerts`, keyed by its fingerprint.
//!
//! How it works, and why:
//!
//! - **Event time.** Windows are computed on `occurred_at`, not on arrival. The stream time is
//!   the newest event time seen (never ahead of the processing clock); the watermark trails it
//!   by `allowed_lateness`. A late event newer than the watermark still lands in its own minute;
//!   an older one is dropped as `too_late`. Garbage (negative, NaN or infinite latency,
//!   timestamps from the future) is dropped and counted by reason ([`DropReason`]) so it never
//!   breaks a window. Pending/firing times and `for` durations are event time too, so a replay
//!   reproduces them; `sent_at` and re-notification use the processing clock.
//! - **Raw percentiles.** Every series (service + kind) keeps rings of buckets, each an HDR
//!   histogram (microseconds, 3 significant digits) plus counters and the slowest and latest
//!   failed request ids; a window's SLI is the exact merge of its buckets, not an average of
//!   averages. 30s and 1m windows use a ring of five-second buckets (so they slide every 5 s and
//!   a recovery leaves them within about their length), 5m and 1h windows a minute ring, the 6h
//!   window a ring of ten-minute buckets fed by the same events, which keeps memory to about a
//!   hundred and twenty histograms per series. A window of length W covers the current, partial
//!   bucket and the W worth of whole buckets before it: it never misses an event of the last W
//!   and includes at most one bucket more.
//! - **SLOs** keep per-minute good/bad counters per series for their longest window (3 days by
//!   default, a few tens of kilobytes) and alert on multiwindow, multi-burn-rate conditions.
//! - **SLO counters survive a restart**: [`SlaMonitor::checkpoint`] hands out the per-minute
//!   counters of the hours that changed, which the worker writes to a compacted topic, and a new
//!   monitor takes them back with [`SlaMonitor::restore_slo_counters`] (see `checkpoint.rs`).
//! - **Alert state** lives in an [`AlertBook`] keyed by fingerprint, which can be rebuilt from the
//!   alerts topic after a restart ([`AlertBook::restore`]).

mod alert;
mod book;
mod bucket;
mod checkpoint;
mod config;
mod evaluate;
mod event;
mod monitor;
mod recent_ids;
mod ring;
mod rules;
mod series;
mod signal;
mod slo_ring;
mod stream;
mod template;
mod validate;

#[cfg(test)]
mod tests;

pub use alert::{AlertChange, AlertTransition, fingerprint};
pub use book::AlertBook;
pub use config::{
    BurnRateWindows, Comparison, EventSource, SlaConfig, Sli, SliWindow, SloConfig, SloIndicator, ThresholdRule,
};
pub use event::RequestSample;
pub use monitor::{BurnRateReading, LatencyPercentiles, SlaMonitor, WindowSli};
pub use signal::{Signal, SignalRule};
pub use stream::{DropCounts, DropReason, Observation};
pub use validate::SlaConfigError;
