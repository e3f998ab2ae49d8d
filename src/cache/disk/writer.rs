//! The disk layer's writer: one thread per layer that takes queued entries in order, seals
//! each and writes it to its file, then records it in the index. A key's first file is written
//! to a temporary file and renamed into place; a key that has a file is rewritten in place.
//! Why: on ext4 without a journal a file created costs 0.7-0.8 ms of the kernel's time (it
//! scans the inodes deleted in the last minutes, and the file renamed over is one more), and a
//! rewrite in place 10-130 us; in `bench serve` most writes after the first ttl are keys
//! recomputed after it. A reader that opens a half-rewritten file finds it unreadable (it is
//! sealed with AES-GCM) and takes it for a miss ([`super::DiskLayer::get`]); a crash
//! mid-rewrite leaves a file the next start finds unreadable and deletes.
//!
//! Why a thread of its own rather than a task per write on tokio's blocking pool: the writes
//! come one at a time, so creating files never contends on the folder's lock, and the thread
//! runs at [`WRITER_NICE`], so the kernel gives the cores to answers first.
//!
//! It also keeps to [`CORE_SHARE`] of one core while its queue is short: after each file it
//! rests four times as long as the file took (on a busy machine a file takes longer, so the
//! writer slows down further). Why: nice does not reach other
//! processes (each session is its own scheduling group on Linux desktops and on these
//! machines), and on ext4 without a journal a file created costs about a millisecond of the
//! kernel's time (it scans the inodes deleted in the last minutes): in the first 500 ms of an
//! empty-cache phase of `bench serve` the writer took a third of both cores from the broker,
//! Redis and PostgreSQL the answers wait on. Paced, a burst's files are written over the next
//! seconds instead (queued entries are answered from the queue meanwhile). Where files are
//! cheap the pause is as short as the write. A queue past half full is written at full speed,
//! and so is the queue of a closing layer or one being flushed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{MAX_QUEUED, Queued, Shared, TEMP_SUFFIX, metric, record_of};

/// The writer thread's nice value: below live work, as the analysis pool's heavy analyses.
const WRITER_NICE: i32 = 10;

/// The share of one core the writer keeps to while its queue is at most half full.
const CORE_SHARE: f64 = 0.2;

/// The longest rest between two files, whatever the last one took.
const MAX_REST: Duration = Duration::from_millis(50);

/// Starts the writer of `shared`; it stops once the layer is dropped and its queue is empty.
pub(super) fn spawn(shared: Arc<Shared>) -> std::io::Result<()> {
    std::thread::Builder::new().name("cache-disk-writer".into()).spawn(move || {
        crate::process::set_thread_nice(WRITER_NICE);
        while let Some((key, queued)) = next_write(&shared) {
            let started = Instant::now();
            let bytes = write(&shared, &key, &queued);
            finish(&shared, key, &queued, bytes);
            rest(&shared, started.elapsed());
        }
        shared.dequeued.notify_waiters();
    })?;
    Ok(())
}

/// Rests after a file that took `took`, so the writer keeps to [`CORE_SHARE`] of a core; not
/// when the queue is past half full, the layer is being flushed or closing (either wakes it).
fn rest(shared: &Shared, took: Duration) {
    let deadline = Instant::now() + rest_after(took);
    let mut state = shared.state();
    loop {
        let now = Instant::now();
        let hurried = shared.flushing.load(Ordering::SeqCst) > 0;
        if state.queue.closed || hurried || state.queue.pending.len() > MAX_QUEUED / 2 || now >= deadline {
            return;
        }
        // A put also wakes the writer early: the checks above run again, and it rests on.
        state = match shared.queued.wait_timeout(state, deadline - now) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// How long to rest after a file that took `took`: so that writing is [`CORE_SHARE`] of the
/// time, at most [`MAX_REST`].
fn rest_after(took: Duration) -> Duration {
    took.mul_f64(1.0 / CORE_SHARE - 1.0).min(MAX_REST)
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
    let rewritable = shared.state().index.records.contains_key(key);
    if rewritable {
        match rewrite(&path, &sealed) {
            Ok(()) => return Some(sealed.len() as u64),
            // Deleted since (evicted, invalidated): written anew below, and deleted again by
            // `finish` if its entry is gone.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            // Half written, perhaps: neither the file nor its record stays.
            Err(error) => {
                shared.io_failed("write", &path, &error);
                shared.state().index.remove(key);
                shared.delete_file_now(&path);
                return None;
            }
        }
    }
    // A temporary name of its own: no reader sees a new file half written, and a leftover (a
    // crash mid-write) is deleted at the next start.
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

/// Writes `sealed` over the file at `path` from its start and cuts it to `sealed`'s length.
fn rewrite(path: &std::path::Path, sealed: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(sealed, 0)?;
    file.set_len(sealed.len() as u64)
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
                    state.index.insert(key.clone(), record_of(&queued.entry, bytes, queued.number));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_rests_four_times_as_long_as_a_file_took() {
        assert_eq!(rest_after(Duration::from_micros(250)), Duration::from_millis(1));
        assert_eq!(rest_after(Duration::from_millis(2)), Duration::from_millis(8));
    }

    #[test]
    fn a_slow_file_costs_at_most_the_longest_rest() {
        assert_eq!(rest_after(Duration::from_secs(1)), MAX_REST);
    }
}
