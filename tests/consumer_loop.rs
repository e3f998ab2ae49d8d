//! The shared consumer loop, driven in-process against the real broker.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use frontier::bus::json::avro_to_json;
use frontier::bus::{ConsumerLoop, HandlerError, Inbound, LoopOptions, LoopReport, Outbound, Worker, dlq};
use frontier::settings::Settings;
use frontier::workers::passthrough::Passthrough;
use rdkafka::Message;
use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;

/// Rejects ids starting with `reject`, fails transiently twice on ids starting with `flaky`.
struct Picky {
    output: String,
    transient_failures_left: AtomicU32,
}

impl Worker for Picky {
    fn name(&self) -> &'static str {
        "picky"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let id = avro_to_json(message.value()?)["id"].as_str().unwrap_or_default().to_string();
        if id.starts_with("reject") {
            return Err(HandlerError::rejected("invalid_request", format!("request {id} is not acceptable")));
        }
        if id.starts_with("flaky") && self.transient_failures_left.load(Ordering::SeqCst) > 0 {
            self.transient_failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(HandlerError::transient("backend_unavailable", "try again"));
        }
        Ok(vec![Outbound::new(self.output.clone(), message.key.clone(), message.payload.clone())])
    }
}

struct Topics {
    input: String,
    output: String,
    dlq: String,
}

async fn setup(name: &str) -> (Settings, Topics) {
    let mut settings = settings();
    let topics = Topics {
        input: unique(&format!("{name}.in")),
        output: unique(&format!("{name}.out")),
        dlq: unique(&format!("{name}.dlq")),
    };
    settings.bus.dlq_topic = topics.dlq.clone();
    settings.bus.retry_initial_backoff = Duration::from_millis(10);
    // One partition, so arrival order and offsets are known.
    create_topics(&settings, &[&topics.input, &topics.output, &topics.dlq], 1).await;
    (settings, topics)
}

type Running = (CancellationToken, tokio::task::JoinHandle<Result<LoopReport, frontier::bus::BusError>>);

/// Starts a loop for `worker` in `group`.
fn start<W: Worker>(settings: &Settings, topics: &Topics, group: &str, worker: W) -> Running {
    let options = LoopOptions::new(&settings.bus, group, vec![topics.input.clone()]);
    let consumer_loop = ConsumerLoop::new(&settings.kafka, options, Arc::new(worker), catalog()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(consumer_loop.run(token.clone()));
    (token, task)
}

async fn stop((token, task): Running) -> LoopReport {
    token.cancel();
    task.await.unwrap().expect("loop stops cleanly")
}

/// Starts a loop for `worker`, waits until `until` returns true, then shuts it down.
async fn run_until<W: Worker>(
    settings: &Settings,
    topics: &Topics,
    group: &str,
    worker: W,
    until: impl Fn() -> bool + Send + 'static,
) -> LoopReport {
    let running = start(settings, topics, group, worker);
    let waited = eventually(Duration::from_secs(60), until).await;
    let report = stop(running).await;
    assert!(waited, "the expected outputs never appeared (report: {report:?})");
    report
}

#[tokio::test]
async fn garbage_goes_to_the_dlq_with_its_provenance_and_the_loop_goes_on() {
    let (settings, topics) = setup("garbage").await;
    let catalog = catalog();
    let mut unknown_fingerprint = vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];
    unknown_fingerprint.extend_from_slice(b"datum");
    produce(
        &settings,
        &topics.input,
        vec![
            (Some("k".into()), request_bytes(&catalog, "a-1")),
            (Some("k".into()), b"hello, not avro".to_vec()),
            (Some("k".into()), unknown_fingerprint.clone()),
            (Some("k".into()), request_bytes(&catalog, "a-2")),
        ],
    )
    .await;

    let group = unique("group");
    let (s, out, dlq_topic) = (settings.clone(), topics.output.clone(), topics.dlq.clone());
    let report = run_until(&settings, &topics, &group, Passthrough::new(&topics.output), move || {
        read_topic(&s, &out, 2, Duration::from_millis(500)).len() == 2
            && read_topic(&s, &dlq_topic, 2, Duration::from_millis(500)).len() == 2
    })
    .await;

    let outputs = read_topic(&settings, &topics.output, 2, Duration::from_secs(10));
    assert_eq!(ids(&catalog, &outputs), vec!["a-1", "a-2"]);
    let letters = read_topic(&settings, &topics.dlq, 2, Duration::from_secs(10));
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].payload().unwrap(), b"hello, not avro");
    assert_eq!(letters[1].payload().unwrap(), unknown_fingerprint.as_slice());
    for (letter, offset, kind) in [(&letters[0], "1", "not_single_object"), (&letters[1], "2", "unknown_fingerprint")] {
        assert_eq!(header(letter, dlq::header::SOURCE_TOPIC).as_deref(), Some(topics.input.as_str()));
        assert_eq!(header(letter, dlq::header::SOURCE_PARTITION).as_deref(), Some("0"));
        assert_eq!(header(letter, dlq::header::SOURCE_OFFSET).as_deref(), Some(offset));
        assert_eq!(header(letter, dlq::header::ERROR_KIND).as_deref(), Some(kind));
        assert!(!header(letter, dlq::header::ERROR_MESSAGE).unwrap_or_default().is_empty());
        assert_eq!(letter.key(), Some(&b"k"[..]));
    }
    assert_eq!(report.dead_lettered, 2);
    assert_eq!(
        committed_offset(&settings, &group, &topics.input),
        Some(4),
        "every message, dead-lettered or not, is committed"
    );
}

