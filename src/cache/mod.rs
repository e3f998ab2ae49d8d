//! The multi-layer request cache in front of the analytics: memory (moka, TinyLFU, bounded in
//! bytes), Redis (shared by every serving instance) and disk (per instance), read through in
//! that order by [`TieredCache::get_or_compute`].
//!
//! - [`CacheKey`]: kind, canonical params and the user context that changes the answer, hashed.
//! - Entries in Redis and on disk are sealed: LZ4 above a threshold, AES-256-GCM with a
//!   rotating keyring ([`keyring`], [`sealed`]); anything that does not open is a counted miss.
//! - Stale-while-revalidate within a grace window, XFetch early refresh, request coalescing.
//! - Tag invalidation with versions, so a late write of stale data never lands ([`watermark`]).
//! - Redis down is served around (compute and disk), logged once, and retried after a backoff.
//!
//! Settings are [`CacheSettings`]; metric names are in [`metric`].

pub mod disk;
pub mod entry;
pub mod error;
pub mod heat;
pub mod invalidation;
pub mod key;
pub mod keyring;
pub mod memory;
pub mod metric;
pub mod recipe;
pub mod redis_layer;
pub mod result;
pub mod sealed;
pub mod settings;
pub mod stats;
pub mod tiered;
pub mod unsent;
pub mod watermark;
pub mod xfetch;

pub use entry::Entry;
pub use error::{CacheError, ComputeError, FailureKind};
pub use key::CacheKey;
pub use settings::{CachePolicy, CacheSettings, KindLifetime};
pub use stats::CacheStats;
pub use tiered::{CacheLayer, Cached, InvalidationOutcome, TieredCache, WarmStart, in_background_refresh};
pub use watermark::{InvalidationVersion, Watermark};
