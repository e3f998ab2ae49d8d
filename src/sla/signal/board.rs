//! [`SignalBoard`]: the latest report of every worker instance and every scaled group, and the
//! signal values they give.

use std::collections::{BTreeMap, VecDeque};

use super::config::Signal;
use crate::records::{AutoscaleDecision, ScaleAction, SlowQueryFinding, WorkerStatus};

/// Most instances and groups remembered at once; reports of further ones are dropped, so a
/// flood of made-up instance names cannot exhaust memory.
pub(crate) const MAX_SUBJECTS: usize = 10_000;

/// Most dead-letter reports kept per group within the window (a real group sends one per
/// instance every 10 s); beyond it a report's count joins the newest kept, so a flood of
/// reports costs no memory and the sum stays right.
const MAX_DEAD_LETTER_REPORTS: usize = 1_000;

/// Who a signal value is about; also the alert's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Subject {
    Group(String),
    Instance { service: String, instance: String },
    Database(String),
}

impl Subject {
    /// The labels that tell this subject's alerts apart.
    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        match self {
            Subject::Group(group) => BTreeMap::from([("group".to_string(), group.clone())]),
            Subject::Instance { service, instance } => {
                BTreeMap::from([("service".to_string(), service.clone()), ("instance".to_string(), instance.clone())])
            }
            Subject::Database(database) => BTreeMap::from([("database".to_string(), database.clone())]),
        }
    }

    /// `group frontier.serve`, `serve on host-42`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Subject::Group(group) => format!("group {group}"),
            Subject::Instance { service, instance } => format!("{service} on {instance}"),
            Subject::Database(database) => format!("database {database}"),
        }
    }

    /// The subject an alert's labels name, if they name one.
    pub(crate) fn from_labels(labels: &BTreeMap<String, String>) -> Option<Subject> {
        if let Some(group) = labels.get("group") {
            return Some(Subject::Group(group.clone()));
        }
        if let Some(database) = labels.get("database") {
            return Some(Subject::Database(database.clone()));
        }
        Some(Subject::Instance { service: labels.get("service")?.clone(), instance: labels.get("instance")?.clone() })
    }
}

#[derive(Debug, Clone)]
struct InstanceReport {
    status: WorkerStatus,
    /// Processing time it arrived: freshness is judged on the monitor's clock, so a worker
    /// with a skewed clock is neither kept alive nor declared dead by it.
    received_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct GroupScaling {
    latest: Option<(AutoscaleDecision, i64)>,
    /// `decided_at` of recent scale-ups and scale-downs, oldest first.
    actions: VecDeque<i64>,
}

/// The query analyzer's latest judged window of one database.
#[derive(Debug, Clone)]
struct DatabaseFindings {
    window_start: i64,
    window_ms: i64,
    findings: i32,
    received_ms: i64,
}

/// What is known of every subject.
#[derive(Debug, Default)]
pub(crate) struct SignalBoard {
    instances: BTreeMap<(String, String), InstanceReport>,
    groups: BTreeMap<String, GroupScaling>,
    databases: BTreeMap<String, DatabaseFindings>,
    /// Per consumer group, the dead letters its instances reported: (received, count), oldest
    /// first, only reports with some. Counts in f64: crafted reports near i64::MAX can neither
    /// overflow nor saturate a sum.
    dead_letters: BTreeMap<String, VecDeque<(i64, f64)>>,
}

/// How far back the signals that count over a window look, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// `autoscale_actions`'s.
    pub actions_ms: i64,
    /// `dead_letters`'s.
    pub dead_letters_ms: i64,
}

impl SignalBoard {
    /// Takes a worker's status; false if it was dropped for the subject limit.
    pub(crate) fn report_status(&mut self, status: WorkerStatus, now_ms: i64) -> bool {
        let key = (status.service.clone(), status.instance.clone());
        if !self.instances.contains_key(&key) && self.instances.len() >= MAX_SUBJECTS {
            return false;
        }
        if let (Some(group), Some(count)) = (&status.consumer_group, status.dead_lettered)
            && count > 0
            && (self.dead_letters.contains_key(group) || self.dead_letters.len() < MAX_SUBJECTS)
        {
            let reports = self.dead_letters.entry(group.clone()).or_default();
            let full = reports.len() >= MAX_DEAD_LETTER_REPORTS;
            match reports.back_mut() {
                Some((_, newest)) if full => *newest += count as f64,
                _ => reports.push_back((now_ms, count as f64)),
            }
        }
        self.instances.insert(key, InstanceReport { status, received_ms: now_ms });
        true
    }

