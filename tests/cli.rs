//! The `frontier` binary as a person or an orchestrator uses it, against the real stack.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use frontier::bus::json::json_to_avro;
use frontier::bus::kafka;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

fn publish(topic: &str, lines: &str) -> std::process::Output {
    let mut child = frontier()
        .args(["publish", topic, "--schema", "request.avsc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_published_json_record_comes_back_identical_from_tail() {
    let settings = settings();
    let topic = unique("publish");
    create_topics(&settings, &[&topic], 1).await;
    let records: Vec<Value> = (0..3).map(|i| request_json(&format!("r-{i}"))).collect();
    let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
    let published = publish(&topic, &lines);
    assert!(published.status.success(), "publish failed: {}", String::from_utf8_lossy(&published.stderr));

    let tail =
        frontier().args(["tail", &topic, "--from-beginning", "--max", "3", "--timeout", "30s"]).output().unwrap();
    assert!(tail.status.success(), "tail failed: {}", String::from_utf8_lossy(&tail.stderr));
    let tailed: Vec<Value> =
        String::from_utf8(tail.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(tailed, records);
}

/// The body through apache-avro's datum reader; the header's fingerprint is checked against the
/// Java reference and fastavro in `tests/avro_reference.rs`.
#[tokio::test]
async fn published_bytes_decode_with_a_stock_avro_reader_and_the_avsc_alone() {
    let settings = settings();
    let topic = unique("stock");
    create_topics(&settings, &[&topic], 1).await;
    let record = request_json("stock-1");
    assert!(publish(&topic, &format!("{record}\n")).status.success());

    let messages = read_topic(&settings, &topic, 1, Duration::from_secs(30));
    let avsc = std::fs::read_to_string(repo().join("schemas/request.avsc")).unwrap();
    let schema = apache_avro::Schema::parse_str(&avsc).unwrap();
    let payload = messages[0].payload().unwrap();
    assert_eq!(payload[..2], frontier::bus::codec::MAGIC);
    assert_eq!(payload[2..10], catalog().by_file("request.avsc").unwrap().fingerprint.0);
    let value =
        apache_avro::from_avro_datum(&schema, &mut &payload[10..], None).expect("stock reader decodes the bytes");
    assert_eq!(value, json_to_avro(&record, &schema).unwrap());
}

#[tokio::test]
async fn publish_refuses_json_that_does_not_fit_and_names_the_field() {
    let settings = settings();
    let topic = unique("badjson");
    create_topics(&settings, &[&topic], 1).await;
    let mut bad = request_json("bad-1");
    bad["priority"] = Value::String("urgent".into());
    let lines = format!("{}\n{bad}\n{{not json\n", request_json("good-1"));
    let published = publish(&topic, &lines);
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(!published.status.success());
    assert!(
        stderr.contains("line 2") && stderr.contains("$.priority: `urgent` is not one of critical, high, normal, low"),
        "{stderr}"
    );
    assert!(stderr.contains("line 3") && stderr.contains("not JSON"), "{stderr}");
    assert_eq!(
        ids(&catalog(), &read_topic(&settings, &topic, 1, Duration::from_secs(30))),
        vec!["good-1"],
        "valid lines are still published"
    );
}

/// A passthrough process in `group`, logging to target/test-logs.
fn spawn_passthrough(input: &str, output: &str, group: &str, extra_env: &[(&str, &str)], log: &str) -> Child {
    let dir = repo().join("target/test-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = frontier();
    command
        .args(["run", "passthrough"])
        .env("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", input)
        .env("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC", output)
        .env("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID", group)
        .env("FRONTIER_METRICS__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(File::create(dir.join(log)).unwrap());
    // A killed member is noticed after this long, not the 45 s default. A classic-protocol
    // setting only: on KIP-848 the broker owns the session timeout, and librdkafka refuses a
    // consumer given one.
    if !settings().kafka.uses_kip_848_groups() {
        command.env("FRONTIER_KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000");
    }
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.spawn().expect("frontier run passthrough starts")
}

/// Waits for the process to exit by itself, up to `patience`.
fn wait_exit(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < patience {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn signal(child: &Child, name: &str) {
    let status =
        std::process::Command::new("kill").args([format!("-{name}"), child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn committed_total(settings: &frontier::settings::Settings, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = kafka::base_config(&settings.kafka).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_loses_nothing() {
    let settings = settings();
    let (input, output, group) = (unique("kill.in"), unique("kill.out"), unique("kill.group"));
    create_topics(&settings, &[&input, &output], 3).await;
    let catalog = catalog();
    let expected: Vec<String> = (0..300).map(|i| format!("k-{i}")).collect();
    produce(&settings, &input, expected.iter().map(|id| (Some(id.clone()), request_bytes(&catalog, id))).collect())
        .await;

    // The first member works slowly (one message at a time, 20 ms batching), so it is surely
    // killed mid-stream, with outputs produced whose offsets were never committed.
    let mut first = spawn_passthrough(
        &input,
        &output,
        &group,
        &[("FRONTIER_BUS__MAX_IN_FLIGHT", "1"), ("FRONTIER_KAFKA__LINGER", "20ms")],
        "kill-first.log",
    );
    let started = Instant::now();
    while read_topic(&settings, &output, 30, Duration::from_millis(500)).len() < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first member produced nothing; see target/test-logs/kill-first.log"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before_kill = read_topic(&settings, &output, 300, Duration::from_secs(2)).len();
    assert!(before_kill < 300, "the kill came after the whole stream ({before_kill} outputs)");

    let mut second = spawn_passthrough(&input, &output, &group, &[], "kill-second.log");
    let wanted: HashSet<&String> = expected.iter().collect();
    let started = Instant::now();
    let seen = loop {
        let outputs = read_topic(&settings, &output, usize::MAX, Duration::from_secs(2));
        let seen: HashSet<String> = ids(&catalog, &outputs).into_iter().collect();
        if wanted.iter().all(|id| seen.contains(*id)) || started.elapsed() > Duration::from_secs(120) {
            break seen;
        }
    };
    signal(&second, "TERM");
    let status = wait_exit(&mut second, Duration::from_secs(30));
    let missing: Vec<&&String> = wanted.iter().filter(|id| !seen.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} ids never reached the output, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(status.is_some_and(|s| s.success()), "the second member did not exit 0 on SIGTERM: {status:?}");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_commits_and_exits_zero() {
    let settings = settings();
    let (input, output, group) = (unique("term.in"), unique("term.out"), unique("term.group"));
    create_topics(&settings, &[&input, &output], 2).await;
    let catalog = catalog();
    produce(
        &settings,
        &input,
        (0..200).map(|i| (Some(format!("t-{i}")), request_bytes(&catalog, &format!("t-{i}")))).collect(),
    )
    .await;

    let mut worker = spawn_passthrough(&input, &output, &group, &[], "term.log");
    let started = Instant::now();
    while read_topic(&settings, &output, 200, Duration::from_millis(500)).len() < 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "outputs never appeared; see target/test-logs/term.log");
    }
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(30)).expect("exits within its shutdown deadline");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        committed_total(&settings, &group, &input, 2),
        200,
        "every processed message is committed on the way out"
    );
}

#[test]
fn every_example_fits_its_topic_and_never_goes_stale() {
    // `examples/<topic>.jsonl`: each line must fit the topic's schema, and every timestamp must
    // be written relative to now, so the example means the same whenever it is run.
    let settings = settings();
    let specs = frontier::topics::load_dir(&settings.paths.topics, &settings.topics).unwrap();
    let catalog = catalog();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let Some(topic) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        let spec = specs.iter().find(|s| s.name == topic).unwrap_or_else(|| panic!("{path:?} names no topic"));
        let schema = catalog.by_file(spec.value_schema.as_deref().unwrap()).unwrap();
        for (number, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let doc: Value = serde_json::from_str(line).unwrap();
            let at = |now_ms| frontier::bus::json::json_to_avro_at(&doc, &schema.schema, now_ms);
            let (today, next_year) = (at(1_800_000_000_000), at(1_831_536_000_000));
            let today = today.unwrap_or_else(|e| panic!("{topic} line {}: {e}", number + 1));
            assert_ne!(
                Some(&today),
                next_year.as_ref().ok(),
                "{topic} line {}: a timestamp is not relative to now",
                number + 1
            );
        }
        checked.push(topic.to_string());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["frontier.db.query-events", "frontier.inference.jobs", "frontier.metrics", "frontier.requests"],
        "one example per topic a user publishes to"
    );
}

#[tokio::test]
async fn request_prints_the_answer_to_its_request_and_the_round_trip() {
    // A real serving worker on topics of its own, prices seeded into a schema of its own.
    let settings = settings();
    require_kafka(&settings);
    let [requests, responses, metrics, heat, invalidations, query_events, dlq] = common::process::topics(
        &settings,
        "cli.request",
        ["requests", "responses", "metrics", "heat", "invalidations", "query-events", "dlq"],
    )
    .await;
    let schema = format!("test_request_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let seeded = frontier()
        .args(["seed", "--symbols", "2", "--days", "60", "--names", "AAPL,MSFT", "--schema", &schema])
        .args(["--invalidations-topic", &invalidations, "--query-events-topic", &query_events])
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "frontier seed failed ({START_HINT}): {}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let disk = tempfile::tempdir().unwrap();
    let mut worker = common::process::Worker::start(
        "serve",
        &[
            ("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", requests.clone()),
            ("FRONTIER_WORKERS__SERVE__RESPONSES_TOPIC", responses.clone()),
            ("FRONTIER_WORKERS__SERVE__METRICS_TOPIC", metrics),
            ("FRONTIER_WORKERS__SERVE__HEAT_TOPIC", heat),
            ("FRONTIER_WORKERS__SERVE__GROUP_ID", unique("cli.request.group")),
            ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations),
            ("FRONTIER_CACHE__REDIS_KEY_PREFIX", unique("cli:request")),
            ("FRONTIER_CACHE__DISK_DIR", path_str(disk.path())),
            ("FRONTIER_PRICES__QUERY_EVENTS_TOPIC", query_events),
            ("FRONTIER_PRICES__SCHEMA", schema.clone()),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ],
    );
    // The worker may still be joining its group: the request waits in Kafka until it has.
    let output = frontier()
        .args(["request", "market.volatility", "--params", r#"{"symbol":"AAPL","window_days":30}"#])
        .args(["--topic", &requests, "--reply-to", &responses, "--timeout", "90"])
        .output()
        .unwrap();
    worker.assert_running();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "frontier request failed: {stderr}\nserve log:\n{}", worker.log_text());
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the answer as one JSON line");
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["kind"], "market.volatility");
    assert!(answer["result"].as_object().is_some_and(|r| !r.is_empty()), "{answer}");
    assert!(stderr.contains("round trip"), "{stderr}");
    common::process::drop_pg_schema(&settings, &schema).await;
}

#[tokio::test]
async fn frontier_run_cache_warmer_runs_every_thread_at_the_refresh_nice() {
    let settings = settings();
    let [heat, invalidations, dlq] =
        common::process::topics(&settings, "cli.warmer-nice", ["heat", "invalidations", "dlq"]).await;
    let mut worker = common::process::Worker::start(
        "cache-warmer",
        &[
            ("FRONTIER_WORKERS__CACHE_WARMER__INPUT_TOPIC", heat),
            ("FRONTIER_WORKERS__CACHE_WARMER__GROUP_ID", unique("cli.warmer-nice.group")),
            ("FRONTIER_CACHE__INVALIDATIONS_TOPIC", invalidations),
            ("FRONTIER_CACHE__REDIS_KEY_PREFIX", unique("cli:warmer-nice")),
            ("FRONTIER_BUS__DLQ_TOPIC", dlq),
            ("FRONTIER_BUS__STATUS_INTERVAL", "0s".into()),
        ],
    );
    // Both loops assigned: every thread it runs on exists by then, librdkafka's included.
    let started = std::time::Instant::now();
    while worker.log_text().matches("partitions assigned").count() < 2 {
        worker.assert_running();
        assert!(started.elapsed() < common::process::PATIENCE, "the warmer never joined:\n{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", worker.pid())).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else { continue };
        // `pid (comm) state ...`: the nice value is the 19th field, the 17th after the name.
        let (name, rest) = stat.rsplit_once(')').unwrap();
        let nice: i32 = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        threads.push((name.split_once('(').unwrap().1.to_owned(), nice));
    }
    assert!(threads.len() > 4, "{threads:?}");
    assert!(threads.iter().all(|(_, nice)| *nice == 10), "every thread at the shipped refresh_nice: {threads:?}");
}
