//! What the bus checks before it produces a worker's outputs. Workers choose output topics and
//! sizes from message content (a request's `reply_to`, a result's size), and a record the
//! producer or broker refuses would fail the message's delivery, stop the loop, and come back
//! after every restart: one bad field would take the group down. Here such an output is found
//! before it is sent, and the loop dead-letters its input instead ([`Refusal`]).
//!
//! Topic existence comes from a directory of the cluster's topics, fetched off the async
//! threads and at most once per [`REFRESH_AT_MOST_EVERY`] however many unknown names arrive, so
//! a flood of made-up `reply_to`s costs one metadata request per second, not one per message;
//! known names never wait for a refresh.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tokio::sync::Mutex;
use tracing::warn;

use super::worker::Outbound;

/// A name not in the directory is believed missing until a refresh this long after the last.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// The directory is refreshed at least this often, so topics created meanwhile are found.
const REFRESH_AT_LEAST_EVERY: Duration = Duration::from_secs(60);
/// How long a metadata request may take before the directory keeps what it had.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Kafka's own limit on a topic name's length.
const MAX_TOPIC_NAME: usize = 249;
/// Room left under the size limit for the record's framing (offsets, lengths, timestamps).
const RECORD_OVERHEAD: usize = 512;

/// Why the bus will not produce an output of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The output's topic.
    pub topic: Arc<str>,
    /// What is wrong with it.
    pub cause: RefusalCause,
}

/// The kinds of refused outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCause {
    /// Key, value and headers together exceed `bus.max_message_bytes`.
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The most a record may take.
        limit: usize,
    },
    /// The topic name breaks Kafka's rules (length, characters).
    InvalidTopic,
    /// No such topic exists in the cluster.
    UnknownTopic,
}

impl Refusal {
    /// A short, stable label for metrics and the dead letter's `frontier.error.kind`.
    pub fn kind(&self) -> &'static str {
        match self.cause {
            RefusalCause::TooLarge { .. } => "output_too_large",
            RefusalCause::InvalidTopic => "invalid_output_topic",
            RefusalCause::UnknownTopic => "unknown_output_topic",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topic = &self.topic;
        match self.cause {
            RefusalCause::TooLarge { bytes, limit } => {
                write!(f, "an output to {topic} takes {bytes} bytes, more than the {limit} a record may take")
            }
            RefusalCause::InvalidTopic => write!(
                f,
                "output topic `{}` is not a valid Kafka topic name (1 to {MAX_TOPIC_NAME} of a-z A-Z 0-9 . _ -)",
                topic.escape_debug()
            ),
            RefusalCause::UnknownTopic => write!(
                f,
                "output topic {topic} does not exist (fix the message's reply_to, or run `frontier topics apply`)"
            ),
        }
    }
}

/// Whether `name` is a topic name Kafka accepts (`org.apache.kafka.common.internals.Topic`).
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The size a record takes against the producer's `message.max.bytes`.
pub fn record_size(output: &Outbound) -> usize {
    let headers: usize = output.headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    output.payload.len() + output.key.as_ref().map_or(0, Vec::len) + headers + RECORD_OVERHEAD
}

/// Checks outputs against the size limit, Kafka's naming rules and the cluster's topics.
pub(super) struct OutputCheck {
    max_message_bytes: usize,
    directory: TopicDirectory,
}

impl OutputCheck {
    /// A check against `max_message_bytes`, asking the cluster through `admin`.
    pub(super) fn new(max_message_bytes: usize, admin: Arc<AdminClient<DefaultClientContext>>) -> Self {
        OutputCheck { max_message_bytes, directory: TopicDirectory::new(admin) }
    }

    /// The first output the bus would refuse, if any.
    pub(super) async fn first_refused(&self, outputs: &[Outbound]) -> Option<Refusal> {
        for output in outputs {
            if let Some(cause) = self.cause(output).await {
                return Some(Refusal { topic: output.topic.clone(), cause });
            }
        }
        None
    }

    async fn cause(&self, output: &Outbound) -> Option<RefusalCause> {
        let bytes = record_size(output);
        if bytes > self.max_message_bytes {
            return Some(RefusalCause::TooLarge { bytes, limit: self.max_message_bytes });
        }
        if !is_valid_topic_name(&output.topic) {
            return Some(RefusalCause::InvalidTopic);
        }
        (!self.directory.exists(&output.topic).await).then_some(RefusalCause::UnknownTopic)
    }

