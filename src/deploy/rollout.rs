//! Restarting a release's workers without a gap in consumption.
//!
//! - Local instances (the autoscaler's local actuator: `frontier run <worker>` processes recorded
//!   in its state folder): one at a time, a replacement starts, and only once the group has
//!   one member more and is stable again does the old instance get SIGTERM (it drains, commits
//!   and leaves). The group never runs fewer instances than before, so nothing waits unserved.
//! - Kubernetes: each worker's Deployment gets new pod-template annotations, as
//!   `kubectl rollout restart` does; the Deployment's own strategy (maxSurge 1, maxUnavailable
//!   0 in `ops/k8s/`) does the same one-at-a-time surge.
//!
//! The gateway and the asset origin are no group members: they are left to their load
//! balancer's rollout (two local gateways cannot share one port).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::DeployError;
use crate::autoscale::{GroupSample, LagSampler};
use crate::settings::Settings;
use crate::workers::WorkerGroup;
use crate::workers::autoscaler::{ActuatorError, KubernetesDeployments, LocalProcesses};

/// How often the group is looked at while an instance joins or leaves.
const POLL: Duration = Duration::from_millis(250);

/// One instance replaced.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    /// The worker.
    pub worker: String,
    /// The instance that left.
    pub old: String,
    /// The one that took its place.
    pub new: String,
    /// From the replacement's start until the group was stable with it.
    pub joined_ms: u64,
    /// From the old instance's SIGTERM until it had exited.
    pub drained_ms: u64,
}

/// Replaces every local instance of the groups in `only` (every group when empty), one at a
/// time. `program` is the `frontier` binary the replacements run (the new release's), `env`
/// what they get besides this process's environment. Each join may take `patience`.
pub async fn restart_local(
    settings: &Settings,
    program: PathBuf,
    env: Vec<(String, String)>,
    only: &[String],
    patience: Duration,
    shutdown: &CancellationToken,
) -> Result<Vec<Replaced>, DeployError> {
    let local = &settings.workers.autoscaler.local;
    let actuator = LocalProcesses::open(local, program, env).map_err(|e| DeployError::Rollout(e.to_string()))?;
    let sampler = Arc::new(LagSampler::new(&settings.kafka, settings.kafka.request_timeout)?);
    let drain_limit = local.stop_timeout + Duration::from_secs(10);
    let mut replaced = Vec::new();
    for group in settings.worker_groups() {
        if !only.is_empty() && !only.iter().any(|name| name == group.worker) {
            continue;
        }
        for old in actuator.instances(group.worker) {
            if shutdown.is_cancelled() {
                return Err(DeployError::Rollout("interrupted; the instances restarted so far stay".into()));
            }
            let before = sample(&sampler, &group).await?.members;
            let started = Instant::now();
            let new = actuator.start_replacement(group.worker).map_err(|e| DeployError::Rollout(e.to_string()))?;
            tracing::info!(worker = group.worker, old = %old.id, new = %new.id, members = before, "replacement started");
            loop {
                let now = sample(&sampler, &group).await?;
                if now.members > before && now.state == "Stable" {
                    break;
                }
                let crashed = actuator.reap().map_err(|e| DeployError::Rollout(e.to_string()))?;
                if crashed.iter().any(|crash| crash.instance.id == new.id) {
                    return Err(DeployError::Rollout(format!(
                        "the replacement {} of {} exited before joining its group (log: {}/logs/{}.log); {} keeps running",
                        new.id,
                        group.worker,
                        local.state_dir.display(),
                        new.id,
                        old.id
                    )));
                }
                if started.elapsed() > patience || shutdown.is_cancelled() {
                    actuator.stop(&new.id);
                    return Err(DeployError::Rollout(format!(
                        "the replacement {} of {} did not join group {} within {patience:?} (members {}, state {}); \
                         it was stopped and {} keeps running",
                        new.id, group.worker, group.group_id, now.members, now.state, old.id
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
            let joined = started.elapsed();
            let stopping = Instant::now();
            actuator.stop(&old.id);
            while actuator.knows(&old.id) {
                actuator.reap().map_err(|e| DeployError::Rollout(e.to_string()))?;
                if stopping.elapsed() > drain_limit {
                    return Err(DeployError::Rollout(format!("{} did not exit within {drain_limit:?}", old.id)));
                }
                tokio::time::sleep(POLL).await;
            }
            let drained = stopping.elapsed();
            tracing::info!(worker = group.worker, old = %old.id, new = %new.id, ?joined, ?drained, "instance replaced");
            replaced.push(Replaced {
                worker: group.worker.to_owned(),
                old: old.id,
                new: new.id,
                joined_ms: u64::try_from(joined.as_millis()).unwrap_or(u64::MAX),
                drained_ms: u64::try_from(drained.as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
    Ok(replaced)
}

/// Restarts every worker Deployment of the groups in `only` (all when empty) through
/// `deployments`; returns the workers whose Deployment was patched. A worker without a
/// Deployment is skipped (not every cluster runs every worker); any other refusal stops the
/// rollout.
pub async fn restart_kubernetes(
    deployments: &KubernetesDeployments,
    groups: &[WorkerGroup],
    only: &[String],
    config_hash: &str,
) -> Result<Vec<String>, DeployError> {
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut restarted = Vec::new();
    for group in groups {
        if !only.is_empty() && !only.iter().any(|name| name == group.worker) {
            continue;
        }
        match deployments.restart(group.worker, config_hash, &at).await {
            Ok(_) => restarted.push(group.worker.to_owned()),
            Err(ActuatorError::NoDeployment { .. }) => {
                tracing::info!(worker = group.worker, "no Deployment: not restarted");
            }
            Err(error) => return Err(DeployError::Rollout(error.to_string())),
        }
    }
    Ok(restarted)
}

/// The group now, read on a blocking thread (the sampler's calls block).
async fn sample(sampler: &Arc<LagSampler>, group: &WorkerGroup) -> Result<GroupSample, DeployError> {
    let (sampler, id, topics) = (sampler.clone(), group.group_id.clone(), group.topics.clone());
    tokio::task::spawn_blocking(move || sampler.sample(&id, &topics))
        .await
        .map_err(|e| DeployError::Rollout(format!("the group sampler stopped: {e}")))?
        .map_err(|e| DeployError::Rollout(e.to_string()))
}
