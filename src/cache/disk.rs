//! The disk layer: one sealed file per entry in a folder this instance owns, written to a
//! temporary file and renamed into place (a reader never sees half a file), bounded in bytes:
//! dead entries go first, then the least recently used.
//!
//! An in-memory index (key -> size, lifetime, tags, watermark) answers "is it there" and "which
//! entries carry this tag" without touching the disk; it is rebuilt from the files at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::warn;

use super::entry::Entry;
use super::metric;
use super::sealed::Sealer;
use super::stats::{Counters, bump};
use super::watermark::{InvalidationVersion, Watermark};

const SUFFIX: &str = ".entry";
const TEMP_SUFFIX: &str = ".tmp";

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

/// The local persistent layer.
pub struct DiskLayer {
    dir: PathBuf,
    max_bytes: u64,
    sealer: Sealer,
    index: Mutex<Index>,
    counters: Arc<Counters>,
}

impl DiskLayer {
    /// Opens (creating it if needed) `dir`, indexing the readable live entries in it and
    /// deleting the rest (dead, unreadable, leftover temporary files).
    pub async fn open(
        dir: &Path,
        max_bytes: u64,
        sealer: Sealer,
        counters: Arc<Counters>,
    ) -> Result<DiskLayer, DiskLayerError> {
        let failed = |source| DiskLayerError { path: dir.to_path_buf(), source };
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        let layer =
            DiskLayer { dir: dir.to_path_buf(), max_bytes, sealer, index: Mutex::new(Index::default()), counters };
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
                Ok(bytes) => match layer.sealer.open(Some(key), &bytes) {
                    Ok((key, entry)) if entry.dead_at_ms() > now_ms => {
                        layer.index().insert(key, record_of(&entry, bytes.len() as u64));
                    }
                    Ok(_) => layer.delete_file(&path).await,
                    Err(reason) => {
                        layer.count_unreadable(reason.label());
                        layer.delete_file(&path).await;
                    }
                },
                Err(error) => layer.io_failed("scan", &path, &error),
            }
        }
        layer.evict().await;
        Ok(layer)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // Every index mutation is a few field updates that cannot panic halfway in practice;
        // a poisoned lock still holds a usable index.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, key: &str) -> PathBuf {
        // Cache keys are `[a-z0-9._-]` and `:` plus hex: safe as file names.
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    /// The entry under `key`, if a readable live file holds it.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        {
            let mut index = self.index();
            index.clock += 1;
            let clock = index.clock;
            let record = index.records.get_mut(key)?;
            record.used = clock;
        }
        let path = self.path_of(key);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) => {
                self.index().remove(key);
                if error.kind() != std::io::ErrorKind::NotFound {
                    self.io_failed("read", &path, &error);
                }
                return None;
            }
        };
        match self.sealer.open(Some(key), &bytes) {
            Ok((_, entry)) => Some(entry),
            Err(reason) => {
                self.count_unreadable(reason.label());
                warn!(key, %reason, "dropping an unreadable entry from the disk cache");
                self.remove(key).await;
                None
            }
        }
    }

    /// Writes `entry` under `key` atomically, then evicts to stay within the size bound.
    pub async fn put(&self, key: &str, entry: &Entry) {
        let sealed = match self.sealer.seal(key, entry) {
            Ok(sealed) => sealed,
            Err(error) => {
                self.io_failed("write", &self.path_of(key), &std::io::Error::other(error));
                return;
            }
        };
        if sealed.len() as u64 > self.max_bytes {
            return;
        }
        let path = self.path_of(key);
        // A unique temporary name: concurrent writers of one key never share a file.
        let temp = self.dir.join(format!(".{key}.{:016x}{TEMP_SUFFIX}", rand::random::<u64>()));
        if let Err(error) = tokio::fs::write(&temp, &sealed).await {
            self.io_failed("write", &temp, &error);
            self.delete_file(&temp).await;
            return;
        }
        if let Err(error) = tokio::fs::rename(&temp, &path).await {
            self.io_failed("write", &path, &error);
            self.delete_file(&temp).await;
            return;
        }
        self.index().insert(key.to_string(), record_of(entry, sealed.len() as u64));
        if self.index().total_bytes > self.max_bytes {
            self.evict().await;
        }
        ::metrics::gauge!(metric::BYTES, "layer" => "disk").set(self.bytes() as f64);
    }

    /// Deletes the entry under `key`; whether there was one.
    pub async fn remove(&self, key: &str) -> bool {
        let known = self.index().remove(key).is_some();
        self.delete_file(&self.path_of(key)).await;
        known
    }

    /// Deletes the entries carrying one of `tags` computed under a watermark before `version`;
    /// how many.
    pub async fn invalidate(&self, tags: &[String], version: InvalidationVersion) -> u64 {
        let doomed: Vec<String> = {
            let mut index = self.index();
            let keys: Vec<String> = index
                .records
                .iter()
                .filter(|(_, r)| r.watermark.is_before(version) && r.tags.iter().any(|t| tags.contains(t)))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &keys {
                index.remove(key);
            }
            keys
        };
        for key in &doomed {
            self.delete_file(&self.path_of(key)).await;
        }
        doomed.len() as u64
    }

    /// The distinct tags of the entries held (to check them against Redis at start).
    pub fn tags(&self) -> Vec<String> {
        let index = self.index();
        let mut tags: Vec<String> = index.records.values().flat_map(|r| r.tags.iter().cloned()).collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    /// Deletes every entry.
    pub async fn clear(&self) {
        let keys: Vec<String> = self.index().records.keys().cloned().collect();
        for key in keys {
            self.remove(&key).await;
        }
    }

    /// Bytes of the files held.
    pub fn bytes(&self) -> u64 {
        self.index().total_bytes
    }

    /// Deletes dead entries, then least recently used ones until within the size bound.
    pub async fn evict(&self) {
        let evicted = self.index().evict_to_fit(self.max_bytes, crate::clock::now_millis());
        for (key, cause) in evicted {
            ::metrics::counter!(metric::EVICTIONS, "layer" => "disk", "cause" => cause).increment(1);
            self.delete_file(&self.path_of(&key)).await;
        }
    }

    async fn delete_file(&self, path: &Path) {
        if let Err(error) = tokio::fs::remove_file(path).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            self.io_failed("remove", path, &error);
        }
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
}

