//! The cluster's fault switches: brokers killed and started and PostgreSQL restarted through
//! `ops/stack`, network faults through toxiproxy's API, partition leaders from metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

use super::load::Quiet;
use crate::bus::KafkaSettings;
use crate::bus::kafka;

/// `ops/stack`'s control subcommands.
#[derive(Debug, Clone)]
pub(super) struct StackControl {
    pub script: PathBuf,
}

impl StackControl {
    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::process::Command::new(&self.script)
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {} {}", self.script.display(), args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "{} {} failed: {}{}",
                self.script.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// SIGKILLs cluster node `node`.
    pub async fn kill_broker(&self, node: i32) -> anyhow::Result<()> {
        self.run(&["broker", &node.to_string(), "kill"]).await.map(drop)
    }

    /// Starts cluster node `node` and waits until it is back in the cluster.
    pub async fn start_broker(&self, node: i32) -> anyhow::Result<()> {
        self.run(&["broker", &node.to_string(), "start"]).await.map(drop)
    }

    /// The node id of the active controller.
    pub async fn quorum_leader(&self) -> anyhow::Result<i32> {
        let out = self.run(&["quorum", "leader"]).await?;
        out.parse().with_context(|| format!("`ops/stack quorum leader` printed {out:?}, not a node id"))
    }

    /// Restarts PostgreSQL (fast shutdown) and waits until it accepts connections.
    pub async fn restart_postgres(&self) -> anyhow::Result<()> {
        self.run(&["restart", "postgres"]).await.map(drop)
    }
}

/// The brokers leading `topic`'s partitions, with how many each leads.
pub(super) fn partition_leaders(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<BTreeMap<i32, usize>> {
    let consumer: BaseConsumer<Quiet> = kafka::base_config(kafka).create_with_context(Quiet)?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut leaders = BTreeMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        *leaders.entry(partition.leader()).or_insert(0) += 1;
    }
    Ok(leaders)
}

/// toxiproxy's HTTP API, with one proxy per broker (`kafka-1` .. `kafka-3`).
#[derive(Debug, Clone)]
pub(super) struct Toxiproxy {
    pub base: String,
    pub http: reqwest::Client,
}

/// The proxies `ops/stack up --brokers 3` creates.
const PROXIES: [&str; 3] = ["kafka-1", "kafka-2", "kafka-3"];

impl Toxiproxy {
    /// Fails, saying how to start it, when toxiproxy or its proxies are missing.
    pub async fn check(&self) -> anyhow::Result<()> {
        let proxies: serde_json::Value = self
            .http
            .get(format!("{}/proxies", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| {
                format!("toxiproxy does not answer at {} (start it: `ops/stack up --brokers 3`)", self.base)
            })?
            .json()
            .await?;
        for proxy in PROXIES {
            if proxies.get(proxy).is_none() {
                bail!("toxiproxy has no proxy {proxy} (recreate them: `ops/stack up --brokers 3`)");
            }
        }
        self.clear().await
    }

    /// Adds the same toxic to both directions of every broker's proxy.
    pub async fn everywhere(&self, name: &str, kind: &str, attributes: serde_json::Value) -> anyhow::Result<()> {
        for proxy in PROXIES {
            for stream in ["upstream", "downstream"] {
                let body = json!({"name": format!("{name}-{stream}"), "type": kind, "stream": stream,
                                  "toxicity": 1.0, "attributes": attributes});
                self.http
                    .post(format!("{}/proxies/{proxy}/toxics", self.base))
                    .json(&body)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .with_context(|| format!("adding toxic {name} to {proxy}"))?;
            }
        }
        Ok(())
    }

    /// Removes every toxic from every proxy (toxiproxy's own reset, which also re-enables a
    /// disabled proxy; the stack's toxiproxy holds only the brokers' proxies).
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/reset", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("resetting toxiproxy at {}", self.base))?;
        Ok(())
    }
}
