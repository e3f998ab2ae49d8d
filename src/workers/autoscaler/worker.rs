//! `Autoscaler`: the controller. It reads the workers' status reports (busy share, CPU and
//! memory per instance) and, every `interval`, samples each sized group from the brokers, decides with
//! the group's policy, publishes the decision (holds included) and applies it through its
//! [`Actuator`] (local processes, whose crashed instances it replaces, or Kubernetes
//! Deployments).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::actuator::Actuator;
use super::metric;
use super::settings::AutoscalerSettings;
use crate::autoscale::{
    GroupSample, InstanceUse, LagSampler, Observation, PolicyMemory, SampleError, Verdict, decide, observe,
};
use crate::bus::{HandlerError, Inbound, Outbound, SchemaCatalog, Worker};
use crate::records::{AutoscaleDecision, ScaleAction, WorkerStatus};
use crate::workers::WorkerGroup;

/// A status report older than this many status intervals no longer speaks for an instance.
const STATUS_FRESHNESS: Duration = Duration::from_secs(30);

/// What the controller keeps of one group between ticks.
#[derive(Default)]
struct GroupState {
    /// The newest samples, oldest first (at most `window_samples`).
    window: VecDeque<GroupSample>,
    memory: PolicyMemory,
    /// The instances the group should run: the last decision's, kept while sampling fails.
    target: Option<u32>,
}

/// The latest status report of one instance.
struct InstanceStatus {
    group: Option<String>,
    at_ms: i64,
    cpu: Option<f64>,
    memory: Option<f64>,
    busy: Option<f64>,
}

/// The autoscaler worker.
pub struct Autoscaler {
    settings: AutoscalerSettings,
    groups: Vec<WorkerGroup>,
    sampler: Arc<LagSampler>,
    actuator: Arc<Actuator>,
    catalog: Arc<SchemaCatalog>,
    states: Mutex<BTreeMap<&'static str, GroupState>>,
    statuses: Mutex<HashMap<String, InstanceStatus>>,
}

impl Autoscaler {
    /// A controller sizing the groups of `groups` that `settings` has a policy for.
    pub fn new(
        settings: &AutoscalerSettings,
        groups: Vec<WorkerGroup>,
        sampler: LagSampler,
        actuator: Arc<Actuator>,
        catalog: Arc<SchemaCatalog>,
    ) -> Autoscaler {
        metric::describe();
        let groups: Vec<WorkerGroup> =
            groups.into_iter().filter(|group| settings.groups.contains_key(group.worker)).collect();
        for group in &groups {
            metric::register(group.worker);
        }
        Autoscaler {
            settings: settings.clone(),
            groups,
            sampler: Arc::new(sampler),
            actuator,
            catalog,
            states: Mutex::default(),
            statuses: Mutex::default(),
        }
    }

