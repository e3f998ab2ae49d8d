//! Alert state per fingerprint: inactive (absent), pending since a time, or firing with the last
//! message sent. One firing alert per fingerprint until it resolves, re-sent every
//! `renotify_interval`; rebuilt from the alerts topic after a restart.

use std::collections::HashMap;

use super::alert::{AlertChange, AlertTransition};
use super::rules::Reading;
use crate::records::{Alert, AlertStatus};

/// Which alerts are pending or firing, by fingerprint.
#[derive(Debug, Default, Clone)]
pub struct AlertBook {
    entries: HashMap<String, AlertState>,
}

#[derive(Debug, Clone)]
enum AlertState {
    /// Breaching since `since_ms` (event time), not yet for the rule's `for` duration.
    Pending { since_ms: i64 },
    /// Firing; `alert` is the last message sent (boxed: pending entries are the common case),
    /// `evaluated_in` the last evaluation that judged it.
    Firing { alert: Box<Alert>, last_sent_ms: i64, evaluated_in: u64 },
}

/// Times and settings of one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepContext {
    /// Stream time (event time): pending and firing times, `for` durations.
    pub stream_ms: i64,
    /// Processing time: `sent_at` and re-notification.
    pub now_ms: i64,
    pub for_ms: i64,
    pub renotify_ms: i64,
    pub generation: u64,
}

/// The message the caller must build for a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Emission {
    pub change: AlertChange,
    pub status: AlertStatus,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub sent_at_ms: i64,
}

impl AlertBook {
    /// Rebuilds the book from past alert messages, oldest first (the alerts topic replayed from
    /// the beginning of its retention; per fingerprint, topic order is send order because the
    /// fingerprint is the key). The last message per fingerprint wins: `firing` ones are firing
    /// again, with their `started_at` and their `sent_at` as the last notification, so a restart
    /// neither re-fires them as new nor forgets to resolve them. Duplicates from at-least-once
    /// delivery are harmless.
    pub fn restore(past_alerts: impl IntoIterator<Item = Alert>) -> AlertBook {
        let mut last: HashMap<String, Alert> = HashMap::new();
        for alert in past_alerts {
            last.insert(alert.fingerprint.clone(), alert);
        }
        let entries = last
            .into_iter()
            .filter(|(_, alert)| alert.status == AlertStatus::Firing)
            .map(|(fingerprint, alert)| {
                let last_sent_ms = alert.sent_at;
                (fingerprint, AlertState::Firing { alert: Box::new(alert), last_sent_ms, evaluated_in: 0 })
            })
            .collect();
        AlertBook { entries }
    }

    /// The last message of every firing alert, in no particular order.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.entries.values().filter_map(|state| match state {
            AlertState::Firing { alert, .. } => Some(alert.as_ref()),
            AlertState::Pending { .. } => None,
        })
    }

    /// Whether the alert with this fingerprint is firing.
    pub fn is_firing(&self, fingerprint: &str) -> bool {
        matches!(self.entries.get(fingerprint), Some(AlertState::Firing { .. }))
    }

    /// Whether the alert with this fingerprint is pending (breaching, waiting out `for`).
    pub fn is_pending(&self, fingerprint: &str) -> bool {
        matches!(self.entries.get(fingerprint), Some(AlertState::Pending { .. }))
    }

    /// Whether any alert is pending or firing for this fingerprint.
    pub(crate) fn is_active(&self, fingerprint: &str) -> bool {
        self.entries.contains_key(fingerprint)
    }

    /// Advances one alert by one reading. `build` makes the message when one is due.
    pub(crate) fn step(
        &mut self,
        fingerprint: &str,
        reading: Reading,
        context: StepContext,
        build: impl FnOnce(Emission) -> Alert,
    ) -> Option<AlertTransition> {
        let firing = |change, started_at_ms| Emission {
            change,
            status: AlertStatus::Firing,
            started_at_ms,
            ended_at_ms: None,
            sent_at_ms: context.now_ms,
        };
        match (self.entries.get_mut(fingerprint), reading) {
            (None, Reading::Breaching) if context.for_ms <= 0 => {
                Some(self.fire(fingerprint, build(firing(AlertChange::Fired, context.stream_ms)), context))
            }
            (None, Reading::Breaching) => {
                self.entries.insert(fingerprint.to_string(), AlertState::Pending { since_ms: context.stream_ms });
                None
            }
            (None, _) => None,
            (Some(AlertState::Pending { since_ms }), Reading::Breaching) => {
                if context.stream_ms - *since_ms >= context.for_ms {
                    Some(self.fire(fingerprint, build(firing(AlertChange::Fired, context.stream_ms)), context))
                } else {
                    None
                }
            }
            // The breach must hold continuously: anything else starts the wait over.
            (Some(AlertState::Pending { .. }), _) => {
                self.entries.remove(fingerprint);
                None
            }
            (Some(AlertState::Firing { alert, .. }), Reading::Recovered | Reading::Insufficient { covered: true }) => {
                let emission = Emission {
                    change: AlertChange::Resolved,
                    status: AlertStatus::Resolved,
                    started_at_ms: alert.started_at,
                    ended_at_ms: Some(context.stream_ms),
                    sent_at_ms: context.now_ms,
                };
                self.entries.remove(fingerprint);
                Some(AlertTransition { change: AlertChange::Resolved, alert: build(emission) })
            }
            (Some(AlertState::Firing { alert: last, last_sent_ms, evaluated_in }), _) => {
                *evaluated_in = context.generation;
                if context.now_ms - *last_sent_ms < context.renotify_ms {
                    return None;
                }
                let alert = build(firing(AlertChange::Renotified, last.started_at));
                *last_sent_ms = context.now_ms;
                **last = alert.clone();
                Some(AlertTransition { change: AlertChange::Renotified, alert })
            }
        }
    }

    fn fire(&mut self, fingerprint: &str, alert: Alert, context: StepContext) -> AlertTransition {
        let state = AlertState::Firing {
            alert: Box::new(alert.clone()),
            last_sent_ms: context.now_ms,
            evaluated_in: context.generation,
        };
        self.entries.insert(fingerprint.to_string(), state);
        AlertTransition { change: AlertChange::Fired, alert }
    }

    /// Firing alerts no evaluation of `generation` judged (restored alerts of series not seen
    /// since the restart, or of rules no longer configured), sorted by fingerprint.
    pub(crate) fn unjudged_firing(&self, generation: u64) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self
            .entries
            .values()
            .filter_map(|state| match state {
                AlertState::Firing { alert, evaluated_in, .. } if *evaluated_in != generation => {
                    Some(alert.as_ref().clone())
                }
                _ => None,
            })
            .collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        alerts
    }

    /// Resolves a firing alert that no rule judges any more, as of `ended_at_ms`.
    pub(crate) fn resolve_orphan(
        &mut self,
        fingerprint: &str,
        ended_at_ms: i64,
        now_ms: i64,
        why: &str,
    ) -> Option<AlertTransition> {
        let Some(AlertState::Firing { alert, .. }) = self.entries.remove(fingerprint) else {
            return None;
        };
        let summary = format!("{} ({why})", alert.summary);
        let alert = Alert {
            status: AlertStatus::Resolved,
            ended_at: Some(ended_at_ms),
            sent_at: now_ms,
            observed_value: f64::NAN,
            summary,
            ..*alert
        };
        Some(AlertTransition { change: AlertChange::Resolved, alert })
    }
}
