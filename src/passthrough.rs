//! The passthrough worker: re-produces every message of one topic to another, unchanged.
//!
//! It does no work of its own, so its throughput is the bus's: consuming, decoding (every message
//! is checked against its schema; garbage goes to the DLQ), producing with `acks=all`, and
//! committing only after the copy is durable. `frontier bench bus` compares it with a bare
//! librdkafka loop.

use std::sync::Arc;

use crate::bus::{HandlerError, Inbound, Outbound, Worker};

/// Copies messages to `output_topic`, keeping key and value bytes.
pub struct Passthrough {
    output_topic: Arc<str>,
}

impl Passthrough {
    /// A passthrough to `output_topic`.
    pub fn new(output_topic: &str) -> Self {
        Passthrough { output_topic: Arc::from(output_topic) }
    }
}

impl Worker for Passthrough {
    fn name(&self) -> &'static str {
        "passthrough"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        Ok(vec![Outbound::new(self.output_topic.clone(), message.key.clone(), message.payload.clone())])
    }
}
