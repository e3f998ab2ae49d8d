//! `frontier run cache-warmer` against crafted `CacheHeat` records: well-formed Avro whose
//! numbers and keys no serving instance would write.

use std::time::{Duration, Instant};

use frontier::bus::SchemaCatalog;
use frontier::bus::json::json_to_avro;
use frontier::cache::CacheKey;
use frontier::clock::now_millis;
use frontier::records::CacheHeat;
use frontier::settings::Settings;
use serde_json::{Value, json};

use super::common::process::{PATIENCE, Worker, assert_no_dead_letters, topics};
use super::common::*;
use super::{dead_letters, produce_large};

/// A warmer with its own heat, invalidation and dead-letter topics and Redis prefix, publishing
/// its hot set every 200 ms.
struct Warming {
    settings: Settings,
    redis_url: String,
    redis_prefix: String,
    heat: String,
    dlq: String,
    worker: Worker,
}

impl Warming {
    async fn start(test: &str) -> Warming {
        let settings = settings();
        let redis_url = super::common::redis::stack_redis(&settings).await;
        let [heat, invalidations, dlq] =
            topics(&settings, &format!("hostile.warmer.{test}"), ["heat", "invalidations", "dlq"]).await;
        let redis_prefix = unique("hostile:warmer");
        let worker = Worker::start(
            "cache-warmer",
            &[
                ("FRONTIER_WORKERS__CACHE_WARMER__INPUT_TOPIC", heat.clone()),
                ("FRONTIER_WORKERS__CACHE_WARMER__GROUP_ID", unique("hostile.warmer.group")),
                ("FRONTIER_WORKERS__CACHE_WARMER__HOT_SET_INTERVAL", "200ms".into()),
                ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations),
                ("FRONTIER_CACHE__REDIS_KEY_PREFIX", redis_prefix.clone()),
                ("FRONTIER_BUS__DLQ_TOPIC", dlq.clone()),
                ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
            ],
        );
        Warming { settings, redis_url, redis_prefix, heat, dlq, worker }
    }

    /// Publishes `CacheHeat` records given as plain JSON, keyed by service.
    async fn send(&self, windows: &[Value]) {
        let catalog = catalog();
        let schema = catalog.schema_of::<CacheHeat>().unwrap();
        let records = windows
            .iter()
            .map(|doc| {
                let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(doc, &schema.schema).unwrap()).unwrap();
                (doc["service"].as_str().map(str::to_owned), bytes)
            })
            .collect();
        produce(&self.settings, &self.heat, records).await;
    }

    /// The hot set once it lists `key`, failing with the warmer's log when it does not.
    async fn hot_set_listing(&mut self, key: &str) -> Vec<(String, f64)> {
        let started = Instant::now();
        loop {
            self.worker.assert_running();
            let listed = super::common::redis::hot_set(&self.redis_url, &self.redis_prefix).await;
            if listed.iter().any(|(listed, _)| listed == key) {
                return listed;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{key} never reached the hot set ({listed:?}); the warmer's log:\n{}",
                self.worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Warming {
    fn drop(&mut self) {
        let (url, prefix) = (self.redis_url.clone(), self.redis_prefix.clone());
        // Drop runs inside the test's runtime: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(super::common::redis::delete_prefix(&url, &prefix));
        })
        .join();
    }
}

fn cache_key(symbol: &str) -> String {
    CacheKey::for_request("market.volatility", &json!({"symbol": symbol, "window_days": 30}), "acme", &[])
        .as_str()
        .to_owned()
}

/// One window of the serving worker's service with `keys` (`[cache_key, requests,
/// last_computed_at]`), ending at `end`.
fn window(end: i64, keys: &[(String, i64, Option<i64>)]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(key, requests, computed)| {
            json!({"cache_key": key, "kind": "market.volatility", "requests": requests, "last_computed_at": computed})
        })
        .collect();
    json!({"service": "serve", "instance": "crafted", "window_start": end.saturating_sub(1_000), "window_end": end, "keys": keys})
}

/// Sends the normal window each test sends after its crafted ones (five answers of a key of its
/// own) and returns the key's score once the hot set lists it.
async fn five_answers_counted(warming: &mut Warming, symbol: &str) -> f64 {
    let key = cache_key(symbol);
    warming.send(&[window(now_millis(), &[(key.clone(), 5, Some(now_millis()))])]).await;
    let listed = warming.hot_set_listing(&key).await;
    listed.iter().find(|(listed, _)| *listed == key).map(|(_, score)| *score).unwrap()
}

/// The score of five answers a moment ago, decayed by a 60 s half-life.
fn about_five(score: f64) -> bool {
    (4.0..=5.0 + 1e-9).contains(&score)
}