fn record_of(entry: &Entry, bytes: u64) -> Record {
    Record {
        bytes,
        dead_at_ms: entry.dead_at_ms(),
        tags: entry.tags.clone(),
        watermark: entry.watermark.clone(),
        used: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::keyring::Keyring;
    use crate::cache::settings::CachePolicy;

    fn sealer() -> Sealer {
        Sealer::new(Arc::new(Keyring::new(vec![("k1".into(), [1; 32])], "k1").unwrap()), 1 << 20)
    }

    fn entry(size: usize, tags: &[&str], offset: i64) -> Entry {
        let policy = CachePolicy { ttl: Duration::from_secs(60), grace: Duration::from_secs(1) };
        let tags = tags.iter().map(|t| t.to_string()).collect();
        Entry::new(
            Arc::from(vec![7u8; size]),
            policy,
            tags,
            Watermark::from_offsets([(0, offset)]),
            Duration::ZERO,
            crate::clock::now_millis(),
        )
    }

    #[tokio::test]
    async fn entries_survive_a_reopen_and_tampered_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
        layer.put("k:a", &entry(10, &[], 0)).await;
        layer.put("k:b", &entry(10, &[], 0)).await;
        drop(layer);
        let path_b = dir.path().join("k:b.entry");
        let mut bytes = std::fs::read(&path_b).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path_b, bytes).unwrap();
        let counters = Arc::new(Counters::default());
        let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), counters.clone()).await.unwrap();
        assert_eq!(layer.get("k:a").await.map(|e| e.payload.len()), Some(10));
        assert!(layer.get("k:b").await.is_none());
        assert_eq!(counters.snapshot().unreadable, 1);
        assert!(!path_b.exists());
    }

    #[tokio::test]
    async fn the_least_recently_used_entry_goes_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let one = {
            let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
            layer.put("k:probe", &entry(1000, &[], 0)).await;
            layer.bytes()
        };
        let layer = DiskLayer::open(dir.path(), one * 3, sealer(), Arc::default()).await.unwrap();
        layer.put("k:a", &entry(1000, &[], 0)).await;
        layer.put("k:b", &entry(1000, &[], 0)).await;
        assert!(layer.get("k:probe").await.is_some());
        layer.put("k:c", &entry(1000, &[], 0)).await;
        assert!(layer.bytes() <= one * 3);
        assert!(layer.get("k:a").await.is_none(), "a was the least recently used");
        assert!(layer.get("k:probe").await.is_some() && layer.get("k:c").await.is_some());
    }

    #[tokio::test]
    async fn invalidation_spares_entries_computed_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
        layer.put("k:old", &entry(10, &["symbol:AAPL"], 4)).await;
        layer.put("k:new", &entry(10, &["symbol:AAPL"], 5)).await;
        layer.put("k:other", &entry(10, &["symbol:MSFT"], 4)).await;
        assert_eq!(layer.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 5)).await, 1);
        assert!(layer.get("k:old").await.is_none());
        assert!(layer.get("k:new").await.is_some() && layer.get("k:other").await.is_some());
    }
}
