//! Reads of one symbol's latest closes, gathered while the database is busy.
//!
//! Why: in a cold burst, analyses over the same few hundred symbols asked for the same
//! histories hundreds of times, one statement and one pool connection each, and waited up to
//! 2 s for a connection. Here a read starts a statement at once while fewer than
//! `max_running` such statements run; otherwise it waits, and each time a statement ends,
//! the reads waiting by then go out together as one statement (at most [`MAX_READS`]), every
//! symbol read once for the longest window asked of it. A read only ever joins a statement
//! that has not started yet, so it never sees data older than its own request: an
//! invalidation published before the request is never undone by a shared read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::PriceStore;

/// Reads one statement takes at most, so none grows long enough to hold a connection for long.
pub const MAX_READS: usize = 256;

/// Reads asked of the latest closes, per statement that answered them (1 while the database
/// keeps up; more when reads were gathered).
pub const READS_PER_STATEMENT: &str = "frontier_db_latest_reads_per_statement";

/// A symbol's closes, oldest first: (day number, close).
pub(super) type Closes = Vec<(i32, f64)>;

/// The gathering of latest-closes reads of one store.
#[derive(Debug)]
pub(super) struct LatestReads {
    state: Mutex<State>,
    max_running: usize,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    waiting: Vec<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    symbol: String,
    count: usize,
    /// `None`: the shared statement failed; the read goes out alone for its own error.
    reply: oneshot::Sender<Option<Closes>>,
}

impl LatestReads {
    /// At most `max_running` statements at once.
    pub(super) fn new(max_running: usize) -> Self {
        LatestReads { state: Mutex::default(), max_running: max_running.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A queue of senders stays usable whatever a panicking holder left.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest `count` closes of `symbol`, from a statement shared with the reads asked
    /// meanwhile; `None` if that statement failed (the caller reads alone then).
    pub(super) async fn read(self: &Arc<Self>, store: &PriceStore, symbol: &str, count: usize) -> Option<Closes> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push(Waiting { symbol: symbol.to_owned(), count, reply });
            let start = state.running < self.max_running;
            state.running += usize::from(start);
            start
        };
        if start {
            // Its own task: the reader that started it is not kept waiting by later batches,
            // and a reader that gives up does not stop the others' statement.
            tokio::spawn(self.clone().run(store.clone()));
        }
        answer.await.ok().flatten()
    }

    /// Sends out the waiting reads, a statement at a time, until none waits.
    async fn run(self: Arc<Self>, store: PriceStore) {
        loop {
            let batch: Vec<Waiting> = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.running -= 1;
                    return;
                }
                let take = state.waiting.len().min(MAX_READS);
                state.waiting.drain(..take).collect()
            };
            ::metrics::histogram!(READS_PER_STATEMENT).record(batch.len() as f64);
            let mut longest: HashMap<&str, usize> = HashMap::new();
            for read in &batch {
                let count = longest.entry(read.symbol.as_str()).or_default();
                *count = (*count).max(read.count);
            }
            let wanted: Vec<(&str, usize)> = longest.into_iter().collect();
            let found = store.latest_closes_of(&wanted).await.ok();
            for read in batch {
                let closes = found.as_ref().map(|found| {
                    let all = found.get(read.symbol.as_str()).map_or(&[][..], Vec::as_slice);
                    all[all.len().saturating_sub(read.count)..].to_vec()
                });
                // A reader that gave up (its deadline) has dropped its receiver: nothing to do.
                let _ = read.reply.send(closes);
            }
        }
    }
}
