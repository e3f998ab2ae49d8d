//! Which output topics exist. Workers choose output topics from message content (a request's
//! `reply_to`), and a record sent to a topic that does not exist fails its delivery, which
//! stops the loop — and on restart the same message comes back: a crash loop from one bad
//! field. The loop asks here first and dead-letters such a message instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::types::RDKafkaRespErr;

/// How long "this topic does not exist" is believed before asking the broker again, so a flood
/// of bad `reply_to`s costs one metadata request per topic per interval, and a topic created
/// meanwhile is found soon.
const MISSING_FOR: Duration = Duration::from_secs(10);

/// The broker's answer is awaited this long at most; without an answer the topic is assumed
/// to exist (a broker outage must not dead-letter good messages).
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// Topics seen to exist (for good: topics are not deleted under a running worker) and topics
/// seen missing (for [`MISSING_FOR`]).
#[derive(Debug, Default)]
pub(super) struct OutputTopics {
    existing: Mutex<HashSet<String>>,
    missing: Mutex<HashMap<String, Instant>>,
}

impl OutputTopics {
    /// The first of `topics` the broker says does not exist. A metadata request (a blocking
    /// call, a millisecond on a healthy cluster) is made only for a topic not seen before, or
    /// seen missing more than [`MISSING_FOR`] ago.
    pub(super) fn first_missing<'a, C: ClientContext>(
        &self,
        topics: impl IntoIterator<Item = &'a str>,
        client: &Client<C>,
    ) -> Option<String> {
        for topic in topics {
            if self.existing.lock().unwrap_or_else(PoisonError::into_inner).contains(topic) {
                continue;
            }
            let known_missing = self
                .missing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(topic)
                .is_some_and(|since| since.elapsed() < MISSING_FOR);
            if known_missing || self.ask(topic, client) == Some(false) {
                return Some(topic.to_string());
            }
        }
        None
    }

    /// Asks the broker; `None` when it did not answer.
    fn ask<C: ClientContext>(&self, topic: &str, client: &Client<C>) -> Option<bool> {
        let metadata = client.fetch_metadata(Some(topic), METADATA_TIMEOUT).ok()?;
        let entry = metadata.topics().iter().find(|entry| entry.name() == topic)?;
        let exists = match entry.error() {
            None => true,
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => false,
            // Any other error (leader election, authorization) is not proof it is missing.
            Some(_) => return None,
        };
        if exists {
            self.existing.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_string());
            self.missing.lock().unwrap_or_else(PoisonError::into_inner).remove(topic);
        } else {
            self.missing.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_string(), Instant::now());
        }
        Some(exists)
    }
}
