//! The disk layer: one sealed file per entry in a folder this instance owns, bounded in bytes:
//! dead entries go first, then the least recently used. A key's first file is written to a
//! temporary file and renamed into place; a key written again (recomputed after its ttl) is
//! rewritten in place, see [`writer`]. A reader that finds a file it cannot open while it is
//! being rewritten takes it for a miss, not for a broken file.
//!
//! Writes happen behind the answers: `put` queues the entry and returns, and one writer thread
//! per layer ([`writer`]), at a lower OS priority, seals the queued entries and writes them one
//! at a time. Why: a file created is the kernel's work, and on the cold start of a serving
//! instance hundreds of answers a second each waited for their own file. On this project's
//! journal-less ext4 every create scans the inodes deleted in the last minute, and the blocking
//! threads creating files in one folder spun on its lock: `perf` put 42 % of the serving
//! process's CPU in `open`, and the bench's handling stage reached p99 0.4-1.2 s in the first
//! seconds of a phase (README, Request serving). One writer never contends with itself, and no
//! answer waits for it.
//!
//! Until its file is written, a queued entry is read from the queue (the layer answers as if
//! it were on disk); a removal or invalidation drops it from the queue, and a write that
//! finishes after its entry was dropped deletes its file. [`DiskLayer::flush`] waits for what
//! was queued before it. At most [`MAX_QUEUED`] entries wait: past that a write is skipped
//! and counted (the entry is still in memory and Redis).
//!
//! An in-memory index (key -> size, lifetime, tags, watermark) answers "is it there" and "which
//! entries carry this tag" without touching the disk; it is rebuilt from the files at start.

mod writer;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tracing::warn;

use super::entry::Entry;
use super::metric;
use super::sealed::Sealer;
use super::stats::{Counters, bump};
use super::watermark::{InvalidationVersion, Watermark};

const SUFFIX: &str = ".entry";
const TEMP_SUFFIX: &str = ".tmp";

/// The most entries waiting for their file; a write past it is skipped (and counted).
pub const MAX_QUEUED: usize = 4096;

/// Why the disk layer could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use cache folder {path}: {source}")]
pub struct DiskLayerError {
    path: PathBuf,
    source: std::io::Error,
}

/// What the index knows of one file.
#[derive(Debug, Clone)]
struct Record {
    bytes: u64,
    dead_at_ms: i64,
    tags: Vec<String>,
    watermark: Watermark,
    /// Logical clock of the last read or write, for least-recently-used eviction.
    used: u64,
    /// The number of the `put` whose entry the file holds (0: found at start): a reader whose
    /// file did not open tells a rewrite under way from a broken file by it.
    version: u64,
}

#[derive(Debug, Default)]
struct Index {
    records: HashMap<String, Record>,
    total_bytes: u64,
    clock: u64,
}

impl Index {
    fn insert(&mut self, key: String, mut record: Record) {
        self.clock += 1;
        record.used = self.clock;
        self.total_bytes += record.bytes;
        if let Some(old) = self.records.insert(key, record) {
            self.total_bytes -= old.bytes;
        }
    }

    fn remove(&mut self, key: &str) -> Option<Record> {
        let record = self.records.remove(key)?;
        self.total_bytes -= record.bytes;
        Some(record)
    }

    /// Keys to delete so the total fits `max_bytes`: dead ones, then least recently used.
    fn evict_to_fit(&mut self, max_bytes: u64, now_ms: i64) -> Vec<(String, &'static str)> {
        let mut evicted = Vec::new();
        let dead: Vec<String> =
            self.records.iter().filter(|(_, r)| r.dead_at_ms <= now_ms).map(|(k, _)| k.clone()).collect();
        for key in dead {
            self.remove(&key);
            evicted.push((key, "expired"));
        }
        if self.total_bytes > max_bytes {
            let mut by_use: Vec<(u64, String)> = self.records.iter().map(|(k, r)| (r.used, k.clone())).collect();
            by_use.sort_unstable();
            for (_, key) in by_use {
                if self.total_bytes <= max_bytes {
                    break;
                }
                self.remove(&key);
                evicted.push((key, "size"));
            }
        }
        evicted
    }
}