#[tokio::test]
async fn a_message_whose_output_topic_does_not_exist_is_dead_lettered_not_a_crash_loop() {
    let (settings, topics) = setup("missing-output").await;
    let catalog = catalog();
    produce(
        &settings,
        &topics.input,
        vec![(Some("k".into()), request_bytes(&catalog, "m-1")), (Some("k".into()), request_bytes(&catalog, "m-2"))],
    )
    .await;
    // As if a request's reply_to named a topic nobody created.
    let missing = unique("no-such-topic");
    let group = unique("group");
    let (s, dlq_topic) = (settings.clone(), topics.dlq.clone());
    let report = run_until(&settings, &topics, &group, Passthrough::new(&missing), move || {
        read_topic(&s, &dlq_topic, 2, Duration::from_millis(500)).len() == 2
    })
    .await;

    let letters = read_topic(&settings, &topics.dlq, 2, Duration::from_secs(10));
    assert_eq!(letters.len(), 2);
    for letter in &letters {
        assert_eq!(header(letter, dlq::header::ERROR_KIND).as_deref(), Some("unknown_output_topic"));
        assert!(header(letter, dlq::header::ERROR_MESSAGE).unwrap_or_default().contains(&missing));
    }
    assert_eq!(report.dead_lettered, 2, "the loop kept going and stopped cleanly");
    assert_eq!(committed_offset(&settings, &group, &topics.input), Some(2), "both committed: they will not come back");
}

#[tokio::test]
async fn a_message_the_worker_rejects_goes_to_the_dlq_with_the_reason() {
    let (settings, topics) = setup("rejected").await;
    let catalog = catalog();
    produce(
        &settings,
        &topics.input,
        vec![(None, request_bytes(&catalog, "reject-1")), (None, request_bytes(&catalog, "ok-1"))],
    )
    .await;
    let worker = Picky { output: topics.output.clone(), transient_failures_left: AtomicU32::new(0) };
    let (s, out) = (settings.clone(), topics.output.clone());
    run_until(&settings, &topics, &unique("group"), worker, move || {
        read_topic(&s, &out, 1, Duration::from_millis(500)).len() == 1
    })
    .await;

    let letters = read_topic(&settings, &topics.dlq, 1, Duration::from_secs(10));
    assert_eq!(ids(&catalog, &letters), vec!["reject-1"]);
    assert_eq!(header(&letters[0], dlq::header::ERROR_KIND).as_deref(), Some("invalid_request"));
    assert_eq!(header(&letters[0], dlq::header::ERROR_MESSAGE).as_deref(), Some("request reject-1 is not acceptable"));
    assert_eq!(header(&letters[0], dlq::header::WORKER).as_deref(), Some("picky"));
    assert_eq!(ids(&catalog, &read_topic(&settings, &topics.output, 1, Duration::from_secs(10))), vec!["ok-1"]);
}

