//! Chaos on the three-broker cluster (`ops/stack up --brokers 3`): each scenario of the short
//! suite breaks one part of a loaded pipeline (two serving instances, an inference batcher and
//! an SLA monitor, reaching the brokers through toxiproxy), and every request must be answered.
//! Each test writes its scenario's report to `target/chaos/<scenario>.json`; `ops/test` prints
//! them as one table with `frontier chaos report`. `frontier chaos --long` runs every scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use frontier::cli::chaos::{self, ChaosOptions, Scenario, ScenarioReport};
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
async fn a_network_partition_between_workers_and_brokers_loses_no_request() {
    let report = survive(Scenario::NetworkPartition).await;
    assert_nothing_lost(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_flood_dead_letters_every_bad_message_and_answers_every_good_one() {
    let report = survive(Scenario::PoisonFlood).await;
    assert_nothing_lost(&report);
    assert!(report.poison_sent > 0, "no poison was sent:\n{report}");
    assert_eq!(report.dead_letters, report.poison_sent, "dead letters against poison sent:\n{report}");
}
