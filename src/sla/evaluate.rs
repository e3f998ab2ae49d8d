//! [`SlaMonitor::evaluate`]: judge every alert on every series it applies to, step the alert
//! book, and build the messages that are due.

use super::alert::{AlertChange, AlertTransition};
use super::book::{Emission, StepContext};
use super::config::SliWindow;
use super::monitor::SlaMonitor;
use super::rules::{AlertDefinition, Check, ExemplarKind, Reading, Verdict};
use super::series::{Series, StreamPoint, WindowSli};
use super::template::{SummaryValues, relation};
use crate::records::{Alert, RequestStatus};

impl SlaMonitor {
    /// Judges every alert as of the stream time and returns the messages to send, in a
    /// deterministic order; `now_ms` is the processing clock (for `sent_at` and re-notification).
    /// Call it every second and after bursts; calling it more often changes nothing but cost.
    pub fn evaluate(&mut self, now_ms: i64) -> Vec<AlertTransition> {
        self.generation += 1;
        self.clock.follow_processing_clock(now_ms);
        let mut transitions = Vec::new();
        if let Some(at) = self.stream_point() {
            for id in 0..self.series.list.len() {
                self.evaluate_series(id, at, now_ms, &mut transitions);
            }
            self.evict_quiet_series(at.now_ms);
            self.prune_restored(at.now_ms);
        }
        self.evaluate_signals(now_ms, &mut transitions);
        self.settle_unjudged(now_ms, &mut transitions);
        transitions
    }

    fn evaluate_series(&mut self, id: usize, at: StreamPoint, now_ms: i64, out: &mut Vec<AlertTransition>) {
        let needed = self.windows_needed(&self.series.list[id]);
        let mut slis: [Option<WindowSli>; SliWindow::ALL.len()] = Default::default();
        for window in SliWindow::ALL {
            if let Some(with_latency) = needed[window.position()] {
                slis[window.position()] =
                    Some(self.series.list[id].window_sli(window, at, with_latency, &mut self.scratch));
            }
        }
        let series = &self.series.list[id];
        for alert in &series.alerts {
            let definition = &self.definitions[alert.definition];
            let verdict = match &definition.check {
                Check::Threshold(rule) => match &slis[rule.window.position()] {
                    Some(sli) => {
                        let short = rule.short_window.and_then(|window| slis[window.position()].as_ref());
                        rule.judge_windows(sli, short, definition)
                    }
                    None => continue,
                },
                Check::BurnRate(burn) => match series.slos.iter().find(|slo| slo.slo == burn.slo) {
                    Some(slo) => burn.judge(&slo.ring, at.now_ms, at.observed_since(series), definition),
                    None => continue,
                },
            };
            let context = StepContext {
                stream_ms: at.now_ms,
                now_ms,
                for_ms: definition.for_ms,
                renotify_ms: self.renotify_ms,
                generation: self.generation,
            };
            let exemplar_limit = self.config.exemplars;
            let build = |emission: Emission| {
                build_alert(definition, series, &alert.fingerprint, &verdict, emission, at, exemplar_limit)
            };
            if let Some(transition) = self.book.step(&alert.fingerprint, verdict.reading, context, build) {
                out.push(transition);
            }
        }
    }

    /// Forgets series silent for longer than every window: all their windows are empty, so
    /// their alerts have resolved. Keeps memory bounded as kinds come and go.
    fn evict_quiet_series(&mut self, stream_ms: i64) {
        for id in (0..self.series.list.len()).rev() {
            let series = &self.series.list[id];
            let quiet = series.last_event_ms < stream_ms - self.retention_ms;
            if quiet && !series.alerts.iter().any(|alert| self.book.is_active(&alert.fingerprint)) {
                self.series.remove(id);
            }
        }
    }

