//! Signals: alerts on what workers report about themselves rather than on request windows —
//! consumer lag and resource exhaustion from [`WorkerStatus`] (`frontier.workers.status`), and
//! autoscaling trouble from [`AutoscaleDecision`] (`frontier.autoscale.decisions`).
//!
//! A signal is a gauge per subject (a consumer group, or one worker instance), judged by a
//! [`SignalRule`] with the same `for`, hysteresis and alert book as the SLI rules, so a signal
//! alert fires once, re-notifies, survives a restart and resolves like any other. A subject
//! whose reports stop for `signal_stale_after` has no value any more: its alert resolves (the
//! process is gone, or it scaled away) instead of firing forever on its last word.

mod board;
mod config;
mod evaluate;

pub use config::{Signal, SignalRule};

pub(crate) use board::SignalBoard;
pub(crate) use evaluate::SignalDefinition;