    /// Takes an autoscaler decision; false if it was dropped for the subject limit.
    pub(crate) fn report_decision(&mut self, decision: AutoscaleDecision, now_ms: i64) -> bool {
        if !self.groups.contains_key(&decision.consumer_group) && self.groups.len() >= MAX_SUBJECTS {
            return false;
        }
        let scaling = self.groups.entry(decision.consumer_group.clone()).or_default();
        if decision.action != ScaleAction::Hold {
            // Decisions of one group come from one partition, so they arrive in order; keep
            // the queue sorted anyway in case a replay interleaves two autoscalers.
            let at = decision.decided_at;
            let position = scaling.actions.iter().rposition(|&seen| seen <= at).map_or(0, |p| p + 1);
            scaling.actions.insert(position, at);
        }
        let newer = scaling.latest.as_ref().is_none_or(|(latest, _)| latest.decided_at <= decision.decided_at);
        if newer {
            scaling.latest = Some((decision, now_ms));
        }
        true
    }

    /// Takes a slow-statement finding; false if it was dropped for the subject limit. The
    /// latest window of a database wins; its findings each carry the window's count.
    pub(crate) fn report_finding(&mut self, finding: &SlowQueryFinding, now_ms: i64) -> bool {
        if !self.databases.contains_key(&finding.database) && self.databases.len() >= MAX_SUBJECTS {
            return false;
        }
        let report = DatabaseFindings {
            window_start: finding.window_start,
            window_ms: (finding.window_end - finding.window_start).max(0),
            findings: finding.window_findings.max(1),
            received_ms: now_ms,
        };
        match self.databases.get_mut(&finding.database) {
            Some(known) if known.window_start > report.window_start => {}
            Some(known) if known.window_start == report.window_start => {
                known.findings = known.findings.max(report.findings);
                known.received_ms = now_ms;
            }
            _ => {
                self.databases.insert(finding.database.clone(), report);
            }
        }
        true
    }

    /// Every subject a signal can be read for, with its value; `None` when the subject's
    /// reports are stale (or carry no such figure): its alerts lose their evidence and resolve.
    pub(crate) fn values(
        &self,
        signal: Signal,
        now_ms: i64,
        stale_ms: i64,
        windows: Windows,
    ) -> Vec<(Subject, Option<f64>)> {
        let fresh = |received_ms: i64| now_ms - received_ms <= stale_ms;
        match signal {
            Signal::ConsumerLag => {
                let mut lag_by_group: BTreeMap<&str, Option<f64>> = BTreeMap::new();
                for report in self.instances.values() {
                    let Some(group) = report.status.consumer_group.as_deref() else { continue };
                    let total = lag_by_group.entry(group).or_insert(None);
                    if let (true, Some(lag)) = (fresh(report.received_ms), report.status.consumer_lag) {
                        *total = Some(total.unwrap_or(0.0) + lag as f64);
                    }
                }
                lag_by_group.into_iter().map(|(group, lag)| (Subject::Group(group.to_string()), lag)).collect()
            }
            Signal::MemoryUtilization | Signal::CpuUtilization | Signal::FdUtilization => self
                .instances
                .iter()
                .map(|((service, instance), report)| {
                    let value = fresh(report.received_ms)
                        .then(|| match signal {
                            Signal::MemoryUtilization => report.status.memory_utilization(),
                            Signal::FdUtilization => report.status.fd_utilization(),
                            _ => report.status.cpu_utilization,
                        })
                        .flatten();
                    (Subject::Instance { service: service.clone(), instance: instance.clone() }, value)
                })
                .collect(),
            Signal::AutoscaleSaturation => self
                .groups
                .iter()
                .filter_map(|(group, scaling)| {
                    let (decision, received_ms) = scaling.latest.as_ref()?;
                    let value = fresh(*received_ms).then(|| if decision.is_saturated() { 1.0 } else { 0.0 });
                    Some((Subject::Group(group.clone()), value))
                })
                .collect(),
            Signal::AutoscaleStuck => self
                .groups
                .iter()
                .filter_map(|(group, scaling)| {
                    let (decision, received_ms) = scaling.latest.as_ref()?;
                    let value = fresh(*received_ms).then(|| if decision.is_stuck() { 1.0 } else { 0.0 });
                    Some((Subject::Group(group.clone()), value))
                })
                .collect(),
            // A count over a window is never stale: no action in it is a real zero.
            Signal::AutoscaleActions => self
                .groups
                .iter()
                .map(|(group, scaling)| {
                    let recent = scaling.actions.iter().filter(|&&at| at > now_ms - windows.actions_ms).count();
                    (Subject::Group(group.clone()), Some(recent as f64))
                })
                .collect(),
            // Findings come once a window: fresh for that window plus the usual staleness.
            Signal::SlowStatements => self
                .databases
                .iter()
                .map(|(database, latest)| {
                    let fresh = now_ms - latest.received_ms <= stale_ms.saturating_add(latest.window_ms);
                    (Subject::Database(database.clone()), fresh.then_some(f64::from(latest.findings)))
                })
                .collect(),
            // Every group an instance reports for (0 when none of them dead-lettered anything),
            // and groups whose dead letters are still in the window after their instances went.
            Signal::DeadLetters => {
                let mut by_group: BTreeMap<&str, f64> = self
                    .instances
                    .values()
                    .filter_map(|report| report.status.consumer_group.as_deref())
                    .map(|group| (group, 0.0))
                    .collect();
                for (group, counts) in &self.dead_letters {
                    let recent: f64 =
                        counts.iter().filter(|(at, _)| *at > now_ms - windows.dead_letters_ms).map(|(_, n)| n).sum();
                    *by_group.entry(group).or_insert(0.0) += recent;
                }
                by_group.into_iter().map(|(group, count)| (Subject::Group(group.to_string()), Some(count))).collect()
            }
        }
    }