    fn states(&self) -> MutexGuard<'_, BTreeMap<&'static str, GroupState>> {
        // Plain data: whatever a panicking holder left is still usable.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn statuses(&self) -> MutexGuard<'_, HashMap<String, InstanceStatus>> {
        self.statuses.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// CPU and memory of `group`'s instances from their fresh status reports, the highest of
    /// each (the instance that needs relief decides), and their mean busy share.
    fn usage_of(&self, group: &str, now_ms: i64) -> InstanceUse {
        let freshness = crate::clock::duration_millis(STATUS_FRESHNESS);
        let statuses = self.statuses();
        let fresh = statuses
            .values()
            .filter(|status| status.group.as_deref() == Some(group) && now_ms - status.at_ms <= freshness);
        let mut usage = InstanceUse::default();
        let (mut busy_sum, mut busy_count) = (0.0, 0u32);
        for status in fresh {
            usage.cpu = max_of(usage.cpu, status.cpu);
            usage.memory = max_of(usage.memory, status.memory);
            if let Some(busy) = status.busy {
                busy_sum += busy;
                busy_count += 1;
            }
        }
        usage.busy_share = (busy_count > 0).then(|| busy_sum / f64::from(busy_count));
        usage
    }

    /// Samples every group (on a blocking thread: librdkafka's calls block).
    async fn sample_all(&self) -> Vec<Result<GroupSample, SampleError>> {
        let (sampler, groups) = (self.sampler.clone(), self.groups.clone());
        let sampled = tokio::task::spawn_blocking(move || {
            groups.iter().map(|group| sampler.sample(&group.group_id, &group.topics)).collect::<Vec<_>>()
        })
        .await;
        // A panic in the sampler is a bug; treat it as a failed sample of every group.
        sampled
            .unwrap_or_else(|error| self.groups.iter().map(|_| Err(SampleError::Thread(error.to_string()))).collect())
    }

    /// Decides one group, running `running` instances, from its new sample; `None` while
    /// there is nothing to decide from.
    fn decide_group(
        &self,
        group: &WorkerGroup,
        sample: GroupSample,
        running: u32,
        now_ms: i64,
    ) -> Option<(Observation, Verdict)> {
        let usage = self.usage_of(&group.group_id, now_ms);
        let mut states = self.states();
        let state = states.entry(group.worker).or_default();
        state.window.push_back(sample);
        while state.window.len() > self.settings.window_samples {
            state.window.pop_front();
        }
        let observation = observe(state.window.make_contiguous(), running, usage)?;
        // `new` kept only the groups with a policy, so the index cannot miss.
        let verdict = decide(&self.settings.groups[group.worker], &observation, &mut state.memory);
        if verdict.action != ScaleAction::Hold {
            // Rates measured across a change mix two sizes and a rebalance pause (per-instance
            // rates near 0 that would ask for the maximum): measure the new size afresh.
            let newest = state.window.pop_back();
            state.window.clear();
            state.window.extend(newest);
        }
        state.target = Some(verdict.desired);
        Some((observation, verdict))
    }

    /// Brings every group to its target (starting replacements for crashed instances, within
    /// their backoff) and records how many run.
    async fn apply_targets(&self) {
        let targets: Vec<(&'static str, u32)> =
            self.states().iter().filter_map(|(worker, state)| state.target.map(|target| (*worker, target))).collect();
        for (worker, target) in targets {
            match self.actuator.scale(worker, target).await {
                Ok(running) => ::metrics::gauge!(metric::INSTANCES, "worker" => worker).set(f64::from(running)),
                Err(error) => {
                    ::metrics::counter!(metric::ACTUATOR_ERRORS, "worker" => worker).increment(1);
                    tracing::error!(worker, %error, "could not apply the group's size");
                }
            }
        }
    }

    fn decision_output(
        &self,
        group: &WorkerGroup,
        seen: &Observation,
        verdict: &Verdict,
    ) -> Result<Outbound, HandlerError> {
        let lag_rate = match (seen.arrival_rate, seen.commit_rate) {
            (Some(arrival), Some(committed)) => arrival - committed,
            _ => 0.0,
        };
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let decision = AutoscaleDecision {
            id: uuid::Uuid::new_v4().to_string(),
            consumer_group: group.group_id.clone(),
            topic: group.topics.join(","),
            total_lag: i64::try_from(seen.backlog).unwrap_or(i64::MAX),
            lag_rate_per_s: lag_rate,
            current_instances: clamp(seen.instances),
            desired_instances: clamp(verdict.desired),
            min_instances: clamp(verdict.bounds.0),
            max_instances: clamp(verdict.bounds.1),
            action: verdict.action,
            reason: verdict.reason.clone(),
            decided_at: seen.at_ms,
            health: seen.health,
        };
        // Our own record against our own schema: a failure is a mismatched build; stop loudly.
        let payload =
            self.catalog.encode_record(&decision).map_err(|e| HandlerError::fatal("encode", e.to_string()))?;
        Ok(Outbound::new(self.settings.decisions_topic.as_str(), Some(group.group_id.clone().into_bytes()), payload))
    }
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Worker for Autoscaler {
    fn name(&self) -> &'static str {
        "autoscaler"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let status: WorkerStatus = message.record()?;
        let memory = match (status.rss_bytes, status.memory_limit_bytes) {
            (Some(rss), Some(limit)) if limit > 0 => Some(rss as f64 / limit as f64),
            _ => None,
        };
        let report = InstanceStatus {
            group: status.consumer_group,
            at_ms: status.occurred_at,
            cpu: status.cpu_utilization.filter(|cpu| cpu.is_finite()),
            memory,
            busy: status.busy_share.filter(|busy| busy.is_finite()),
        };
        let mut statuses = self.statuses();
        // Reports can arrive out of order across partitions: keep the newest.
        if statuses.get(&status.instance).is_none_or(|known| known.at_ms <= report.at_ms) {
            statuses.insert(status.instance, report);
        }
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.settings.interval)
    }

    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::epoch_millis(now);
        match self.actuator.reap() {
            Ok(crashes) => {
                for crash in crashes {
                    let kind = metric::crash_kind(crash.failed_start);
                    ::metrics::counter!(metric::CRASHES, "worker" => crash.instance.worker.clone(), "kind" => kind)
                        .increment(1);
                    tracing::warn!(worker = %crash.instance.worker, id = %crash.instance.id, pid = crash.instance.pid, kind, "an instance ended without being asked to; it will be replaced");
                }
            }
            Err(error) => tracing::error!(%error, "could not reap the instances"),
        }
        let mut outputs = Vec::new();
        let sampled = self.sample_all().await;
        for (group, sampled) in self.groups.iter().zip(sampled) {
            let running = match sampled {
                Ok(sample) => self.actuator.running(group.worker).await.map(|running| (sample, running)),
                Err(error) => {
                    // Kafka unreachable or the group's topic missing: hold the current size.
                    ::metrics::counter!(metric::SAMPLE_ERRORS, "worker" => group.worker).increment(1);
                    tracing::warn!(group = %group.group_id, %error, "cannot sample the group; holding its size");
                    continue;
                }
            };
            match running {
                Ok((sample, running)) => {
                    if let Some((seen, verdict)) = self.decide_group(group, sample, running, now_ms) {
                        let action = verdict.action.as_str();
                        ::metrics::counter!(metric::DECISIONS, "worker" => group.worker, "action" => action)
                            .increment(1);
                        if verdict.action != ScaleAction::Hold {
                            tracing::info!(group = %group.group_id, from = seen.instances, to = verdict.desired, reason = %verdict.reason, "scaling");
                        }
                        outputs.push(self.decision_output(group, &seen, &verdict)?);
                    }
                }
                Err(error) => {
                    // The API server unreachable or refusing: nothing is known of the size.
                    ::metrics::counter!(metric::ACTUATOR_ERRORS, "worker" => group.worker).increment(1);
                    tracing::error!(group = %group.group_id, %error, "cannot read the group's size; holding it");
                }
            }
        }
        self.apply_targets().await;
        Ok(outputs)
    }
}