/// Panics on ids starting with `panic`, as a bug in a worker would.
struct Panicky {
    output: String,
}

impl Worker for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let id = avro_to_json(message.value()?)["id"].as_str().unwrap_or_default().to_string();
        assert!(!id.starts_with("panic"), "a bug met request {id}");
        Ok(vec![Outbound::new(self.output.clone(), message.key.clone(), message.payload.clone())])
    }
}

#[tokio::test]
async fn a_message_the_worker_panics_on_is_dead_lettered_and_the_loop_goes_on() {
    let (settings, topics) = setup("panicked").await;
    let catalog = catalog();
    produce(
        &settings,
        &topics.input,
        vec![(None, request_bytes(&catalog, "panic-1")), (None, request_bytes(&catalog, "ok-1"))],
    )
    .await;
    let group = unique("group");
    let (s, out) = (settings.clone(), topics.output.clone());
    let report = run_until(&settings, &topics, &group, Panicky { output: topics.output.clone() }, move || {
        read_topic(&s, &out, 1, Duration::from_millis(500)).len() == 1
    })
    .await;

    let letters = read_topic(&settings, &topics.dlq, 1, Duration::from_secs(10));
    assert_eq!(ids(&catalog, &letters), vec!["panic-1"]);
    assert_eq!(header(&letters[0], dlq::header::ERROR_KIND).as_deref(), Some("worker_panicked"));
    let reason = header(&letters[0], dlq::header::ERROR_MESSAGE).unwrap_or_default();
    assert!(reason.contains("a bug met request panic-1"), "{reason}");
    assert_eq!(ids(&catalog, &read_topic(&settings, &topics.output, 1, Duration::from_secs(10))), vec!["ok-1"]);
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(committed_offset(&settings, &group, &topics.input), Some(2), "both committed: the loop went on");
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_message_succeeds() {
    let (settings, topics) = setup("transient").await;
    let catalog = catalog();
    produce(&settings, &topics.input, vec![(None, request_bytes(&catalog, "flaky-1"))]).await;
    let worker = Picky { output: topics.output.clone(), transient_failures_left: AtomicU32::new(2) };
    let group = unique("group");
    let (s, out) = (settings.clone(), topics.output.clone());
    let report = run_until(&settings, &topics, &group, worker, move || {
        read_topic(&s, &out, 1, Duration::from_millis(500)).len() == 1
    })
    .await;

    assert_eq!(ids(&catalog, &read_topic(&settings, &topics.output, 2, Duration::from_secs(3))), vec!["flaky-1"]);
    assert!(
        read_topic(&settings, &topics.dlq, 1, Duration::from_secs(1)).is_empty(),
        "a transient failure is not dead-lettered"
    );
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(committed_offset(&settings, &group, &topics.input), Some(1));
}

#[tokio::test]
async fn shutdown_stops_a_message_stuck_in_retries_without_committing_it() {
    let (settings, topics) = setup("stuck").await;
    let catalog = catalog();
    produce(
        &settings,
        &topics.input,
        vec![(None, request_bytes(&catalog, "ok-1")), (None, request_bytes(&catalog, "flaky-1"))],
    )
    .await;
    // Fails "forever": the loop must still stop promptly when asked to.
    let worker = Picky { output: topics.output.clone(), transient_failures_left: AtomicU32::new(u32::MAX) };
    let group = unique("group");
    let (s, out) = (settings.clone(), topics.output.clone());
    run_until(&settings, &topics, &group, worker, move || {
        read_topic(&s, &out, 1, Duration::from_millis(500)).len() == 1
    })
    .await;

    assert_eq!(
        committed_offset(&settings, &group, &topics.input),
        Some(1),
        "the stuck message stays uncommitted, to be redelivered"
    );
}

#[tokio::test]
async fn every_message_of_a_long_stream_reaches_the_output() {
    // Longer than one receive batch and than the in-flight window, over several partitions.
    let mut settings = settings();
    settings.bus.max_in_flight = 700;
    let topics = Topics { input: unique("long.in"), output: unique("long.out"), dlq: unique("long.dlq") };
    settings.bus.dlq_topic = topics.dlq.clone();
    create_topics(&settings, &[&topics.input, &topics.output, &topics.dlq], 3).await;
    let catalog = catalog();
    let expected: Vec<String> = (0..5000).map(|i| format!("m-{i}")).collect();
    produce(
        &settings,
        &topics.input,
        expected.iter().map(|id| (Some(id.clone()), request_bytes(&catalog, id))).collect(),
    )
    .await;

    let group = unique("group");
    let (s, out) = (settings.clone(), topics.output.clone());
    let report = run_until(&settings, &topics, &group, Passthrough::new(&topics.output), move || {
        read_topic(&s, &out, 5000, Duration::from_secs(2)).len() >= 5000
    })
    .await;

    let mut seen = ids(&catalog, &read_topic(&settings, &topics.output, 5000, Duration::from_secs(30)));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5000, "some messages never reached the output");
    assert_eq!(report.completed, report.consumed);
}

