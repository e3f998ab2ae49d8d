//! Chaos on the three-broker cluster (`ops/stack up --brokers 3`): each scenario of the short
//! suite breaks one part of a loaded pipeline (two serving instances, an inference batcher and
//! an SLA monitor, reaching the brokers through toxiproxy), and every request must be answered.
//! Each test writes its scenario's report to `target/chaos/<scenario>.json`; `ops/test` prints
//! them as one table with `frontier chaos report`. `frontier chaos --long` runs every scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use frontier::bus::{ConsumerLoop, HandlerError, Inbound, LoopOptions, Outbound, Worker, kafka};
use frontier::cli::chaos::{self, ChaosOptions, Scenario, ScenarioReport};
use frontier::settings::Settings;
use frontier::workers::passthrough::Passthrough;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use tokio_util::sync::CancellationToken;

/// Scenarios break shared things (brokers, the network to them): one at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs one scenario of the short suite and keeps its report.
async fn survive(scenario: Scenario) -> ScenarioReport {
    let _turn = TURN.lock().await;
    let settings = common::settings();
    let repo = common::repo();
    let mut options = ChaosOptions::new(false, PathBuf::from(env!("CARGO_BIN_EXE_frontier")), &repo);
    options.scenarios = vec![scenario];
    options.work_dir = repo.join("target/chaos/work");
    let report = chaos::run(&settings, &options, &CancellationToken::new())
        .await
        .unwrap_or_else(|error| panic!("chaos scenario {} could not run: {error:#}", scenario.name()));
    report.save(&repo.join(format!("target/chaos/{}.json", scenario.name()))).expect("report saved");
    eprint!("{report}");
    report.scenarios.into_iter().next().expect("the scenario's report")
}

