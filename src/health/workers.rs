//! Every worker group's liveness and lag, seen from outside the workers: the group's members
//! and backlog (read without joining it, by [`LagSampler`]), and each instance's newest
//! self-report on the status topic.
//!
//! A group that never consumed is not deployed here, which is no failure. A deployed group
//! fails the check when messages wait and no member consumes them, or when it has members but
//! none of them reported within three status intervals (a loop that stopped while the client
//! kept its membership alive).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::autoscale::lag::LagSampler;
use crate::bus::{SchemaCatalog, replay};
use crate::records::WorkerStatus;
use crate::settings::Settings;

/// One worker group as the check saw it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerHealth {
    /// The worker (`serve`), as `frontier run` takes it.
    pub worker: &'static str,
    /// Its consumer group.
    pub group: String,
    /// Members of the group now.
    pub members: usize,
    /// Messages waiting over its partitions.
    pub lag: u64,
    /// How long the oldest waiting message has waited, in seconds.
    pub lag_seconds: Option<f64>,
    /// Instances that reported within three status intervals, newest report each.
    pub instances: Vec<InstanceHealth>,
    /// Whether the group is healthy, with what was seen or why it is not.
    #[serde(serialize_with = "verdict")]
    pub result: Result<String, String>,
}

/// One instance's newest self-report.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceHealth {
    /// Host and process id.
    pub instance: String,
    /// Seconds since its newest report.
    pub reported_s_ago: f64,
    /// Its lag on the partitions it owns, as it reported it.
    pub lag: Option<i64>,
}

/// `{"ok": true, "detail": ...}`: a check's result in JSON.
pub(crate) fn verdict<S: serde::Serializer>(result: &Result<String, String>, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(2))?;
    match result {
        Ok(detail) => {
            map.serialize_entry("ok", &true)?;
            map.serialize_entry("detail", detail)?;
        }
        Err(reason) => {
            map.serialize_entry("ok", &false)?;
            map.serialize_entry("detail", reason)?;
        }
    }
    map.end()
}

/// Checks every worker group of `settings` (on a blocking thread: librdkafka's calls block).
pub async fn check_workers(settings: &Settings, catalog: &SchemaCatalog, timeout: Duration) -> Vec<WorkerHealth> {
    let window = settings.bus.status_interval * 3;
    let reports = if settings.bus.status_interval.is_zero() {
        Ok(BTreeMap::new())
    } else {
        let (kafka, topic) = (settings.kafka.clone(), settings.bus.status_topic.clone());
        let since_ms = crate::clock::now_millis() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let raw = tokio::task::spawn_blocking(move || {
            replay::read_since(&kafka, &topic, since_ms, timeout).map_err(|error| error.to_string())
        })
        .await;
        raw.unwrap_or_else(|error| Err(error.to_string())).map(|values| newest_reports(catalog, values))
    };
    let (kafka, groups) = (settings.kafka.clone(), settings.worker_groups());
    let samples = tokio::task::spawn_blocking(move || {
        let sampler = LagSampler::new(&kafka, timeout).map_err(|error| error.to_string())?;
        Ok::<_, String>(
            groups.into_iter().map(|group| (sampler.sample(&group.group_id, &group.topics), group)).collect::<Vec<_>>(),
        )
    })
    .await
    .unwrap_or_else(|error| Err(error.to_string()));
    let now = crate::clock::now_millis();
    let groups = match samples {
        Ok(groups) => groups,
        Err(reason) => return vec![unreadable("*", "*", format!("cannot sample the groups: {reason}"))],
    };
    groups
        .into_iter()
        .map(|(sample, group)| {
            let sample = match sample {
                Ok(sample) => sample,
                Err(error) => return unreadable(group.worker, &group.group_id, error.to_string()),
            };
            let instances: Vec<InstanceHealth> = match &reports {
                Ok(reports) => reports
                    .values()
                    .filter(|status| status.consumer_group.as_deref() == Some(group.group_id.as_str()))
                    .map(|status| InstanceHealth {
                        instance: status.instance.clone(),
                        reported_s_ago: (now - status.occurred_at).max(0) as f64 / 1000.0,
                        lag: status.consumer_lag,
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            let (lag, members) = (sample.backlog(), sample.members);
            let result = judge(sample.exists(), members, lag, instances.len(), reports.as_ref().err(), window);
            WorkerHealth {
                worker: group.worker,
                group: group.group_id,
                members,
                lag,
                lag_seconds: sample.lag_seconds(),
                instances,
                result,
            }
        })
        .collect()
}

/// The verdict on one group.
fn judge(
    exists: bool,
    members: usize,
    lag: u64,
    reporting: usize,
    reports_unreadable: Option<&String>,
    window: Duration,
) -> Result<String, String> {
    if !exists {
        return Ok("not deployed (the group never consumed)".into());
    }
    if members == 0 {
        return if lag > 0 {
            Err(format!("{lag} message(s) wait and no instance consumes them"))
        } else {
            Ok("no instance running, nothing waiting".into())
        };
    }
    if let Some(reason) = reports_unreadable {
        return Ok(format!("{members} member(s), lag {lag} (status reports unreadable: {reason})"));
    }
    if reporting == 0 && !window.is_zero() {
        return Err(format!("{members} member(s) but none reported in the last {window:?}: stuck?"));
    }
    Ok(format!("{members} member(s), {reporting} reporting, lag {lag}"))
}

fn unreadable(worker: &'static str, group: &str, reason: String) -> WorkerHealth {
    WorkerHealth {
        worker,
        group: group.to_owned(),
        members: 0,
        lag: 0,
        lag_seconds: None,
        instances: Vec::new(),
        result: Err(reason),
    }
}

/// The newest report of each (service, instance).
fn newest_reports(catalog: &SchemaCatalog, values: Vec<Vec<u8>>) -> BTreeMap<(String, String), WorkerStatus> {
    let mut newest: BTreeMap<(String, String), WorkerStatus> = BTreeMap::new();
    for value in values {
        let Ok(status) = catalog.decode_record::<WorkerStatus>(&value) else { continue };
        let key = (status.service.clone(), status.instance.clone());
        if newest.get(&key).is_none_or(|seen| seen.occurred_at < status.occurred_at) {
            newest.insert(key, status);
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30);

    #[test]
    fn a_group_that_never_consumed_is_not_deployed_and_healthy() {
        assert!(judge(false, 0, 500, 0, None, WINDOW).is_ok());
    }

    #[test]
    fn a_backlog_nobody_consumes_fails() {
        assert!(judge(true, 0, 3, 0, None, WINDOW).unwrap_err().contains("3 message(s) wait"));
        assert!(judge(true, 0, 0, 0, None, WINDOW).is_ok(), "stopped with nothing waiting");
    }

    #[test]
    fn members_that_stopped_reporting_fail() {
        assert!(judge(true, 2, 0, 0, None, WINDOW).unwrap_err().contains("stuck"));
        assert!(judge(true, 2, 0, 2, None, WINDOW).is_ok());
    }
}