#[tokio::test]
async fn a_rebalance_commits_finished_work_before_partitions_move() {
    let mut settings = settings();
    // No background commits during the test: whatever is committed, the rebalance committed.
    settings.kafka.client.insert("auto.commit.interval.ms".into(), "600000".into());
    let topics =
        Topics { input: unique("rebalance.in"), output: unique("rebalance.out"), dlq: unique("rebalance.dlq") };
    settings.bus.dlq_topic = topics.dlq.clone();
    create_topics(&settings, &[&topics.input, &topics.output, &topics.dlq], 4).await;
    let catalog = catalog();
    let ids_in: Vec<String> = (0..400).map(|i| format!("rb-{i}")).collect();
    produce(
        &settings,
        &topics.input,
        ids_in.iter().map(|id| (Some(id.clone()), request_bytes(&catalog, id))).collect(),
    )
    .await;

    let group = unique("group");
    let first = start(&settings, &topics, &group, Passthrough::new(&topics.output));
    let (s, out) = (settings.clone(), topics.output.clone());
    assert!(
        eventually(Duration::from_secs(60), move || read_topic(&s, &out, 400, Duration::from_millis(500)).len() == 400)
            .await,
        "first member never finished"
    );
    assert!(
        committed_offsets(&settings, &group, &topics.input, 4).iter().all(Option::is_none),
        "nothing is committed before the rebalance"
    );

    let second = start(&settings, &topics, &group, Passthrough::new(&topics.output));
    let (s, input, g) = (settings.clone(), topics.input.clone(), group.clone());
    let all_committed = eventually(Duration::from_secs(60), move || {
        committed_offsets(&s, &g, &input, 4).iter().map(|o| o.unwrap_or(0)).sum::<i64>() == 400
    })
    .await;
    let second_report = stop(second).await;
    stop(first).await;
    assert!(all_committed, "the revoking member did not commit its finished work");
    assert_eq!(second_report.consumed, 0, "the new member redid work that was already done");
    assert_eq!(read_topic(&settings, &topics.output, 401, Duration::from_secs(3)).len(), 400);
}

