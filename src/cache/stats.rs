//! Counters a `TieredCache` keeps next to its Prometheus metrics, so tests and `frontier`
//! commands can read them without a metrics recorder.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; see [`CacheStats`] for their meaning.
#[derive(Debug, Default)]
pub struct Counters {
    pub memory_hits: AtomicU64,
    pub redis_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub misses: AtomicU64,
    pub computations: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale_served: AtomicU64,
    pub refreshes: AtomicU64,
    pub compute_errors: AtomicU64,
    pub redis_errors: AtomicU64,
    pub redis_outages: AtomicU64,
    pub redis_recoveries: AtomicU64,
    pub disk_errors: AtomicU64,
    pub unreadable: AtomicU64,
    pub writes_refused: AtomicU64,
    pub invalidated_entries: AtomicU64,
}

/// Adds one.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A copy of the counters of one cache since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered by the memory layer.
    pub memory_hits: u64,
    /// Lookups answered by Redis.
    pub redis_hits: u64,
    /// Lookups answered by the disk layer.
    pub disk_hits: u64,
    /// Lookups no layer answered.
    pub misses: u64,
    /// Computations run (for misses, refreshes and the warmer).
    pub computations: u64,
    /// Requests that awaited an identical lookup in flight.
    pub coalesced: u64,
    /// Stale entries served within their grace window.
    pub stale_served: u64,
    /// Background refreshes started (stale, XFetch, warmer).
    pub refreshes: u64,
    /// Computations that failed.
    pub compute_errors: u64,
    /// Failed Redis operations.
    pub redis_errors: u64,
    /// Times Redis became unreachable (each logged once).
    pub redis_outages: u64,
    /// Times Redis came back (each logged once).
    pub redis_recoveries: u64,
    /// Failed disk operations.
    pub disk_errors: u64,
    /// Stored entries that could not be opened.
    pub unreadable: u64,
    /// Write-throughs refused by a newer invalidation (per layer refusing).
    pub writes_refused: u64,
    /// Entries dropped by invalidations from Redis and disk (memory drops lazily, uncounted).
    pub invalidated_entries: u64,
}

impl Counters {
    /// The counters now.
    pub fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            memory_hits: get(&self.memory_hits),
            redis_hits: get(&self.redis_hits),
            disk_hits: get(&self.disk_hits),
            misses: get(&self.misses),
            computations: get(&self.computations),
            coalesced: get(&self.coalesced),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            compute_errors: get(&self.compute_errors),
            redis_errors: get(&self.redis_errors),
            redis_outages: get(&self.redis_outages),
            redis_recoveries: get(&self.redis_recoveries),
            disk_errors: get(&self.disk_errors),
            unreadable: get(&self.unreadable),
            writes_refused: get(&self.writes_refused),
            invalidated_entries: get(&self.invalidated_entries),
        }
    }
}
