//! The one trait every worker implements. Consuming, decoding, committing, dead-lettering and
//! shutdown live in the bus ([`super::ConsumerLoop`]); a worker only turns a message into outputs.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use apache_avro::types::Value;

use super::codec::{CodecError, DirectError, Identified};
use super::outputs::Refusal;
use crate::records::Record;

/// A consumed message whose envelope checked out (single-object marker, known fingerprint), as
/// handed to a worker. The body is decoded on first use, so a worker that only routes bytes
/// (the passthrough) pays nothing for it; a body that fails to decode rejects the message.
#[derive(Debug)]
pub struct Inbound {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// Broker or producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The value exactly as it was on the wire (single-object encoded).
    pub payload: Vec<u8>,
    /// The writer and current versions of the value's schema.
    pub schema: Identified,
    value: OnceLock<Value>,
}

impl Inbound {
    pub(super) fn new(
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        timestamp_ms: Option<i64>,
        payload: Vec<u8>,
        schema: Identified,
    ) -> Self {
        Inbound { topic, partition, offset, key, timestamp_ms, payload, schema, value: OnceLock::new() }
    }

    /// The value, decoded and resolved to the current version of its schema.
    pub fn value(&self) -> Result<&Value, HandlerError> {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let value = self.schema.decode(&self.payload).map_err(|e| HandlerError::rejected(e.kind(), e.to_string()))?;
        Ok(self.value.get_or_init(|| value))
    }

    /// Whether the value is a `T` (its schema's current version is `T`'s record).
    pub fn is<T: Record>(&self) -> bool {
        self.schema.reader.name == T::NAME
    }

    /// The value as its record type; a value of another record, or one that does not fit,
    /// rejects the message.
    pub fn record<T: Record>(&self) -> Result<T, HandlerError> {
        if !self.is::<T>() {
            return Err(HandlerError::rejected(
                "unexpected_schema",
                format!("{} is not a {}", self.schema.reader.name, T::NAME),
            ));
        }
        // Straight from the bytes: no Avro value tree in between (see `codec::direct`).
        self.schema.deserialize(&self.payload).map_err(|error| match error {
            DirectError::Decode(source) => {
                let schema = self.schema.writer.name.clone();
                let error = if source.is_limit() {
                    CodecError::OverLimit { schema, source }
                } else {
                    CodecError::Corrupt { schema, source }
                };
                HandlerError::rejected(error.kind(), error.to_string())
            }
            DirectError::Mismatch(reason) => HandlerError::rejected(
                "unexpected_schema",
                format!("{} does not fit: {reason}", self.schema.reader.name),
            ),
        })
    }
}

/// A record a worker wants produced. The bus stores the input's offset only once every outbound
/// record of that input is acknowledged.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    /// Single-object encoded value (see [`super::SchemaCatalog::encode`]).
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outbound {
    /// A record without headers.
    pub fn new(topic: impl Into<Arc<str>>, key: Option<Vec<u8>>, payload: Vec<u8>) -> Self {
        Outbound { topic: topic.into(), key, payload, headers: Vec::new() }
    }
}

/// How handling one message failed, which decides what the bus does next.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message can never succeed (invalid content): dead-letter it and move on, after
    /// sending `answer` (an error answer to the requester, checked like any output; often none).
    #[error("rejected ({kind}): {reason}")]
    Rejected { kind: &'static str, reason: String, answer: Vec<Outbound> },
    /// A dependency hiccupped: retry the same message with backoff, committing nothing meanwhile.
    #[error("transient ({kind}): {reason}")]
    Transient { kind: &'static str, reason: String },
    /// The worker cannot go on (lost its infrastructure): the loop stops with an error.
    #[error("fatal ({kind}): {reason}")]
    Fatal { kind: &'static str, reason: String },
}

impl HandlerError {
    /// A poison message. `kind` is a short, stable label for metrics and the DLQ header.
    pub fn rejected(kind: &'static str, reason: impl Into<String>) -> Self {
        HandlerError::Rejected { kind, reason: reason.into(), answer: Vec::new() }
    }
    /// A poison message whose requester can still be told why: `answer` goes out first.
    pub fn rejected_with_answer(kind: &'static str, reason: impl Into<String>, answer: Vec<Outbound>) -> Self {
        HandlerError::Rejected { kind, reason: reason.into(), answer }
    }
    /// A failure worth retrying.
    pub fn transient(kind: &'static str, reason: impl Into<String>) -> Self {
        HandlerError::Transient { kind, reason: reason.into() }
    }
    /// A failure that must stop the worker.
    pub fn fatal(kind: &'static str, reason: impl Into<String>) -> Self {
        HandlerError::Fatal { kind, reason: reason.into() }
    }
}

/// A consumer-group worker.
pub trait Worker: Send + Sync + 'static {
    /// Short name, used in metric labels and the default group id (`passthrough`).
    fn name(&self) -> &'static str;

    /// Turns one message into the records to produce. It may run concurrently with other
    /// messages (up to `bus.max_in_flight`); offsets still commit in consumption order.
    fn handle(&self, message: &Inbound) -> impl Future<Output = Result<Vec<Outbound>, HandlerError>> + Send;

    /// Outputs to send instead of `handle`'s when the bus refuses one of them for `message`
    /// (too large, an invalid or unknown topic): typically an error answer to the requester,
    /// where one can be sent. The bus dead-letters the message either way; replacements it
    /// refuses too are dropped. The default sends nothing.
    fn refused(&self, message: &Inbound, refusal: &Refusal) -> Vec<Outbound> {
        let _ = (message, refusal);
        Vec::new()
    }

    /// How often [`Worker::tick`] runs; `None` (the default) never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Periodic work not tied to one message (evaluating windows, re-notifying). Its outputs are
    /// produced like any other; as they hold no input offset, a delivery failure stops the loop.
    /// `Rejected` and `Transient` errors are logged and counted, and the next tick tries again.
    fn tick(&self, now: SystemTime) -> impl Future<Output = Result<Vec<Outbound>, HandlerError>> + Send {
        let _ = now;
        async { Ok(Vec::new()) }
    }
}
