//! Tracking when a consumed message's outputs are durable, without a future per record.
//!
//! Every consumed message gets a [`Ticket`]. The ticket counts what is still outstanding: one
//! token while the worker handles the message, plus one per produced record. librdkafka's
//! delivery callback ([`DeliveryContext`]) releases a record's token when the broker acknowledges
//! it (`acks=all`). A ticket at zero is settled, and the loop may store the message's offset once
//! every earlier message is settled too.
//!
//! A periodic output (a worker's tick: alerts, checkpoints) has no input to consume again, so
//! its ticket keeps a copy of each record the cluster could not take, for the loop to send again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Headers};
use rdkafka::producer::ProducerContext;
use tokio::sync::Notify;
use tracing::{error, warn};

use super::metrics;
use super::worker::Outbound;

/// The state of one consumed message's outputs.
pub(super) struct Ticket {
    outstanding: AtomicUsize,
    /// The first output that could not be delivered, and why.
    failure: Mutex<Option<(String, KafkaError)>>,
    abandoned: AtomicBool,
    dead_lettered: AtomicBool,
    /// Whether undelivered records are kept to be sent again (periodic outputs only).
    keeps_undelivered: bool,
    undelivered: Mutex<Vec<Outbound>>,
    settled: Arc<Notify>,
    /// When the handler first ran, when it gave its token back, and when the last token came
    /// back: the stage timings of the message (see `metrics::STAGE_SECONDS`).
    started_at: OnceLock<Instant>,
    handled_at: OnceLock<Instant>,
    settled_at: OnceLock<Instant>,
}

impl Ticket {
    /// A ticket holding the handling token; `settled` is notified when it reaches zero.
    pub(super) fn new(settled: Arc<Notify>) -> Arc<Self> {
        Self::build(settled, false)
    }

    /// A ticket for periodic outputs, which keeps a copy of each record not delivered.
    pub(super) fn periodic(settled: Arc<Notify>) -> Arc<Self> {
        Self::build(settled, true)
    }

    fn build(settled: Arc<Notify>, keeps_undelivered: bool) -> Arc<Self> {
        Arc::new(Ticket {
            outstanding: AtomicUsize::new(1),
            failure: Mutex::new(None),
            abandoned: AtomicBool::new(false),
            dead_lettered: AtomicBool::new(false),
            keeps_undelivered,
            undelivered: Mutex::new(Vec::new()),
            settled,
            started_at: OnceLock::new(),
            handled_at: OnceLock::new(),
            settled_at: OnceLock::new(),
        })
    }

    /// Notes that the handler starts now (the first call counts).
    pub(super) fn start(&self) {
        let _ = self.started_at.set(Instant::now());
    }

    /// Gives the handling token back, noting when the handler finished.
    pub(super) fn release_handling(&self) {
        let _ = self.handled_at.set(Instant::now());
        self.release();
    }

    /// When the handler started, finished, and when the message's outputs were all
    /// acknowledged; each `None` until it happened.
    pub(super) fn timings(&self) -> (Option<Instant>, Option<Instant>, Option<Instant>) {
        (self.started_at.get().copied(), self.handled_at.get().copied(), self.settled_at.get().copied())
    }

    /// Takes a token for a record about to be produced.
    pub(super) fn hold(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives a token back; the last one wakes the loop.
    pub(super) fn release(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.settled_at.set(Instant::now());
            self.settled.notify_one();
        }
    }

    /// Records that an output could not be delivered (the first failure is kept).
    pub(super) fn fail(&self, topic: &str, error: KafkaError) {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert((topic.to_string(), error));
    }

    /// Marks the message as interrupted by shutdown: it will be consumed again.
    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    pub(super) fn mark_dead_lettered(&self) {
        self.dead_lettered.store(true, Ordering::Release);
    }

    pub(super) fn is_settled(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0
    }

    /// The first delivery failure, if any.
    pub(super) fn failure(&self) -> Option<(String, KafkaError)> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Takes the copies of the records not delivered (only a periodic ticket keeps them).
    pub(super) fn take_undelivered(&self) -> Vec<Outbound> {
        std::mem::take(&mut *self.undelivered.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keeps a copy of a record that was not delivered, if this ticket keeps them.
    fn keep_undelivered(&self, message: &rdkafka::message::BorrowedMessage<'_>) {
        if !self.keeps_undelivered {
            return;
        }
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect()
        });
        let record = Outbound {
            topic: Arc::from(message.topic()),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
        };
        self.undelivered.lock().unwrap_or_else(PoisonError::into_inner).push(record);
    }

    /// Forgets the delivery failure once it has been dealt with (dead-lettered).
    pub(super) fn clear_failure(&self) {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    pub(super) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    pub(super) fn is_dead_lettered(&self) -> bool {
        self.dead_lettered.load(Ordering::Acquire)
    }
}

/// The producer's callbacks: settle tickets as the broker acknowledges records.
pub(super) struct DeliveryContext {
    pub(super) produced: ::metrics::Counter,
    pub(super) failed: ::metrics::Counter,
}

impl DeliveryContext {
    pub(super) fn new(worker: &'static str) -> Self {
        DeliveryContext {
            produced: ::metrics::counter!(metrics::PRODUCED, "worker" => worker),
            failed: ::metrics::counter!(metrics::CLIENT_ERRORS, "client" => "producer"),
        }
    }
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.failed.increment(1);
        warn!(%error, reason, "kafka producer error");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Arc<Ticket>) {
        match result {
            Ok(_) => self.produced.increment(1),
            Err((error, message)) => {
                // librdkafka already retried what can be retried: either the broker refused
                // this record for good (the loop dead-letters its input) or it is gone.
                self.failed.increment(1);
                error!(topic = message.topic(), %error, "record not delivered");
                ticket.fail(message.topic(), error.clone());
                ticket.keep_undelivered(message);
            }
        }
        ticket.release();
    }
}
