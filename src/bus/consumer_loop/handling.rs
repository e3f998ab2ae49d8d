//! One message's handling: the envelope check, the worker (transient failures retried), and its
//! outputs produced, or its dead letter.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::settle::is_refused_for_good;
use super::{BusError, Shared};
use crate::bus::delivery::Ticket;
use crate::bus::outputs::{Refusal, record_size};
use crate::bus::worker::{HandlerError, Inbound, Outbound, Worker};
use crate::bus::{dlq, metrics};

struct Source<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
}

impl<'a> Source<'a> {
    /// Where a handed-over message came from.
    fn of(inbound: &'a Inbound) -> Self {
        Source {
            topic: &inbound.topic,
            partition: inbound.partition,
            offset: inbound.offset,
            key: inbound.key.as_deref(),
            payload: &inbound.payload,
        }
    }
}

/// One worker's consumer loop.
/// Checks the envelope, runs the worker (retrying transient failures) and produces its outputs
/// or a dead letter. Returns `Err` only for failures that must stop the loop.
pub(super) fn handle<W: Worker>(
    shared: Arc<Shared<W>>,
    topic: Arc<str>,
    message: &BorrowedMessage<'_>,
    ticket: Arc<Ticket>,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), BusError>> + use<W> {
    let (partition, offset) = (message.partition(), message.offset());
    let key = message.key().map(<[u8]>::to_vec);
    let payload = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
    let timestamp_ms = message.timestamp().to_millis();
    async move {
        ticket.start();
        let result = match shared.catalog.identify(&payload) {
            Err(error) => {
                let source = Source { topic: &topic, partition, offset, key: key.as_deref(), payload: &payload };
                dead_letter(&shared, &source, &ticket, error.kind(), &error.to_string()).await
            }
            Ok(schema) => {
                let inbound = Inbound::new(topic, partition, offset, key, timestamp_ms, payload, schema);
                handle_with_retries(&shared, &inbound, &ticket, &shutdown).await
            }
        };
        if result.is_err() {
            // The loop is stopping because of this message: its offset must not be stored.
            ticket.abandon();
        }
        // The handling token: outputs now hold their own.
        ticket.release_handling();
        result
    }
}

/// The dead-letter kind of a message whose handling panicked.
const PANICKED: &str = "worker_panicked";

/// What a panic said, when it said it with a string (as `panic!` and overflow checks do).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

async fn handle_with_retries<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    let mut backoff = shared.options.retry_initial_backoff;
    loop {
        let handled = {
            let _busy = shared.busy.enter();
            // A worker must never panic on a message, but if one does, the message is dead-
            // lettered like any poison message: unwinding through the loop would either hang a
            // process whose other loops still run, or crash-loop the group on this offset.
            AssertUnwindSafe(shared.worker.handle(inbound)).catch_unwind().await.unwrap_or_else(|panic| {
                Err(HandlerError::rejected(PANICKED, format!("the worker panicked: {}", panic_message(&*panic))))
            })
        };
        match handled {
            Ok(outputs) => {
                return match shared.outputs.first_refused(&outputs).await {
                    None => produce_all(shared, outputs, ticket).await,
                    Some(refusal) => refuse(shared, inbound, ticket, &refusal).await,
                };
            }
            Err(HandlerError::Rejected { kind, reason, answer }) => {
                return reject(shared, inbound, ticket, kind, &reason, answer).await;
            }
            Err(HandlerError::Transient { kind, reason }) => {
                ::metrics::counter!(metrics::RETRIES, "worker" => name, "kind" => kind).increment(1);
                warn!(worker = name, topic = %inbound.topic, partition = inbound.partition, offset = inbound.offset,
                      kind, reason, ?backoff, "transient failure, retrying");
                tokio::select! {
                    () = shutdown.cancelled() => {
                        ticket.abandon();
                        return Ok(());
                    }
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(shared.options.retry_max_backoff);
            }
            Err(error @ HandlerError::Fatal { .. }) => {
                error!(worker = name, %error, "worker failed");
                return Err(BusError::Worker { worker: name, error });
            }
        }
    }
}

