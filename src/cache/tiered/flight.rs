//! Work in flight per key: the one lookup (Redis, disk, compute) identical requests share, and
//! the one background refresh a stale or nearly expired entry gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::super::entry::Entry;
use super::super::error::ComputeError;
use super::CacheLayer;

/// What a lookup found: the entry and the layer that held it (`None` if computed).
#[derive(Debug, Clone)]
pub struct Found {
    pub entry: Arc<Entry>,
    pub layer: CacheLayer,
}

/// A lookup every identical request awaits.
pub type PendingLookup = Shared<BoxFuture<'static, Result<Found, ComputeError>>>;

/// Lookups and refreshes in flight.
#[derive(Default)]
pub struct InFlight {
    lookups: DashMap<String, (u64, PendingLookup)>,
    refreshes: DashMap<String, ()>,
    next_id: AtomicU64,
}

impl InFlight {
    /// The lookup in flight for `key`, or the one `start` spawns (given the id its guard must
    /// release). The bool says whether this call started it.
    pub fn join_or_start(&self, key: &str, start: impl FnOnce(u64) -> PendingLookup) -> (PendingLookup, bool) {
        match self.lookups.entry(key.to_string()) {
            dashmap::Entry::Occupied(occupied) => (occupied.get().1.clone(), false),
            dashmap::Entry::Vacant(vacant) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let pending = start(id);
                vacant.insert((id, pending.clone()));
                (pending, true)
            }
        }
    }

    /// Whether a lookup of `key` is in flight (a request joining it waits for its result).
    pub fn is_looking_up(&self, key: &str) -> bool {
        self.lookups.contains_key(key)
    }

    /// Claims the refresh of `key`; `false` if one is already running.
    pub fn claim_refresh(&self, key: &str) -> bool {
        match self.refreshes.entry(key.to_string()) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(());
                true
            }
        }
    }

    /// Whether a refresh of `key` is running.
    pub fn is_refreshing(&self, key: &str) -> bool {
        self.refreshes.contains_key(key)
    }

    fn release_lookup(&self, key: &str, id: u64) {
        self.lookups.remove_if(key, |_, (held, _)| *held == id);
    }

    fn release_refresh(&self, key: &str) {
        self.refreshes.remove(key);
    }
}

/// Releases a lookup's slot when its task ends, however it ends (result or panic).
pub struct LookupSlot {
    pub in_flight: Arc<InFlight>,
    pub key: String,
    pub id: u64,
}

impl Drop for LookupSlot {
    fn drop(&mut self) {
        self.in_flight.release_lookup(&self.key, self.id);
    }
}

/// Releases a refresh claim when its task ends.
pub struct RefreshSlot {
    pub in_flight: Arc<InFlight>,
    pub key: String,
}

impl Drop for RefreshSlot {
    fn drop(&mut self) {
        self.in_flight.release_refresh(&self.key);
    }
}

/// Spawns `work` and shares its result; a panic in it becomes a `ComputeError`.
pub fn spawn_shared(work: impl Future<Output = Result<Found, ComputeError>> + Send + 'static) -> PendingLookup {
    let handle = tokio::spawn(work);
    async move {
        match handle.await {
            Ok(result) => result,
            Err(error) => Err(ComputeError::new("internal", format!("the cache lookup failed: {error}"))),
        }
    }
    .boxed()
    .shared()
}
