//! The faults themselves: how each scenario breaks its part of the pipeline, and heals it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;

use super::Scenario;
use super::cluster::partition_leaders;
use super::fleet::Fleet;
use super::stage::{PARTITIONS, Run, Scene};

/// What a fault did, and to which node (for the heal).
pub(super) struct Injected {
    pub what: String,
    pub node: Option<i32>,
}

impl Run {
    /// Breaks the scene's part of the pipeline.
    pub(super) async fn inject(&self, scene: &Scene<'_>, fleet: &mut Fleet) -> anyhow::Result<Injected> {
        let mut node = None;
        let what = match scene.scenario {
            Scenario::BrokerKill => {
                let leaders = partition_leaders(&self.settings.kafka, &scene.topics.requests)?;
                let controller = self.stack.quorum_leader().await?;
                let (victim, led) = leaders
                    .iter()
                    .filter(|(broker, _)| **broker != controller)
                    .max_by_key(|(_, count)| **count)
                    .or_else(|| leaders.iter().max_by_key(|(_, count)| **count))
                    .map(|(b, c)| (*b, *c))
                    .context("the requests topic has no partition leaders")?;
                self.stack.kill_broker(victim).await?;
                node = Some(victim);
                format!(
                    "SIGKILL broker {victim}, leader of {led} of {PARTITIONS} request partitions (controller: {controller})"
                )
            }
            Scenario::ControllerLoss => {
                let controller = self.stack.quorum_leader().await?;
                self.stack.kill_broker(controller).await?;
                node = Some(controller);
                format!("SIGKILL node {controller}, the active controller (and a broker)")
            }
            Scenario::WorkerKill => {
                fleet.kill("serve-1")?;
                "SIGKILL serve-1 (of 2 serving instances)".into()
            }
            Scenario::WorkerZombie => {
                fleet.signal("serve-1", libc::SIGSTOP)?;
                format!("SIGSTOP serve-1 (of 2), session timeout {:?}", self.options.session_timeout)
            }
            Scenario::RedisKill => {
                self.redis()?.kill();
                format!("SIGKILL Redis on port {}", self.options.redis_port)
            }
            Scenario::PostgresRestart => {
                let began = Instant::now();
                self.stack.restart_postgres().await?;
                format!(
                    "PostgreSQL restarted (fast shutdown), accepting again after {:.1} s",
                    began.elapsed().as_secs_f64()
                )
            }
            Scenario::NetworkLatency => {
                self.toxiproxy
                    .everywhere("latency", "latency", serde_json::json!({"latency": 250, "jitter": 25}))
                    .await?;
                "toxiproxy latency 250 ms (jitter 25 ms) each way on every broker connection of every worker".into()
            }
            Scenario::NetworkPartition => {
                self.toxiproxy.everywhere("partition", "timeout", serde_json::json!({"timeout": 0})).await?;
                "toxiproxy drops every byte both ways between the workers and all three brokers".into()
            }
            Scenario::DiskFull => {
                let disk = scene.disk.context("the disk-full scenario has no small disk")?;
                let filled = disk.fill()?;
                format!("disk-cache filesystem ({} tmpfs) filled with {filled} bytes", disk.size)
            }
            Scenario::PoisonFlood => {
                scene.load.poison.store(true, Ordering::Relaxed);
                "every 10th request replaced by garbage or a crafted hostile message".into()
            }
        };
        Ok(Injected { what, node })
    }

    /// Undoes what [`Run::inject`] broke; says how, or nothing when there is nothing to say.
    pub(super) async fn heal(&self, scene: &Scene<'_>, fleet: &mut Fleet, fault: &Injected) -> anyhow::Result<String> {
        Ok(match scene.scenario {
            Scenario::BrokerKill | Scenario::ControllerLoss => {
                let node = fault.node.context("which node the fault killed")?;
                let controller = self.stack.quorum_leader().await.map_or("unknown".into(), |c| c.to_string());
                self.stack.start_broker(node).await?;
                format!("controller during the fault: {controller}; node {node} restarted and back in the cluster")
            }
            Scenario::WorkerKill => {
                fleet.restart("serve-1")?;
                "a replacement serve-1 started".into()
            }
            Scenario::WorkerZombie => {
                fleet.signal("serve-1", libc::SIGCONT)?;
                "SIGCONT serve-1".into()
            }
            Scenario::RedisKill => {
                self.redis()?.start()?;
                "Redis restarted (empty)".into()
            }
            Scenario::NetworkLatency | Scenario::NetworkPartition => {
                self.toxiproxy.clear().await?;
                "toxics removed".into()
            }
            Scenario::DiskFull => {
                scene.disk.context("the disk-full scenario has no small disk")?.empty()?;
                "filler removed".into()
            }
            Scenario::PoisonFlood => {
                scene.load.poison.store(false, Ordering::Relaxed);
                String::new()
            }
            Scenario::PostgresRestart => String::new(),
        })
    }
}