/// Hands every output to the producer, each holding a token of the message's ticket until the
/// broker acknowledges it.
pub(super) async fn produce_all<W: Worker>(
    shared: &Shared<W>,
    outputs: Vec<Outbound>,
    ticket: &Arc<Ticket>,
) -> Result<(), BusError> {
    for out in &outputs {
        let mut record =
            BaseRecord::<[u8], [u8], Arc<Ticket>>::with_opaque_to(&out.topic, ticket.clone()).payload(&out.payload);
        if let Some(key) = &out.key {
            record = record.key(key);
        }
        if !out.headers.is_empty() {
            let headers = out
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }));
            record = record.headers(headers);
        }
        ticket.hold();
        loop {
            match shared.producer.send(record) {
                Ok(()) => break,
                // The producer's queue is full: wait for deliveries to make room (backpressure).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Refused for this record alone: settled like a refused delivery (the input is
                // dead-lettered when its turn comes).
                Err((source, _)) if is_refused_for_good(&source) => {
                    ticket.fail(&out.topic, source);
                    ticket.release();
                    break;
                }
                Err((source, _)) => {
                    ticket.release();
                    error!(worker = shared.worker.name(), topic = %out.topic, error = %source, "produce refused");
                    return Err(BusError::Produce { topic: out.topic.to_string(), source });
                }
            }
        }
    }
    Ok(())
}

/// A message whose outputs the bus will not send: the worker's replacements (an error answer,
/// checked like any output) go out instead, and the message is dead-lettered with the reason.
async fn refuse<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    refusal: &Refusal,
) -> Result<(), BusError> {
    let answer = shared.worker.refused(inbound, refusal);
    reject(shared, inbound, ticket, refusal.kind(), &refusal.to_string(), answer).await
}

/// Sends `answer` (each output checked; one the bus refuses too is dropped, logged) and
/// dead-letters the message.
async fn reject<W: Worker>(
    shared: &Shared<W>,
    inbound: &Inbound,
    ticket: &Arc<Ticket>,
    kind: &'static str,
    reason: &str,
    answer: Vec<Outbound>,
) -> Result<(), BusError> {
    let mut checked = Vec::with_capacity(answer.len());
    for output in answer {
        match shared.outputs.first_refused(std::slice::from_ref(&output)).await {
            None => checked.push(output),
            Some(refusal) => warn!(worker = shared.worker.name(), %refusal, "an error answer is refused too; dropped"),
        }
    }
    produce_all(shared, checked, ticket).await?;
    dead_letter(shared, &Source::of(inbound), ticket, kind, reason).await
}

/// Sends a message that can never succeed to the dead-letter topic, with headers saying where it
/// came from and why, and counts and logs it (the one place that does). A message too large to
/// be dead-lettered whole keeps its headers and the first part of its value; the header
/// `frontier.payload` says how much was kept, and the original stays at its source offset.
async fn dead_letter<W: Worker>(
    shared: &Shared<W>,
    source: &Source<'_>,
    ticket: &Arc<Ticket>,
    kind: &'static str,
    reason: &str,
) -> Result<(), BusError> {
    let name = shared.worker.name();
    ::metrics::counter!(metrics::DEAD_LETTERED, "worker" => name, "reason" => kind).increment(1);
    shared.dead_letters.add();
    warn!(
        worker = name,
        topic = source.topic,
        partition = source.partition,
        offset = source.offset,
        kind,
        reason = %dlq::truncated(reason, dlq::MAX_REASON_BYTES),
        "message dead-lettered"
    );
    let failed_at = crate::clock::now_millis();
    let headers = dlq::headers(&dlq::Provenance {
        topic: source.topic,
        partition: source.partition,
        offset: source.offset,
        kind,
        reason,
        worker: name,
        group: &shared.options.group_id,
        failed_at_ms: failed_at,
    });
    let key = source.key.map(|key| key[..key.len().min(dlq::MAX_KEY_BYTES)].to_vec());
    let mut letter = Outbound { topic: shared.dlq_topic.clone(), key, payload: Vec::new(), headers };
    let room = shared.outputs.max_message_bytes().saturating_sub(record_size(&letter) + 64);
    if source.payload.len() > room {
        letter.payload = source.payload[..room].to_vec();
        let kept = format!("truncated: kept the first {room} of {} bytes", source.payload.len());
        letter.headers.push((dlq::header::PAYLOAD.to_owned(), kept.into_bytes()));
    } else {
        letter.payload = source.payload.to_vec();
    }
    ticket.mark_dead_lettered();
    produce_all(shared, vec![letter], ticket).await
}
