//! No message, however crafted, stops a consumer group. Each test sends the workers, run as users
//! run them (`frontier run <worker>` processes with the development config), one of the messages
//! that used to stop a worker or hold up its group, then a normal message, and checks that the
//! bad one is answered with an error or dead-lettered with its reason, that the normal one is
//! answered, and that the worker is still running (no restart loop).
//!
//! Needs the local stack (`ops/stack up`) and, for the inference batcher, the model
//! (`ops/models`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

#[path = "../common/mod.rs"]
mod common;
mod inference;
mod serve;
mod sla;
mod warmer;

use std::time::Duration;

use common::*;
use frontier::bus::dlq::header;
use frontier::settings::Settings;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde_json::Value;

/// A dead letter as the DLQ consumer sees it.
#[derive(Debug)]
pub struct DeadLetter {
    /// `frontier.error.kind`.
    pub kind: String,
    /// `frontier.error.message`.
    pub reason: String,
    /// `frontier.payload`, when the value is not the whole original.
    pub payload_note: Option<String>,
    /// Bytes of the value.
    pub bytes: usize,
}

/// The first `count` dead letters of `dlq` (waiting up to the patience of a worker's output).
pub fn dead_letters(settings: &Settings, dlq: &str, count: usize) -> Vec<DeadLetter> {
    read_topic(settings, dlq, count, common::process::PATIENCE)
        .iter()
        .map(|m: &OwnedMessage| DeadLetter {
            kind: common::header(m, header::ERROR_KIND).unwrap_or_default(),
            reason: common::header(m, header::ERROR_MESSAGE).unwrap_or_default(),
            payload_note: common::header(m, header::PAYLOAD),
            bytes: m.payload().map_or(0, <[u8]>::len),
        })
        .collect()
}

/// Every record of `topic` decoded to JSON, waiting for at least `count`.
pub fn records(settings: &Settings, topic: &str, count: usize) -> Vec<Value> {
    decoded_json(&catalog(), &read_topic(settings, topic, count, common::process::PATIENCE))
}

/// Raw bytes to `topic`, with a producer that accepts records up to 2 MB (the broker's own
/// limit still applies), as a hostile client would configure it.
pub async fn produce_large(settings: &Settings, topic: &str, key: &str, value: Vec<u8>) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = frontier::bus::kafka::producer_config(&settings.kafka)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    producer
        .send(FutureRecord::to(topic).key(key).payload(&value), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("the broker takes the record");
}