    /// Whether `topic` was in the last listing (assumed, without one), without asking the
    /// cluster again: for a check right after [`OutputCheck::prime`], which must not wait.
    pub(super) fn listed(&self, topic: &str) -> bool {
        self.directory.listed(topic)
    }

    /// Lists the cluster's topics now, so that the first messages do not wait for it.
    pub(super) async fn prime(&self) {
        self.directory.refresh_unless_listed_since(Instant::now()).await;
    }

    /// The most a record may take.
    pub(super) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }
}

/// The names of the cluster's topics, as of the last metadata request. Cheap to clone.
#[derive(Clone)]
struct TopicDirectory {
    inner: Arc<DirectoryState>,
}

struct DirectoryState {
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// Never held across an await: every output of every message reads it.
    known: std::sync::Mutex<Known>,
    /// Held by the one refresh under way, so concurrent callers share it.
    refreshing: Mutex<()>,
    /// A background refresh is spawned or running.
    refreshing_in_background: AtomicBool,
}

#[derive(Default)]
struct Known {
    topics: HashSet<String>,
    /// When the last listing was asked for, answered or not.
    listed_at: Option<Instant>,
    /// The last listing got no answer: every name is then assumed to exist.
    listing_failed: bool,
}

impl TopicDirectory {
    fn new(admin: Arc<AdminClient<DefaultClientContext>>) -> Self {
        let inner = DirectoryState {
            admin,
            known: std::sync::Mutex::default(),
            refreshing: Mutex::new(()),
            refreshing_in_background: AtomicBool::new(false),
        };
        TopicDirectory { inner: Arc::new(inner) }
    }

    /// Whether `topic` exists. A known name answers at once: when the listing is older than
    /// [`REFRESH_AT_LEAST_EVERY`] it is refreshed in the background, because a listing of a
    /// cluster with thousands of topics takes long enough (hundreds of ms on a busy broker) that
    /// every message waiting for it was a visible stall. An unknown name waits for a listing
    /// asked after it came (so a topic created just before is found), at most one per
    /// [`REFRESH_AT_MOST_EVERY`], shared by every caller waiting. Without an answer from the
    /// cluster, a topic is assumed to exist: a broker outage must not dead-letter good messages
    /// (their delivery then waits for the broker like any other).
    async fn exists(&self, topic: &str) -> bool {
        let asked = Instant::now();
        {
            let known = self.known();
            if known.topics.contains(topic) {
                if known.listed_at.is_none_or(|at| at.elapsed() >= REFRESH_AT_LEAST_EVERY) {
                    self.refresh_in_background();
                }
                return true;
            }
        }
        self.refresh_unless_listed_since(asked).await;
        self.listed(topic)
    }