    /// Firing alerts no series judged: restored alerts of series this monitor has not seen
    /// since its restart are held (another instance may own the series, or its traffic has not
    /// arrived yet); alerts whose rule is gone or no longer applies are resolved.
    fn settle_unjudged(&mut self, now_ms: i64, out: &mut Vec<AlertTransition>) {
        for alert in self.book.unjudged_firing(self.generation) {
            match self.signal_alert_held(&alert) {
                Some(true) => continue,
                Some(false) => {
                    let why = "resolved: its rule no longer covers this subject";
                    if let Some(transition) = self.book.resolve_orphan(&alert.fingerprint, now_ms, now_ms, why) {
                        out.push(transition);
                    }
                    continue;
                }
                None => {}
            }
            let (service, kind) = (label(&alert, "service"), label(&alert, "kind"));
            let still_defined = self.definitions.iter().any(|definition| {
                definition.name == alert.name
                    && definition.applies_to(service, kind)
                    && definition.fingerprint_for(service, kind) == alert.fingerprint
            });
            if still_defined && self.series.find(service, kind).is_none() {
                continue;
            }
            let ended_at = self.clock.now().unwrap_or(now_ms);
            let why = "resolved: its rule is no longer configured for this series";
            if let Some(transition) = self.book.resolve_orphan(&alert.fingerprint, ended_at, now_ms, why) {
                out.push(transition);
            }
        }
    }
}

fn label<'a>(alert: &'a Alert, name: &str) -> &'a str {
    alert.labels.get(name).map(String::as_str).unwrap_or("")
}

/// The message for one step of one alert on one series.
fn build_alert(
    definition: &AlertDefinition,
    series: &Series,
    fingerprint: &str,
    verdict: &Verdict<'_>,
    emission: Emission,
    at: StreamPoint,
    exemplar_limit: usize,
) -> Alert {
    let subject = format!("{} {}", series.service, series.kind);
    let values = SummaryValues {
        name: &definition.name,
        service: &series.service,
        kind: &series.kind,
        subject: &subject,
        sli: definition.sli_name,
        value: verdict.unit.format(verdict.observed),
        comparison: relation(verdict.observed, verdict.threshold),
        threshold: verdict.unit.format(verdict.threshold),
        window: verdict.window,
        short_window: verdict.short_window,
        objective: definition.objective_text.clone(),
        severity: definition.severity.as_str(),
    };
    let mut summary = definition.summary.render(&values);
    if emission.change == AlertChange::Resolved && matches!(verdict.reading, Reading::Insufficient { .. }) {
        summary.push_str(&format!(
            " (resolved: {} events in the window, fewer than the {} needed to judge)",
            verdict.events, definition.min_events
        ));
    }
    Alert {
        fingerprint: fingerprint.to_string(),
        name: definition.name.clone(),
        severity: definition.severity,
        status: emission.status,
        labels: definition.labels_for(&series.service, &series.kind),
        observed_value: verdict.observed,
        threshold: verdict.threshold,
        window: verdict.window.to_string(),
        started_at: emission.started_at_ms,
        ended_at: emission.ended_at_ms,
        summary,
        runbook_url: definition.runbook_url.clone(),
        exemplars: exemplars(definition, series, at, exemplar_limit),
        sent_at: emission.sent_at_ms,
    }
}

/// Up to `limit` example request ids from the alert's window (for SLOs, the shortest short
/// window rounded up to a ring window, at most the 6h the histogram rings keep).
fn exemplars(definition: &AlertDefinition, series: &Series, at: StreamPoint, limit: usize) -> Vec<String> {
    let window = match &definition.check {
        Check::Threshold(rule) => rule.window,
        Check::BurnRate(burn) => match burn.pairs.iter().map(|pair| pair.short_minutes).min().unwrap_or(5) {
            ..=1 => SliWindow::OneMinute,
            2..=5 => SliWindow::FiveMinutes,
            6..=60 => SliWindow::OneHour,
            _ => SliWindow::SixHours,
        },
    };
    let (ring, span) = series.span(window, at);
    match definition.exemplars {
        ExemplarKind::Slowest => ring.slowest(span, limit),
        ExemplarKind::Failed(only) => {
            ring.failed(span, limit, |status: RequestStatus| only.is_none_or(|wanted| wanted == status))
        }
    }
}