/// Entries waiting for their file.
#[derive(Debug, Default)]
struct Queue {
    /// The newest entry put under each key whose file is not written yet, with the number of
    /// its `put`; a key stays here while its file is being written.
    pending: HashMap<String, Queued>,
    /// Keys in the order their writes are due: each pending key once, and again when it was
    /// put anew while its older entry was being written.
    order: VecDeque<String>,
    /// The number the next `put` gets.
    next: u64,
    /// Set when the layer is dropped: the writer writes what is queued, then stops.
    closed: bool,
}

#[derive(Debug)]
struct Queued {
    number: u64,
    entry: Arc<Entry>,
}

/// The index and the queue, under one lock so a removal and a finishing write agree.
#[derive(Debug, Default)]
struct State {
    index: Index,
    queue: Queue,
}

/// What the layer and its writer thread share.
struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    sealer: Sealer,
    counters: Arc<Counters>,
    state: Mutex<State>,
    /// Wakes the writer: a write was queued, or the layer closed.
    queued: Condvar,
    /// Wakes [`DiskLayer::flush`]: a write finished or an entry left the queue.
    dequeued: Notify,
    /// Calls of [`DiskLayer::flush`] waiting: the writer does not rest meanwhile.
    flushing: AtomicUsize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every mutation under the lock is a few map and field updates that cannot panic
        // halfway in practice; a poisoned lock still holds a usable index and queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, key: &str) -> PathBuf {
        // Cache keys are `[a-z0-9._-]` and `:` plus hex: safe as file names.
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    fn io_failed(&self, op: &'static str, path: &Path, error: &dyn std::fmt::Display) {
        bump(&self.counters.disk_errors);
        ::metrics::counter!(metric::DISK_ERRORS, "op" => op).increment(1);
        warn!(op, path = %path.display(), %error, "disk cache operation failed");
    }

    fn count_unreadable(&self, reason: &'static str) {
        bump(&self.counters.unreadable);
        ::metrics::counter!(metric::UNREADABLE, "layer" => "disk", "reason" => reason).increment(1);
    }

    /// Deletes `path` now, on the calling thread (the writer's).
    fn delete_file_now(&self, path: &Path) {
        if let Err(error) = std::fs::remove_file(path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            self.io_failed("remove", path, &error);
        }
    }

    /// Deletes dead entries, then least recently used ones until within the size bound, on
    /// the calling thread; the bytes held after.
    fn evict_now(&self) -> u64 {
        let (evicted, total) = {
            let mut state = self.state();
            let evicted = state.index.evict_to_fit(self.max_bytes, crate::clock::now_millis());
            (evicted, state.index.total_bytes)
        };
        for (key, cause) in evicted {
            ::metrics::counter!(metric::EVICTIONS, "layer" => "disk", "cause" => cause).increment(1);
            self.delete_file_now(&self.path_of(&key));
        }
        total
    }
}

/// The local persistent layer.
pub struct DiskLayer {
    shared: Arc<Shared>,
}