#[tokio::test]
async fn a_window_dated_i64_min_counts_nothing_and_later_windows_still_count() {
    let mut warming = Warming::start("window-at-min").await;
    let ancient = cache_key("ANCIENT");
    warming.send(&[window(i64::MIN, &[(ancient.clone(), 1_000, Some(i64::MIN))])]).await;
    let score = five_answers_counted(&mut warming, "AFTER-ANCIENT").await;
    assert!(about_five(score), "{score}");
    let listed = warming.hot_set_listing(&cache_key("AFTER-ANCIENT")).await;
    assert!(
        !listed.iter().any(|(key, _)| *key == ancient),
        "answers from the year -292 million are not hot: {listed:?}"
    );
    assert_no_dead_letters(&warming.settings, &warming.dlq);
}

#[tokio::test]
async fn counts_near_i64_max_and_negative_counts_neither_stop_the_warmer_nor_poison_the_table() {
    let mut warming = Warming::start("extreme-counts").await;
    let now = now_millis();
    let huge = cache_key("HUGE");
    let keys = [
        (huge.clone(), i64::MAX, Some(i64::MAX)),
        (cache_key("HUGE-TOO"), i64::MAX, None),
        (cache_key("NEGATIVE"), i64::MIN, Some(i64::MIN)),
        (cache_key("ZERO"), 0, None),
    ];
    // A window from the far future too: counted at this clock, not ahead of it.
    warming.send(&[window(now, &keys), window(i64::MAX, &[(huge.clone(), i64::MAX, None)])]).await;
    let score = five_answers_counted(&mut warming, "AFTER-EXTREMES").await;
    assert!(about_five(score), "{score}");
    let listed = warming.hot_set_listing(&huge).await;
    assert!(listed.iter().all(|(_, score)| score.is_finite()), "every score is a number: {listed:?}");
    let hot: Vec<&str> = listed.iter().map(|(key, _)| key.as_str()).collect();
    assert!(!hot.contains(&cache_key("NEGATIVE").as_str()) && !hot.contains(&cache_key("ZERO").as_str()), "{hot:?}");
    assert_no_dead_letters(&warming.settings, &warming.dlq);
}

#[tokio::test]
async fn unparsable_keys_and_other_services_are_skipped_and_their_neighbours_counted() {
    let mut warming = Warming::start("bad-keys").await;
    let now = now_millis();
    let neighbour = cache_key("NEIGHBOUR");
    let keys = [
        (String::new(), 9, None),
        ("not a cache key".to_owned(), 9, None),
        ("v1:".repeat(10_000), 9, None),
        (neighbour.clone(), 7, Some(now)),
    ];
    let mut other_service = window(now, &[(cache_key("OTHER-SERVICE"), 9, None)]);
    other_service["service"] = json!("not-serve");
    // The other service's window first: by the time its neighbour is listed, it was read.
    warming.send(&[other_service, window(now, &keys)]).await;
    let listed = warming.hot_set_listing(&neighbour).await;
    assert_eq!(listed.len(), 1, "only the parsable key of the serving worker's service is hot: {listed:?}");
    let score = five_answers_counted(&mut warming, "AFTER-BAD-KEYS").await;
    assert!(about_five(score), "{score}");
    assert_no_dead_letters(&warming.settings, &warming.dlq);
}

#[tokio::test]
async fn sixteen_thousand_keys_in_two_windows_are_counted_within_the_table_s_bound() {
    let mut warming = Warming::start("many-keys").await;
    let schema = catalog().schema_of::<CacheHeat>().unwrap();
    // Two windows of about 850 KB each (the broker takes 1 MB a record as shipped): more keys
    // than the warmer tracks (10,000 as shipped), each answered 3 times (hot: the minimum score
    // is 2).
    for part in 0..2 {
        let keys: Vec<(String, i64, Option<i64>)> =
            (0..8_000).map(|i| (cache_key(&format!("MANY-{part}-{i}")), 3, None)).collect();
        let doc = window(now_millis(), &keys);
        let bytes = SchemaCatalog::encode_value(&schema, json_to_avro(&doc, &schema.schema).unwrap()).unwrap();
        produce_large(&warming.settings, &warming.heat, "serve", bytes).await;
    }
    // Space-Saving gives a newcomer to a full table the weight of the key it replaces: a key
    // that is really hot is never missed, and its count is never under its answers.
    let score = five_answers_counted(&mut warming, "AFTER-MANY").await;
    assert!(score >= 4.0, "{score}");
    let listed = warming.hot_set_listing(&cache_key("AFTER-MANY")).await;
    assert!(listed.len() <= 1_000, "the hot set holds the shipped 1,000 keys at most: {}", listed.len());
    assert_no_dead_letters(&warming.settings, &warming.dlq);
}

#[tokio::test]
async fn a_record_that_is_not_cache_heat_is_dead_lettered_and_the_next_window_counted() {
    let mut warming = Warming::start("not-heat").await;
    produce_large(&warming.settings, &warming.heat, "serve", b"\xc3\x01not avro at all".to_vec()).await;
    let letters = dead_letters(&warming.settings, &warming.dlq, 1);
    assert_eq!(letters.len(), 1);
    assert!(!letters[0].reason.is_empty(), "the dead letter says why: {:?}", letters[0]);
    let score = five_answers_counted(&mut warming, "AFTER-NOT-HEAT").await;
    assert!(about_five(score), "{score}");
}