/// Every request and job that Kafka acknowledged was answered, and no worker exited.
fn assert_nothing_lost(report: &ScenarioReport) {
    for stream in &report.streams {
        assert!(stream.sent > 0, "{}: no {} requests were sent:\n{report}", report.scenario, stream.stream);
        assert_eq!(stream.lost, 0, "{}: {} {} requests lost:\n{report}", report.scenario, stream.lost, stream.stream);
    }
    let exited: Vec<&String> = report.notes.iter().filter(|n| n.starts_with("a worker exited")).collect();
    assert!(exited.is_empty(), "{}: {exited:?}", report.scenario);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_partition_leaders_broker_loses_no_request() {
    let report = survive(Scenario::BrokerKill).await;
    assert_nothing_lost(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_serving_instance_loses_no_request_once_its_session_expires() {
    let report = survive(Scenario::WorkerZombie).await;
    assert_nothing_lost(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_goes_on_without_redis_and_writes_to_it_again_after_its_restart() {
    let report = survive(Scenario::RedisKill).await;
    assert_nothing_lost(&report);
    assert!(report.measured["redis_errors"] > 0.0, "the dead Redis was not even noticed:\n{report}");
    assert!(report.measured["redis_keys_at_end"] > 0.0, "nothing was written to the restarted Redis:\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_partition_longer_than_the_delivery_timeout_loses_no_request_and_stops_no_worker() {
    let report = survive(Scenario::NetworkPartition).await;
    assert_nothing_lost(&report);
    // The short suite's workers run with a 5 s delivery timeout, which the 15 s partition
    // outlasts: outputs stuck behind it must have been produced again, not dropped or fatal.
    // The SLA monitor's checkpoints (every 5 s there) always are; a request's output only
    // when one was in flight at the cut (its partition is then rewound).
    let again = report.measured["bus_rewinds"] + report.measured["bus_resent"];
    assert!(again > 0.0, "nothing that outlasted the delivery timeout was produced again:\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_flood_dead_letters_every_bad_message_and_answers_every_good_one() {
    let report = survive(Scenario::PoisonFlood).await;
    assert_nothing_lost(&report);
    assert!(report.poison_sent > 0, "no poison was sent:\n{report}");
    assert_eq!(report.dead_letters, report.poison_sent, "dead letters against poison sent:\n{report}");
}

/// Emits one record on its first tick only: if it is to arrive, it must be sent again.
struct OneTick {
    output: String,
    record: Vec<u8>,
    done: AtomicBool,
}

impl Worker for OneTick {
    fn name(&self) -> &'static str {
        "one-tick"
    }

    async fn handle(&self, _message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    async fn tick(&self, _now: std::time::SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        if self.done.swap(true, Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        Ok(vec![Outbound::new(self.output.as_str(), None, self.record.clone())])
    }
}

/// Creates `name` with one partition whose one replica is on cluster node `node`.
async fn create_on_node(settings: &Settings, name: &str, node: i32) {
    let admin = kafka::admin(&settings.kafka).expect("admin client");
    let replicas: &[&[i32]] = &[&[node]];
    let topic = NewTopic::new(name, 1, TopicReplication::Variable(replicas));
    for result in admin.create_topics(&[topic], &AdminOptions::new()).await.expect("create topics") {
        result.expect("topic created");
    }
}

/// Runs `ops/stack broker NODE ACTION`: kill, or start and wait until it is back.
fn broker(node: i32, action: &str) -> Result<(), String> {
    let status = std::process::Command::new(common::repo().join("ops/stack"))
        .args(["broker", &node.to_string(), action])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("ops/stack broker {node} {action} failed (is the cluster up? `ops/stack up --brokers 3`)"))
    }
}

/// A cluster node killed for a test, started again when the test ends however it ends.
struct BrokerDown(i32);

impl BrokerDown {
    fn kill(node: i32) -> Self {
        broker(node, "kill").unwrap();
        BrokerDown(node)
    }

    fn restart(self) {
        // Drop starts it.
    }
}

impl Drop for BrokerDown {
    fn drop(&mut self) {
        if let Err(error) = broker(self.0, "start") {
            eprintln!("{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_whose_leader_stays_down_past_the_delivery_timeout_are_produced_again_without_stopping_the_loop() {
    let _turn = TURN.lock().await;
    let mut settings = common::settings();
    settings.kafka.bootstrap_servers = "127.0.0.1:9191,127.0.0.1:9192,127.0.0.1:9193".into();
    settings.kafka.delivery_timeout = Duration::from_secs(3);
    common::require_kafka(&settings);
    // Inputs and dead letters on node 1; both outputs on node 3, which goes down.
    let (input, output, ticks, dlq) = (
        common::unique("undelivered.in"),
        common::unique("undelivered.out"),
        common::unique("undelivered.tick"),
        common::unique("undelivered.dlq"),
    );
    for (topic, node) in [(&input, 1), (&dlq, 1), (&output, 3), (&ticks, 3)] {
        create_on_node(&settings, topic, node).await;
    }
    settings.bus.dlq_topic = dlq.clone();
    let catalog = common::catalog();
    let sent: Vec<String> = (0..5).map(|i| format!("u-{i}")).collect();
    common::produce(
        &settings,
        &input,
        sent.iter().map(|id| (Some(id.clone()), common::request_bytes(&catalog, id))).collect(),
    )
    .await;

    let down = BrokerDown::kill(3);
    let shutdown = CancellationToken::new();
    let group = common::unique("group");
    let messages = ConsumerLoop::new(
        &settings.kafka,
        LoopOptions::new(&settings.bus, &group, vec![input.clone()]),
        Arc::new(Passthrough::new(&output)),
        catalog.clone(),
    )
    .unwrap();
    let one_tick = OneTick {
        output: ticks.clone(),
        record: common::request_bytes(&catalog, "tick"),
        done: AtomicBool::new(false),
    };
    let periodic = ConsumerLoop::new(
        &settings.kafka,
        LoopOptions::new(&settings.bus, common::unique("group"), vec![dlq.clone()]),
        Arc::new(one_tick),
        catalog.clone(),
    )
    .unwrap();
    let messages = tokio::spawn(messages.run(shutdown.clone()));
    let periodic = tokio::spawn(periodic.run(shutdown.clone()));
    // Every output times out at least twice before the leader comes back.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let undelivered_committed = common::committed_offset(&settings, &group, &input);
    down.restart();
    let (s, out) = (settings.clone(), output.clone());
    let answered = common::eventually(Duration::from_secs(120), move || {
        common::read_topic(&s, &out, 5, Duration::from_millis(500)).len() >= 5
    })
    .await;
    let (s, out) = (settings.clone(), ticks.clone());
    let ticked = common::eventually(Duration::from_secs(120), move || {
        !common::read_topic(&s, &out, 1, Duration::from_millis(500)).is_empty()
    })
    .await;
    shutdown.cancel();
    let report = messages.await.unwrap().expect("the message loop never stopped over an output it could not deliver");
    periodic.await.unwrap().expect("the periodic loop never stopped over an output it could not deliver");

    assert_eq!(undelivered_committed, None, "an offset was committed while its output was undelivered");
    assert!(answered, "the outputs never arrived once their leader was back (report: {report:?})");
    let mut seen = common::ids(&catalog, &common::read_topic(&settings, &output, 100, Duration::from_secs(3)));
    seen.sort();
    seen.dedup();
    assert_eq!(seen, sent, "every message's output, once or more");
    assert!(report.consumed > 5, "the messages were not consumed again after their outputs timed out: {report:?}");
    assert_eq!(common::committed_offset(&settings, &group, &input), Some(5));
    assert!(ticked, "the one periodic output was never sent again");
}