    /// Whether the board has heard of the subject since the monitor started.
    pub(crate) fn knows(&self, subject: &Subject) -> bool {
        match subject {
            Subject::Group(group) => {
                self.groups.contains_key(group)
                    || self.dead_letters.contains_key(group)
                    || self
                        .instances
                        .values()
                        .any(|report| report.status.consumer_group.as_deref() == Some(group.as_str()))
            }
            Subject::Instance { service, instance } => {
                self.instances.contains_key(&(service.clone(), instance.clone()))
            }
            Subject::Database(database) => self.databases.contains_key(database),
        }
    }

    /// Forgets instances silent for `forget_ms`, and actions and dead letters older than their
    /// windows, keeping subjects with an active alert (`keep`), so memory follows the live fleet.
    pub(crate) fn prune(&mut self, now_ms: i64, forget_ms: i64, windows: Windows, keep: impl Fn(&Subject) -> bool) {
        let window_ms = windows.actions_ms;
        self.instances.retain(|(service, instance), report| {
            now_ms - report.received_ms <= forget_ms
                || keep(&Subject::Instance { service: service.clone(), instance: instance.clone() })
        });
        self.groups.retain(|group, scaling| {
            while scaling.actions.front().is_some_and(|&at| at <= now_ms - window_ms) {
                scaling.actions.pop_front();
            }
            let heard = scaling.latest.as_ref().is_some_and(|(_, received_ms)| now_ms - received_ms <= forget_ms);
            heard || !scaling.actions.is_empty() || keep(&Subject::Group(group.clone()))
        });
        self.dead_letters.retain(|_, counts| {
            while counts.front().is_some_and(|(at, _)| *at <= now_ms - windows.dead_letters_ms) {
                counts.pop_front();
            }
            !counts.is_empty()
        });
        self.databases.retain(|database, latest| {
            now_ms - latest.received_ms <= forget_ms.saturating_add(latest.window_ms)
                || keep(&Subject::Database(database.clone()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(count: i64, at_ms: i64) -> WorkerStatus {
        WorkerStatus {
            service: "serve".into(),
            instance: "a-1".into(),
            consumer_group: Some("frontier.serve".into()),
            consumer_lag: None,
            rss_bytes: None,
            memory_limit_bytes: None,
            cpu_utilization: None,
            open_fds: None,
            max_fds: None,
            occurred_at: at_ms,
            busy_share: None,
            dead_lettered: Some(count),
        }
    }

    const WINDOWS: Windows = Windows { actions_ms: 1_800_000, dead_letters_ms: 300_000 };

    #[test]
    fn a_flood_of_crafted_dead_letter_reports_neither_overflows_nor_grows_without_bound() {
        let mut board = SignalBoard::default();
        for i in 0..5_000 {
            assert!(board.report_status(dead(i64::MAX / 2, i), i));
        }
        assert_eq!(board.dead_letters["frontier.serve"].len(), MAX_DEAD_LETTER_REPORTS);
        let values = board.values(Signal::DeadLetters, 5_000, 60_000, WINDOWS);
        let (_, Some(sum)) = &values[0] else { panic!("{values:?}") };
        assert!(*sum >= 2_500.0 * (i64::MAX / 2) as f64, "every count kept in the sum: {sum}");
    }
}