impl DiskLayer {
    /// Opens (creating it if needed) `dir`, indexing the readable live entries in it and
    /// deleting the rest (dead, unreadable, leftover temporary files), and starts its writer.
    pub async fn open(
        dir: &Path,
        max_bytes: u64,
        sealer: Sealer,
        counters: Arc<Counters>,
    ) -> Result<DiskLayer, DiskLayerError> {
        let failed = |source| DiskLayerError { path: dir.to_path_buf(), source };
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            max_bytes,
            sealer,
            counters,
            state: Mutex::default(),
            queued: Condvar::new(),
            dequeued: Notify::new(),
            flushing: AtomicUsize::new(0),
        });
        let layer = DiskLayer { shared };
        let mut files = tokio::fs::read_dir(dir).await.map_err(failed)?;
        let now_ms = crate::clock::now_millis();
        while let Some(file) = files.next_entry().await.map_err(failed)? {
            let name = file.file_name().to_string_lossy().into_owned();
            let path = file.path();
            if name.ends_with(TEMP_SUFFIX) {
                layer.delete_file(&path).await;
                continue;
            }
            let Some(key) = name.strip_suffix(SUFFIX) else { continue };
            match tokio::fs::read(&path).await {
                Ok(bytes) => match layer.shared.sealer.open(Some(key), &bytes) {
                    Ok((key, entry)) if entry.dead_at_ms() > now_ms => {
                        layer.shared.state().index.insert(key, record_of(&entry, bytes.len() as u64, 0));
                    }
                    Ok(_) => layer.delete_file(&path).await,
                    Err(reason) => {
                        layer.shared.count_unreadable(reason.label());
                        layer.delete_file(&path).await;
                    }
                },
                Err(error) => layer.shared.io_failed("scan", &path, &error),
            }
        }
        layer.evict().await;
        writer::spawn(layer.shared.clone()).map_err(failed)?;
        Ok(layer)
    }

    /// The entry under `key`, if one is queued for the disk or a readable live file holds it.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let version = {
            let mut state = self.shared.state();
            if let Some(queued) = state.queue.pending.get(key) {
                return Some(Entry::clone(&queued.entry));
            }
            let index = &mut state.index;
            index.clock += 1;
            let clock = index.clock;
            let record = index.records.get_mut(key)?;
            record.used = clock;
            record.version
        };
        let path = self.shared.path_of(key);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) => {
                self.shared.state().index.remove(key);
                if error.kind() != std::io::ErrorKind::NotFound {
                    self.shared.io_failed("read", &path, &error);
                }
                return None;
            }
        };
        match self.shared.sealer.open(Some(key), &bytes) {
            Ok((_, entry)) => Some(entry),
            Err(reason) => {
                {
                    // Read while the writer rewrote it: the newer entry is queued until its
                    // file is written, and once written the index holds its version. A key
                    // removed meanwhile is a miss whatever its file held.
                    let state = self.shared.state();
                    if let Some(queued) = state.queue.pending.get(key) {
                        return Some(Entry::clone(&queued.entry));
                    }
                    if state.index.records.get(key).is_none_or(|record| record.version != version) {
                        return None;
                    }
                }
                self.shared.count_unreadable(reason.label());
                warn!(key, %reason, "dropping an unreadable entry from the disk cache");
                self.remove(key).await;
                None
            }
        }
    }

    /// Queues `entry` under `key` for the writer, replacing an older entry still queued; the
    /// layer answers with it from now on. Skipped (and counted) when [`MAX_QUEUED`] wait.
    pub fn put(&self, key: &str, entry: Arc<Entry>) {
        {
            let mut state = self.shared.state();
            let queue = &mut state.queue;
            if queue.closed {
                return;
            }
            // `order` keeps the keys of entries removed while queued until the writer reaches
            // them: bounded too, so put-and-invalidate storms on a stuck disk cannot grow it.
            let full = queue.pending.len() >= MAX_QUEUED || queue.order.len() >= 2 * MAX_QUEUED;
            if full && !queue.pending.contains_key(key) {
                drop(state);
                ::metrics::counter!(metric::DISK_WRITES_SKIPPED).increment(1);
                return;
            }
            queue.next += 1;
            let queued = Queued { number: queue.next, entry };
            if queue.pending.insert(key.to_string(), queued).is_none() {
                queue.order.push_back(key.to_string());
            }
            ::metrics::gauge!(metric::DISK_QUEUE).set(queue.pending.len() as f64);
        }
        self.shared.queued.notify_one();
    }

    /// Waits until every entry queued before the call is written (or dropped from the queue);
    /// the writer does not rest meanwhile.
    pub async fn flush(&self) {
        let before = self.shared.state().queue.next;
        let _hurry = Hurry::new(&self.shared);
        loop {
            let dequeued = self.shared.dequeued.notified();
            tokio::pin!(dequeued);
            // Registered before looking, so a write finishing in between still wakes us.
            dequeued.as_mut().enable();
            if self.shared.state().queue.pending.values().all(|queued| queued.number > before) {
                return;
            }
            dequeued.await;
        }
    }

    /// Deletes the entry under `key`; whether there was one.
    pub async fn remove(&self, key: &str) -> bool {
        let known = {
            let mut state = self.shared.state();
            let indexed = state.index.remove(key).is_some();
            state.queue.pending.remove(key).is_some() || indexed
        };
        self.shared.dequeued.notify_waiters();
        self.delete_file(&self.shared.path_of(key)).await;
        known
    }

    /// Deletes the entries carrying one of `tags` computed under a watermark before `version`,
    /// queued ones included; how many.
    pub async fn invalidate(&self, tags: &[String], version: InvalidationVersion) -> u64 {
        let doomed = |watermark: &Watermark, entry_tags: &[String]| {
            watermark.is_before(version) && entry_tags.iter().any(|t| tags.contains(t))
        };
        let (on_disk, count) = {
            let mut state = self.shared.state();
            let on_disk: Vec<String> = state
                .index
                .records
                .iter()
                .filter(|(_, r)| doomed(&r.watermark, &r.tags))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &on_disk {
                state.index.remove(key);
            }
            let queued: Vec<String> = state
                .queue
                .pending
                .iter()
                .filter(|(_, q)| doomed(&q.entry.watermark, &q.entry.tags))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &queued {
                state.queue.pending.remove(key);
            }
            let count = on_disk.len() + queued.iter().filter(|key| !on_disk.contains(key)).count();
            (on_disk, count as u64)
        };
        self.shared.dequeued.notify_waiters();
        for key in &on_disk {
            self.delete_file(&self.shared.path_of(key)).await;
        }
        count
    }

    /// The distinct tags of the entries held, queued ones included (to check them against
    /// Redis at start).
    pub fn tags(&self) -> Vec<String> {
        let state = self.shared.state();
        let indexed = state.index.records.values().flat_map(|r| r.tags.iter());
        let queued = state.queue.pending.values().flat_map(|q| q.entry.tags.iter());
        let mut tags: Vec<String> = indexed.chain(queued).cloned().collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    /// Deletes every entry, queued ones included.
    pub async fn clear(&self) {
        let keys: Vec<String> = {
            let mut state = self.shared.state();
            state.queue.pending.clear();
            state.queue.order.clear();
            state.index.records.keys().cloned().collect()
        };
        self.shared.dequeued.notify_waiters();
        for key in keys {
            self.remove(&key).await;
        }
    }

    /// Bytes of the files held.
    pub fn bytes(&self) -> u64 {
        self.shared.state().index.total_bytes
    }

    /// Deletes dead entries, then least recently used ones until within the size bound.
    pub async fn evict(&self) {
        let shared = self.shared.clone();
        Self::blocking(move || {
            shared.evict_now();
        })
        .await;
    }

    async fn delete_file(&self, path: &Path) {
        let (shared, path) = (self.shared.clone(), path.to_path_buf());
        Self::blocking(move || shared.delete_file_now(&path)).await;
    }

    /// Runs file work on the blocking pool, as `tokio::fs` does.
    async fn blocking(work: impl FnOnce() + Send + 'static) {
        if let Err(error) = tokio::task::spawn_blocking(work).await {
            warn!(%error, "a disk cache file operation did not finish");
        }
    }
}

/// A flush waiting: the writer writes without resting until it is dropped.
struct Hurry<'a>(&'a Shared);

impl<'a> Hurry<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.flushing.fetch_add(1, Ordering::SeqCst);
        // Taken under the lock, so a writer between its check and its wait still wakes.
        drop(shared.state());
        shared.queued.notify_all();
        Hurry(shared)
    }
}

impl Drop for Hurry<'_> {
    fn drop(&mut self) {
        self.0.flushing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for DiskLayer {
    fn drop(&mut self) {
        // The writer finishes what is queued, then stops.
        self.shared.state().queue.closed = true;
        self.shared.queued.notify_all();
    }
}

fn record_of(entry: &Entry, bytes: u64, version: u64) -> Record {
    Record {
        bytes,
        dead_at_ms: entry.dead_at_ms(),
        tags: entry.tags.clone(),
        watermark: entry.watermark.clone(),
        used: 0,
        version,
    }
}
