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
    layer.put("k:a", Arc::new(entry(10, &[], 0)));
    layer.put("k:b", Arc::new(entry(10, &[], 0)));
    layer.flush().await;
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
        layer.put("k:probe", Arc::new(entry(1000, &[], 0)));
        layer.flush().await;
        layer.bytes()
    };
    let layer = DiskLayer::open(dir.path(), one * 3, sealer(), Arc::default()).await.unwrap();
    layer.put("k:a", Arc::new(entry(1000, &[], 0)));
    layer.put("k:b", Arc::new(entry(1000, &[], 0)));
    layer.flush().await;
    assert!(layer.get("k:probe").await.is_some());
    layer.put("k:c", Arc::new(entry(1000, &[], 0)));
    layer.flush().await;
    assert!(layer.bytes() <= one * 3);
    assert!(layer.get("k:a").await.is_none(), "a was the least recently used");
    assert!(layer.get("k:probe").await.is_some() && layer.get("k:c").await.is_some());
}

#[tokio::test]
async fn invalidation_spares_entries_computed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    layer.put("k:old", Arc::new(entry(10, &["symbol:AAPL"], 4)));
    layer.put("k:new", Arc::new(entry(10, &["symbol:AAPL"], 5)));
    layer.put("k:other", Arc::new(entry(10, &["symbol:MSFT"], 4)));
    layer.flush().await;
    assert_eq!(layer.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 5)).await, 1);
    assert!(layer.get("k:old").await.is_none());
    assert!(layer.get("k:new").await.is_some() && layer.get("k:other").await.is_some());
}

#[tokio::test]
async fn a_queued_entry_is_answered_at_once_and_written_by_flush() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    layer.put("k:a", Arc::new(entry(10, &["symbol:AAPL"], 0)));
    assert_eq!(layer.get("k:a").await.map(|e| e.payload.len()), Some(10));
    assert_eq!(layer.tags(), vec!["symbol:AAPL".to_string()]);
    layer.flush().await;
    assert!(dir.path().join("k:a.entry").exists());
    assert!(layer.bytes() > 0);
}

#[tokio::test]
async fn the_newest_of_two_puts_is_the_one_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    layer.put("k:a", Arc::new(entry(10, &[], 0)));
    layer.put("k:a", Arc::new(entry(20, &[], 0)));
    layer.flush().await;
    drop(layer);
    let reopened = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    assert_eq!(reopened.get("k:a").await.map(|e| e.payload.len()), Some(20));
}

#[tokio::test]
async fn an_entry_removed_before_its_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    layer.put("k:a", Arc::new(entry(10, &[], 0)));
    assert!(layer.remove("k:a").await);
    layer.flush().await;
    assert!(layer.get("k:a").await.is_none());
    assert!(!dir.path().join("k:a.entry").exists());
}

#[tokio::test]
async fn an_entry_invalidated_before_its_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    layer.put("k:old", Arc::new(entry(10, &["symbol:AAPL"], 4)));
    assert_eq!(layer.invalidate(&["symbol:AAPL".to_string()], InvalidationVersion::new(0, 5)).await, 1);
    layer.flush().await;
    assert!(layer.get("k:old").await.is_none());
    assert!(!dir.path().join("k:old.entry").exists());
}

#[tokio::test]
async fn a_dropped_layer_still_writes_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    for i in 0..50 {
        layer.put(&format!("k:{i}"), Arc::new(entry(10, &[], 0)));
    }
    drop(layer);
    let path = dir.path().join("k:49.entry");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(path.exists(), "the writer stopped before its queue was written");
}

#[tokio::test]
async fn a_key_written_again_is_rewritten_in_its_own_file_even_when_shorter() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let layer = DiskLayer::open(dir.path(), 1 << 20, sealer(), Arc::default()).await.unwrap();
    let path = dir.path().join("k:a.entry");
    layer.put("k:a", Arc::new(entry(20, &[], 0)));
    layer.flush().await;
    let inode = std::fs::metadata(&path).unwrap().ino();
    layer.put("k:a", Arc::new(entry(10, &[], 0)));
    layer.flush().await;
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "a new file was created");
    drop(layer);
    let counters = Arc::new(Counters::default());
    let reopened = DiskLayer::open(dir.path(), 1 << 20, sealer(), counters.clone()).await.unwrap();
    assert_eq!(reopened.get("k:a").await.map(|e| e.payload.len()), Some(10));
    assert_eq!(counters.snapshot().unreadable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_read_while_it_is_rewritten_is_never_taken_for_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    let layer = Arc::new(DiskLayer::open(dir.path(), 1 << 20, sealer(), counters.clone()).await.unwrap());
    layer.put("k:a", Arc::new(entry(2000, &[], 0)));
    layer.flush().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (layer, stop) = (layer.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    layer.get("k:a").await;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // Sizes alternate, so a reader also meets a new entry with the old one's tail.
    for round in 0..2000 {
        layer.put("k:a", Arc::new(entry(if round % 2 == 0 { 500 } else { 2000 }, &[], 0)));
        layer.flush().await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    assert!(reads > 0);
    assert_eq!(counters.snapshot().unreadable, 0, "a rewrite was counted as an unreadable file ({reads} reads)");
    assert!(layer.get("k:a").await.is_some(), "the entry was dropped as broken");
}
