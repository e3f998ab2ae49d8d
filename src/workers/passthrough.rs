//! The passthrough worker: re-produces every message of one topic to another, unchanged.
//!
//! It does no work of its own, so its throughput is the bus's: consuming, decoding (every message
//! is checked against its schema; garbage goes to the DLQ), producing with `acks=all`, and
//! committing only after the copy is durable. `frontier bench bus` compares it with a bare
//! librdkafka loop.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Shared, WorkerConfig};
use crate::bus::{
    BusError, ConsumerLoop, HandlerError, Inbound, LoopOptions, LoopReport, Outbound, SchemaCatalog, Worker,
};
use crate::config::{InvalidSetting, topic_named};

/// `[workers.passthrough]`: consumes one topic and re-produces every message to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassthroughSettings {
    /// Topic to consume.
    pub input_topic: String,
    /// Topic to re-produce to.
    pub output_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.passthrough`.
    pub group_id: Option<String>,
    /// A simulated cost: each instance spends this long on every message, one message at a
    /// time, so its capacity is `1 / work_per_message` messages per second. For benchmarks and
    /// the autoscaling demo, where the work, not the machine's cores, should set the size a
    /// group needs. 0 (the default) copies at the bus's speed.
    #[serde(with = "humantime_serde")]
    pub work_per_message: Duration,
}

impl Default for PassthroughSettings {
    fn default() -> Self {
        PassthroughSettings {
            input_topic: "frontier.requests".into(),
            output_topic: "frontier.passthrough".into(),
            group_id: None,
            work_per_message: Duration::ZERO,
        }
    }
}

impl WorkerConfig for PassthroughSettings {
    const SECTION: &'static str = "passthrough";
    const NAME: &'static str = "passthrough";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        topic_named("input_topic", &self.input_topic)?;
        topic_named("output_topic", &self.output_topic)?;
        if self.input_topic == self.output_topic {
            return Err(InvalidSetting::new("output_topic", "must differ from input_topic (it would loop)"));
        }
        Ok(())
    }
}

/// `frontier run passthrough`: copies `input_topic` to `output_topic` until `shutdown`.
pub async fn run(
    shared: &Shared,
    settings: &PassthroughSettings,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, BusError> {
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), settings.input_topics());
    let worker = Arc::new(Passthrough::new(&settings.output_topic).with_work(settings.work_per_message));
    ConsumerLoop::new(&shared.kafka, options, worker, catalog)?.run(shutdown).await
}

/// Copies messages to `output_topic`, keeping key and value bytes.
pub struct Passthrough {
    output_topic: Arc<str>,
    /// The simulated cost per message (see [`PassthroughSettings::work_per_message`]).
    work: Duration,
    /// Held while a message's simulated work runs: one at a time.
    working: tokio::sync::Mutex<()>,
}

impl Passthrough {
    /// A passthrough to `output_topic`.
    pub fn new(output_topic: &str) -> Self {
        Passthrough {
            output_topic: Arc::from(output_topic),
            work: Duration::ZERO,
            working: tokio::sync::Mutex::new(()),
        }
    }

    /// The same, spending `work` on every message, one at a time.
    #[must_use]
    pub fn with_work(mut self, work: Duration) -> Self {
        self.work = work;
        self
    }
}

impl Worker for Passthrough {
    fn name(&self) -> &'static str {
        PassthroughSettings::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        if !self.work.is_zero() {
            let _turn = self.working.lock().await;
            tokio::time::sleep(self.work).await;
        }
        Ok(vec![Outbound::new(self.output_topic.clone(), message.key.clone(), message.payload.clone())])
    }
}