#[tokio::test]
async fn a_partition_the_group_left_without_an_owner_is_claimed_by_a_rejoin() {
    // Partition 1 is added after the group's assignment. librdkafka would rejoin once a member's
    // metadata refresh shows it; with the refresh pushed out of the test's reach, only the
    // bus's ownership audit can see that the Stable group leaves it to nobody, as a group
    // assigned on a coordinator's stale metadata leaves a whole new topic (a lone inference
    // batcher idled through CI's start patience that way).
    let (mut settings, topics) = setup("orphan").await;
    let producing = settings.clone();
    settings.kafka.client.insert("topic.metadata.refresh.interval.ms".into(), "600000".into());
    let catalog = catalog();
    let group = unique("group");
    let running = start(&settings, &topics, &group, Passthrough::new(&topics.output));
    produce(&producing, &topics.input, vec![(None, request_bytes(&catalog, "before"))]).await;
    let (s, out) = (settings.clone(), topics.output.clone());
    assert!(
        eventually(Duration::from_secs(60), move || read_topic(&s, &out, 1, Duration::from_millis(500)).len() == 1)
            .await,
        "the member never consumed partition 0"
    );

    let admin = frontier::bus::kafka::admin(&settings.kafka).unwrap();
    let grown = admin.create_partitions(&[NewPartitions::new(&topics.input, 2)], &AdminOptions::new()).await.unwrap();
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");
    produce_to_partition(&producing, &topics.input, 1, request_bytes(&catalog, "after")).await;

    // Four audit intervals; without the audit it stayed unclaimed until the 10 minute refresh.
    let (s, out) = (settings.clone(), topics.output.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let claimed = tokio::task::spawn_blocking(move || {
        while std::time::Instant::now() < deadline {
            if read_topic(&s, &out, 2, Duration::from_secs(1)).len() == 2 {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    stop(running).await;
    assert!(claimed, "partition 1 stayed without an owner for 60 s");
}

/// Produces one record to `partition`, retrying while the producer's metadata lacks it.
async fn produce_to_partition(settings: &Settings, topic: &str, partition: i32, payload: Vec<u8>) {
    let producer = frontier::bus::kafka::producer(&settings.kafka).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = FutureRecord::<str, [u8]>::to(topic).partition(partition).payload(&payload);
        match producer.send(record, Timeout::After(Duration::from_secs(10))).await {
            Ok(_) => return,
            Err((error, _)) if std::time::Instant::now() < deadline => {
                eprintln!("producing to {topic}/{partition}: {error}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((error, _)) => panic!("cannot produce to {topic}/{partition}: {error}"),
        }
    }
}

/// Emits one record per tick and consumes without output.
struct Heartbeat {
    output: String,
    beat: Vec<u8>,
}

impl Worker for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    async fn handle(&self, _message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    async fn tick(&self, _now: std::time::SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        Ok(vec![Outbound::new(self.output.as_str(), None, self.beat.clone())])
    }
}

#[tokio::test]
async fn a_worker_with_ticks_produces_periodic_outputs_without_input() {
    let (settings, topics) = setup("tick").await;
    let worker = Heartbeat { output: topics.output.clone(), beat: request_bytes(&catalog(), "beat") };
    let (s, out) = (settings.clone(), topics.output.clone());
    let report = run_until(&settings, &topics, &unique("group"), worker, move || {
        read_topic(&s, &out, 3, Duration::from_millis(500)).len() >= 3
    })
    .await;
    assert_eq!(report.consumed, 0);
}

/// Panics at its first tick, as a bug outside message handling would.
struct PanicsOnTick;

impl Worker for PanicsOnTick {
    fn name(&self) -> &'static str {
        "panics-on-tick"
    }

    async fn handle(&self, _message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    async fn tick(&self, _now: std::time::SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        panic!("a bug in a tick");
    }
}

#[tokio::test]
async fn a_loop_that_panics_stops_the_invalidation_loop_beside_it_instead_of_hanging() {
    use frontier::cache::invalidation::{SideBySideError, invalidation_loop, run_beside_invalidations};
    let (settings, topics) = setup("panicking-sibling").await;
    let options = LoopOptions::new(&settings.bus, unique("group"), vec![topics.input.clone()]);
    let main = ConsumerLoop::new(&settings.kafka, options, Arc::new(PanicsOnTick), catalog()).unwrap();
    let memory_only = frontier::cache::CacheSettings { disk_bytes: 0, ..settings.cache.clone() };
    let cache = frontier::cache::TieredCache::connect(&memory_only, None).await.unwrap();
    let invalidations =
        invalidation_loop(&settings.kafka, &settings.bus, &topics.output, cache, catalog(), unique("group")).unwrap();
    let shutdown = CancellationToken::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), run_beside_invalidations(main, invalidations, shutdown))
        .await
        .expect("both loops end: the panic stopped the invalidation loop too");
    assert!(matches!(ended, Err(SideBySideError::Join("main", _))), "{ended:?}");
}
