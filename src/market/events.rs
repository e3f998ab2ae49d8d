//! DB query events (`schemas/db_query_event.avsc`): one per statement the price store runs, for
//! the slow-query analyzer that reads `frontier.db.query-events`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tracing::warn;

use crate::bus::KafkaSettings;
use crate::bus::{CodecError, KnownSchema, SchemaCatalog, kafka};
use crate::records::QueryEvent;

/// The topic query events go to unless told otherwise.
pub const QUERY_EVENTS_TOPIC: &str = "frontier.db.query-events";

/// Where the price store sends an event after each statement. `record` must not block: it is
/// called on the query's path.
pub trait QueryEventSink: Send + Sync {
    /// Takes one event; failures to pass it on are the sink's to count, never the query's.
    fn record(&self, event: QueryEvent);

    /// Waits up to `timeout` for events already taken to be passed on (before a process exits).
    fn flush(&self, timeout: Duration) {
        let _ = timeout;
    }
}

/// Drops every event: for tools that do not want them.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardQueryEvents;

impl QueryEventSink for DiscardQueryEvents {
    fn record(&self, _event: QueryEvent) {}
}

/// Keeps every event in memory, in order: for unit tests and for inspecting a run.
#[derive(Debug, Default)]
pub struct RecordedQueryEvents {
    events: Mutex<Vec<QueryEvent>>,
}

impl RecordedQueryEvents {
    /// A copy of the events taken so far.
    pub fn events(&self) -> Vec<QueryEvent> {
        // A poisoned lock only means a recording thread panicked; the list is still whole.
        self.events.lock().map(|events| events.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl QueryEventSink for RecordedQueryEvents {
    fn record(&self, event: QueryEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

/// Why the Kafka sink could not be created.
#[derive(Debug, thiserror::Error)]
pub enum QueryEventSinkError {
    /// The schemas folder lacks `db_query_event.avsc` or it does not parse.
    #[error("loading the query event schema: {0}")]
    Schema(#[from] CodecError),
    /// librdkafka refused the producer settings.
    #[error("creating the query event producer: {0}")]
    Producer(#[from] KafkaError),
}

/// Counts what happened to the events handed to librdkafka.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryCounts {
    /// Events the broker acknowledged.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Events lost: not encodable, refused by a full local queue, or not acknowledged within
    /// `kafka.delivery_timeout`.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn count_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!("frontier_db_query_events_failed_total").increment(1);
    }
}

/// The producer context that tallies deliveries (librdkafka calls it on its polling thread).
struct CountingContext {
    counts: Arc<DeliveryCounts>,
}

impl ClientContext for CountingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(%error, reason, "query event producer error");
    }
}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => {
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                warn!(%error, "query event not delivered");
                self.counts.count_failure();
            }
        }
    }
}

/// Publishes each event, Avro-encoded, to a Kafka topic. `record` only enqueues in librdkafka
/// (a `ThreadedProducer` polls deliveries on its own thread), so a query never waits for Kafka;
/// an event that cannot be enqueued or delivered is counted in [`Self::counts`] and logged.
pub struct KafkaQueryEvents {
    producer: ThreadedProducer<CountingContext>,
    schema: Arc<KnownSchema>,
    topic: String,
    counts: Arc<DeliveryCounts>,
}

impl KafkaQueryEvents {
    /// A sink producing to `topic` with the bus's producer settings and `schema`
    /// (`db_query_event.avsc` from the catalog).
    pub fn new(
        kafka_settings: &KafkaSettings,
        schema: Arc<KnownSchema>,
        topic: &str,
    ) -> Result<Self, QueryEventSinkError> {
        let counts = Arc::new(DeliveryCounts::default());
        let producer =
            kafka::producer_config(kafka_settings).create_with_context(CountingContext { counts: counts.clone() })?;
        Ok(Self { producer, schema, topic: topic.to_owned(), counts })
    }

    /// A sink using the catalog's current `db_query_event.avsc`.
    pub fn from_catalog(
        kafka_settings: &KafkaSettings,
        catalog: &SchemaCatalog,
        topic: &str,
    ) -> Result<Self, QueryEventSinkError> {
        Self::new(kafka_settings, catalog.schema_of::<QueryEvent>()?, topic)
    }

    /// Delivered and failed events so far.
    pub fn counts(&self) -> &DeliveryCounts {
        &self.counts
    }

    /// The topic events go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl QueryEventSink for KafkaQueryEvents {
    fn record(&self, event: QueryEvent) {
        let payload = match SchemaCatalog::encode(&self.schema, &event) {
            Ok(payload) => payload,
            Err(error) => {
                warn!(%error, "query event not encodable");
                self.counts.count_failure();
                return;
            }
        };
        // Keyed by fingerprint: every run of one query shape lands on one partition, in order.
        let key = event.fingerprint.as_deref().unwrap_or(&event.sql);
        let record = BaseRecord::to(&self.topic).key(key).payload(&payload);
        if let Err((error, _)) = self.producer.send(record) {
            warn!(%error, "query event not enqueued");
            self.counts.count_failure();
        }
    }

    fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            warn!(%error, "query events not all delivered before the flush timeout");
        }
    }
}
