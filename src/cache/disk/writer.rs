//! The disk layer's writer: one thread per layer that takes queued entries in order, seals
//! each into a temporary file and renames it into place, then records it in the index.
//!
//! Why a thread of its own rather than a task per write on tokio's blocking pool: the writes
//! come one at a time, so creating files never contends on the folder's lock, and the thread
//! runs at [`WRITER_NICE`], so the kernel gives the cores to answers first.

use std::sync::Arc;

use super::{Queued, Shared, TEMP_SUFFIX, metric, record_of};

/// The writer thread's nice value: below live work, as the analysis pool's heavy analyses.
const WRITER_NICE: i32 = 10;

/// Starts the writer of `shared`; it stops once the layer is dropped and its queue is empty.
pub(super) fn spawn(shared: Arc<Shared>) -> std::io::Result<()> {
    std::thread::Builder::new().name("cache-disk-writer".into()).spawn(move || {
        crate::process::set_thread_nice(WRITER_NICE);
        while let Some((key, queued)) = next_write(&shared) {
            let bytes = write(&shared, &key, &queued);
            finish(&shared, key, &queued, bytes);
        }
        shared.dequeued.notify_waiters();
    })?;
    Ok(())
}

/// The next key due and its entry (which stays queued, so readers find it until it is
/// written); waits for one; `None` once the layer is closed and nothing is left.
fn next_write(shared: &Shared) -> Option<(String, Queued)> {
    let mut state = shared.state();
    loop {
        while let Some(key) = state.queue.order.pop_front() {
            // A key removed since it was queued has nothing to write.
            if let Some(queued) = state.queue.pending.get(&key) {
                let job = Queued { number: queued.number, entry: queued.entry.clone() };
                return Some((key, job));
            }
        }
        if state.queue.closed {
            return None;
        }
        state = shared.queued.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// Writes `queued` to its file atomically; its size, or `None` when nothing was written (too
/// large for the layer, or the disk failed: counted and logged).
fn write(shared: &Shared, key: &str, queued: &Queued) -> Option<u64> {
    let path = shared.path_of(key);
    let sealed = match shared.sealer.seal(key, &queued.entry) {
        Ok(sealed) => sealed,
        Err(error) => {
            shared.io_failed("write", &path, &std::io::Error::other(error));
            return None;
        }
    };
    if sealed.len() as u64 > shared.max_bytes {
        return None;
    }
    // A temporary name of its own: a reader never sees half a file, and a leftover (a crash
    // mid-write) is deleted at the next start.
    let temp = shared.dir.join(format!(".{key}.{:016x}{TEMP_SUFFIX}", rand::random::<u64>()));
    if let Err(error) = std::fs::write(&temp, &sealed) {
        shared.io_failed("write", &temp, &error);
        shared.delete_file_now(&temp);
        return None;
    }
    if let Err(error) = std::fs::rename(&temp, &path) {
        shared.io_failed("write", &path, &error);
        shared.delete_file_now(&temp);
        return None;
    }
    Some(sealed.len() as u64)
}

/// Records a finished write: indexed and dequeued if its entry is still the newest under its
/// key; indexed and queued again if a newer one was put meanwhile; deleted if the entry was
/// removed or invalidated while it was written. Then evicts to stay within the size bound.
fn finish(shared: &Shared, key: String, queued: &Queued, bytes: Option<u64>) {
    let (stale, total) = {
        let mut state = shared.state();
        let newest = state.queue.pending.get(&key).map(|newest| newest.number);
        let stale = match newest {
            None => bytes.is_some(),
            Some(number) => {
                if let Some(bytes) = bytes {
                    state.index.insert(key.clone(), record_of(&queued.entry, bytes));
                }
                if number == queued.number {
                    state.queue.pending.remove(&key);
                } else {
                    // The file holds the older entry until the newer one's turn.
                    state.queue.order.push_back(key.clone());
                }
                false
            }
        };
        ::metrics::gauge!(metric::DISK_QUEUE).set(state.queue.pending.len() as f64);
        (stale, state.index.total_bytes)
    };
    if stale {
        shared.delete_file_now(&shared.path_of(&key));
    }
    let total = if total > shared.max_bytes { shared.evict_now() } else { total };
    ::metrics::gauge!(metric::BYTES, "layer" => "disk").set(total as f64);
    shared.dequeued.notify_waiters();
}