    /// Whether the last listing had `topic`; never waits for a new one. Without an answer
    /// (the listing failed, or none was asked yet) a topic is assumed to exist, as in `exists`.
    fn listed(&self, topic: &str) -> bool {
        let known = self.known();
        known.listing_failed || known.listed_at.is_none() || known.topics.contains(topic)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        // A poisoned lock only means a holder panicked between plain assignments: still sound.
        self.inner.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh_in_background(&self) {
        if self.inner.refreshing_in_background.swap(true, Ordering::AcqRel) {
            return;
        }
        let directory = self.clone();
        tokio::spawn(async move {
            directory.refresh_unless_listed_since(Instant::now()).await;
            directory.inner.refreshing_in_background.store(false, Ordering::Release);
        });
    }

    /// Lists the cluster's topics unless a listing was asked for at or after `since` (another
    /// caller's, while this one waited its turn); never sooner than [`REFRESH_AT_MOST_EVERY`]
    /// after the last one was asked for.
    async fn refresh_unless_listed_since(&self, since: Instant) {
        let _one_at_a_time = self.inner.refreshing.lock().await;
        let last = self.known().listed_at;
        if last.is_some_and(|at| at >= since) {
            return;
        }
        if let Some(last) = last {
            tokio::time::sleep_until((last + REFRESH_AT_MOST_EVERY).into()).await;
        }
        self.known().listed_at = Some(Instant::now());
        let inner = self.inner.clone();
        // A blocking librdkafka call: on the blocking pool, never on an async thread.
        let fetched = tokio::task::spawn_blocking(move || {
            let metadata = inner.admin.inner().fetch_metadata(None, METADATA_TIMEOUT)?;
            let topics = metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_owned());
            Ok::<HashSet<String>, rdkafka::error::KafkaError>(topics.collect())
        })
        .await;
        let mut known = self.known();
        match fetched {
            Ok(Ok(topics)) => {
                known.topics = topics;
                known.listing_failed = false;
            }
            Ok(Err(error)) => {
                warn!(%error, "cannot list the cluster's topics; assuming output topics exist");
                known.listing_failed = true;
            }
            Err(error) => {
                warn!(%error, "the topic listing task did not finish; assuming output topics exist");
                known.listing_failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_s_rules() {
        for good in ["frontier.responses", "a", "A-b_c.9", &"x".repeat(249)] {
            assert!(is_valid_topic_name(good), "{good}");
        }
        for bad in ["", ".", "..", "bad topic name!", "é", "a/b", &"x".repeat(250)] {
            assert!(!is_valid_topic_name(bad), "{bad}");
        }
    }

    /// An admin client for a broker that never answers: a listing takes the full timeout.
    fn unanswered_admin() -> Arc<AdminClient<DefaultClientContext>> {
        Arc::new(
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:1")
                .set("log_level", "0")
                .create()
                .expect("an admin client is created without connecting"),
        )
    }

    #[tokio::test]
    async fn a_known_topic_is_answered_at_once_while_its_stale_listing_refreshes_in_the_background() {
        let directory = TopicDirectory::new(unanswered_admin());
        let listed_at = Instant::now() - REFRESH_AT_LEAST_EVERY - Duration::from_secs(1);
        {
            let mut known = directory.known();
            known.topics.insert("frontier.responses".to_string());
            known.listed_at = Some(listed_at);
        }

        assert!(directory.exists("frontier.responses").await);

        // Answered before the refresh (which waits METADATA_TIMEOUT for the silent broker) ended.
        assert_eq!(directory.known().listed_at, Some(listed_at));
        assert!(directory.inner.refreshing_in_background.load(Ordering::Acquire));
    }

    #[test]
    fn a_topic_missing_from_the_last_listing_is_missing_without_asking_again() {
        let directory = TopicDirectory::new(unanswered_admin());
        let listed_at = Instant::now();
        {
            let mut known = directory.known();
            known.topics.insert("frontier.responses".to_string());
            known.listed_at = Some(listed_at);
        }

        assert!(directory.listed("frontier.responses"));
        assert!(!directory.listed("frontier.workers.status"));
        assert_eq!(directory.known().listed_at, Some(listed_at));
    }

    #[test]
    fn without_any_listing_a_topic_is_assumed_listed() {
        let directory = TopicDirectory::new(unanswered_admin());

        assert!(directory.listed("frontier.workers.status"));
    }

    #[tokio::test]
    async fn an_unknown_topic_waits_for_a_fresh_listing() {
        let directory = TopicDirectory::new(unanswered_admin());
        let listed_at = Instant::now() - REFRESH_AT_LEAST_EVERY - Duration::from_secs(1);
        directory.known().listed_at = Some(listed_at);

        // The broker never answers: the listing fails and the topic is assumed to exist.
        assert!(directory.exists("made.up").await);

        let known = directory.known();
        assert!(known.listed_at.is_some_and(|at| at > listed_at));
        assert!(known.listing_failed);
    }

    #[tokio::test]
    async fn a_topic_created_just_after_a_listing_waits_for_the_next_one_instead_of_being_refused() {
        let directory = TopicDirectory::new(unanswered_admin());
        let listed_at = Instant::now();
        directory.known().listed_at = Some(listed_at);

        // A listing asked before the name came cannot show it: the next one, a second later, is
        // waited for (here it fails, so the topic is assumed to exist).
        assert!(directory.exists("created.just.now").await);

        assert!(directory.known().listed_at.is_some_and(|at| at >= listed_at + REFRESH_AT_MOST_EVERY));
    }

    #[test]
    fn a_record_s_size_counts_key_value_headers_and_framing() {
        let mut output = Outbound::new("t", Some(vec![0; 10]), vec![0; 100]);
        output.headers.push(("h".into(), vec![0; 5]));
        assert_eq!(record_size(&output), 10 + 100 + (1 + 5 + 8) + RECORD_OVERHEAD);
    }
}
