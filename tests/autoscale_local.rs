//! The local process actuator with real `frontier run passthrough` processes on the real Kafka
//! of `ops/stack up`: instances start and join the group, stop newest first on SIGTERM, are
//! reported when they crash, back off when they cannot start, and are adopted by a new
//! actuator on the same state folder.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use frontier::autoscale::LagSampler;
use frontier::workers::autoscaler::{LocalActuatorSettings, LocalProcesses};

/// Generous: on a loaded 2-core machine the brokers' group coordinator has been seen to take over
/// a minute to let a first member join (CoordinatorWriteEvent timeouts in the broker log).
const PATIENCE: Duration = Duration::from_secs(180);
const WORKER: &str = "passthrough";

/// A passthrough group on fresh topics, and the actuator's state folder.
struct Fixture {
    group: String,
    input: String,
    state: tempfile::TempDir,
    settings: LocalActuatorSettings,
}

impl Fixture {
    async fn new() -> Fixture {
        let (input, output) = (unique("autoscale.local.in"), unique("autoscale.local.out"));
        create_topics(&settings(), &[&input, &output], 4).await;
        let state = tempfile::tempdir().unwrap();
        let local = LocalActuatorSettings {
            state_dir: state.path().to_path_buf(),
            first_metrics_port: first_metrics_port(),
            stop_timeout: Duration::from_secs(20),
            min_uptime: Duration::from_secs(3),
            restart_backoff: Duration::from_secs(30),
            ..LocalActuatorSettings::default()
        };
        let fixture = Fixture { group: unique("autoscale.local.group"), input, state, settings: local };
        std::fs::write(fixture.state.path().join("output-topic"), output).unwrap();
        fixture
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let output = std::fs::read_to_string(self.state.path().join("output-topic")).unwrap();
        let mut env = vec![
            ("FRONTIER_ENV".to_owned(), "development".to_owned()),
            ("FRONTIER_CONFIG_DIR".to_owned(), repo().join("config").to_string_lossy().into_owned()),
            ("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC".to_owned(), self.input.clone()),
            ("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC".to_owned(), output),
            ("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID".to_owned(), self.group.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    }

    fn actuator(&self, extra: &[(&str, &str)]) -> Actuator {
        let program = PathBuf::from(env!("CARGO_BIN_EXE_frontier"));
        Actuator(LocalProcesses::open(&self.settings, program, self.env(extra)).unwrap())
    }

    /// Waits until the group has `members`.
    fn await_members(&self, members: usize) {
        let sampler = LagSampler::new(&settings().kafka, Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        loop {
            // A sample can fail while a new topic's leaders are still being elected
            // (NotLeaderForPartition); the autoscaler skips such a sample, and so does this wait.
            let seen = sampler.sample(&self.group, std::slice::from_ref(&self.input)).map(|sample| sample.members);
            if seen.as_ref().is_ok_and(|seen| *seen == members) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the group has {seen:?} member(s), not {members}; the instances' logs:\n{}",
                self.instance_logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The last lines of every instance's log, for a failure message.
    fn instance_logs(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self.state.path().join("logs")).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            logs.push_str(&format!("--- {}\n{tail}\n", entry.path().display()));
        }
        logs
    }
}

/// The actuator; its processes are killed when the test ends, whatever happened.
struct Actuator(LocalProcesses);

impl Actuator {
    /// Reaps until `worker` has exactly `count` instance records.
    fn await_instances(&self, count: usize) {
        let started = Instant::now();
        while self.0.instances(WORKER).len() != count {
            self.0.reap().unwrap();
            assert!(started.elapsed() < PATIENCE, "{} instance(s), not {count}", self.0.instances(WORKER).len());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Actuator {
    fn drop(&mut self) {
        for instance in self.0.instances(WORKER) {
            let _ = std::process::Command::new("kill").args(["-KILL", &instance.pid.to_string()]).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_start_join_the_group_and_the_newest_stops_first() {
    let fixture = Fixture::new().await;
    let actuator = fixture.actuator(&[]);

    assert_eq!(actuator.0.scale(WORKER, 2).unwrap(), 2);
    fixture.await_members(2);
    let targets = std::fs::read_to_string(fixture.state.path().join("prometheus/passthrough.json")).unwrap();
    for instance in actuator.0.instances(WORKER) {
        assert!(targets.contains(&format!("127.0.0.1:{}", instance.port)), "{targets}");
    }

    let oldest = actuator.0.instances(WORKER)[0].clone();
    assert_eq!(actuator.0.scale(WORKER, 1).unwrap(), 1);
    actuator.await_instances(1);
    assert_eq!(actuator.0.instances(WORKER), [oldest]);
    fixture.await_members(1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_instance_is_reported_and_replaced() {
    let fixture = Fixture::new().await;
    let actuator = fixture.actuator(&[]);
    actuator.0.scale(WORKER, 1).unwrap();
    fixture.await_members(1);
    std::thread::sleep(fixture.settings.min_uptime);

    let victim = actuator.0.instances(WORKER)[0].clone();
    std::process::Command::new("kill").args(["-KILL", &victim.pid.to_string()]).status().unwrap();
    let started = Instant::now();
    let crashes = loop {
        let crashes = actuator.0.reap().unwrap();
        if !crashes.is_empty() {
            break crashes;
        }
        assert!(started.elapsed() < PATIENCE, "the killed instance was never reaped");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(crashes.len(), 1);
    assert_eq!(crashes[0].instance, victim);
    assert!(!crashes[0].failed_start, "it ran past min_uptime");

    assert_eq!(actuator.0.scale(WORKER, 1).unwrap(), 1);
    assert_ne!(actuator.0.instances(WORKER)[0].pid, victim.pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_cannot_start_is_not_restarted_in_a_loop() {
    let fixture = Fixture::new().await;
    // An empty input topic fails the configuration check: the process exits at once.
    let actuator = fixture.actuator(&[("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", "")]);
    actuator.0.scale(WORKER, 1).unwrap();
    actuator.await_instances(0);

    // Reaped as a failed start (await_instances reaped it); the next start waits the backoff.
    assert_eq!(actuator.0.scale(WORKER, 1).unwrap(), 0);
    assert!(actuator.0.instances(WORKER).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_actuator_adopts_the_instances_that_still_run() {
    let fixture = Fixture::new().await;
    let first = fixture.actuator(&[]);
    first.0.scale(WORKER, 2).unwrap();
    fixture.await_members(2);
    // Compared in one order: two instances started in the same millisecond have no other.
    let mut running = first.0.instances(WORKER);
    running.sort_by(|a, b| a.id.cmp(&b.id));
    // The controller goes away; its instances do not.
    std::mem::forget(first);

    let second = fixture.actuator(&[]);
    let mut adopted = second.0.instances(WORKER);
    adopted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(adopted, running);
    assert_eq!(second.0.running(WORKER), 2);

    second.0.scale(WORKER, 0).unwrap();
    second.await_instances(0);
    fixture.await_members(0);
}

/// Every decision on `topic` so far, decoded.
fn decisions(topic: &str) -> Vec<serde_json::Value> {
    decoded_json(&catalog(), &read_topic(&settings(), topic, 10_000, Duration::from_secs(2)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_scales_a_backlog_up_in_one_step_and_back_down_once_it_drains() {
    let kafka = settings();
    let [output, decisions_topic, status] =
        common::process::topics(&kafka, "autoscale.e2e", ["out", "decisions", "status"]).await;
    let input = unique("autoscale.e2e.in");
    create_topics(&kafka, &[&input], 4).await;
    let catalog = catalog();
    // 600 messages at 20 ms each: 12 s for one instance, 3 s for four.
    let records = (0..600).map(|i| (Some(format!("k{i}")), request_bytes(&catalog, &format!("r{i}")))).collect();
    produce(&kafka, &input, records).await;
    let state = tempfile::tempdir().unwrap();
    let _instances = common::process::RecordedInstances { state_dir: state.path().to_path_buf(), worker: WORKER };
    let group = unique("autoscale.e2e.group");
    let policy = "FRONTIER_WORKERS__AUTOSCALER__GROUPS__PASSTHROUGH__";
    let env = [
        ("FRONTIER_BUS__STATUS_TOPIC", status),
        ("FRONTIER_BUS__STATUS_INTERVAL", "1s".to_owned()),
        ("FRONTIER_WORKERS__AUTOSCALER__DECISIONS_TOPIC", decisions_topic.clone()),
        ("FRONTIER_WORKERS__AUTOSCALER__GROUP_ID", unique("autoscale.e2e.controller")),
        ("FRONTIER_WORKERS__AUTOSCALER__INTERVAL", "1s".to_owned()),
        ("FRONTIER_WORKERS__AUTOSCALER__LOCAL__STATE_DIR", state.path().to_string_lossy().into_owned()),
        ("FRONTIER_WORKERS__AUTOSCALER__LOCAL__FIRST_METRICS_PORT", first_metrics_port().to_string()),
        (&format!("{policy}MIN_INSTANCES"), "1".to_owned()),
        (&format!("{policy}MAX_INSTANCES"), "4".to_owned()),
        (&format!("{policy}CATCH_UP"), "5s".to_owned()),
        (&format!("{policy}COOLDOWN"), "2s".to_owned()),
        (&format!("{policy}SCALE_DOWN_WINDOW"), "5s".to_owned()),
        ("FRONTIER_WORKERS__PASSTHROUGH__INPUT_TOPIC", input.clone()),
        ("FRONTIER_WORKERS__PASSTHROUGH__OUTPUT_TOPIC", output),
        ("FRONTIER_WORKERS__PASSTHROUGH__GROUP_ID", group.clone()),
        ("FRONTIER_WORKERS__PASSTHROUGH__WORK_PER_MESSAGE", "20ms".to_owned()),
        // A second of work in flight per instance: a stopped one drains and leaves at once.
        ("FRONTIER_BUS__MAX_IN_FLIGHT", "50".to_owned()),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (&**k, v.clone())).collect();
    let mut controller = common::process::Worker::start("autoscaler", &env);

    // The backlog drains...
    let sampler = LagSampler::new(&kafka.kafka, Duration::from_secs(5)).unwrap();
    let started = Instant::now();
    // A failed sample (a leader election under way) proves nothing: sample again.
    while sampler.sample(&group, std::slice::from_ref(&input)).map_or(true, |sample| sample.backlog() > 0) {
        controller.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the backlog did not drain; decisions: {:#?}",
            decisions(&decisions_topic)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // ...and once it is gone and the window has passed, the group is back at its minimum.
    let records = |dir: &std::path::Path| std::fs::read_dir(dir.join("instances")).unwrap().count();
    while records(state.path()) != 1 {
        controller.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "{} instances left; decisions: {:#?}",
            records(state.path()),
            decisions(&decisions_topic)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let made = decisions(&decisions_topic);
    let actions: Vec<(String, i64)> = made
        .iter()
        .filter(|d| d["action"] != "hold")
        .map(|d| (d["action"].as_str().unwrap().to_owned(), d["desired_instances"].as_i64().unwrap()))
        .collect();
    let history: Vec<String> = made
        .iter()
        .map(|d| format!("{} {}->{}: {}", d["action"], d["current_instances"], d["desired_instances"], d["reason"]))
        .collect();
    let actions_and_why = format!("{actions:?}\n{}", history.join("\n"));
    let actions_and_why = &actions_and_why;
    // Up to the minimum, one step up to what the backlog needs when the first commits are
    // seen, and down again (in at most two steps: half the instances a step).
    assert_eq!(actions.first(), Some(&("scale_up".to_owned(), 1)), "{actions_and_why}");
    let step_up = made.iter().filter(|d| d["action"] != "hold").nth(1).expect("a second action");
    assert_eq!(step_up["action"], "scale_up", "{actions_and_why}");
    // How much is left by then depends on when the first instance's commits show up (one
    // or two intervals), so the size of the step is checked against the decision's own
    // figures: "... at 80 % = 2.9" asks for ceil(2.9) = 3 instances, at most 4.
    let needed: f64 = step_up["reason"]
        .as_str()
        // "N msg/s per busy instance at 80 % = 2.9", before any "; capped at max_instances 4".
        .and_then(|reason| reason.split(';').nth(1))
        .and_then(|formula| formula.rsplit("= ").next())
        .and_then(|needed| needed.parse().ok())
        .unwrap_or_else(|| panic!("the step up says how many instances it needs: {actions_and_why}"));
    let desired = step_up["desired_instances"].as_i64().unwrap();
    // `needed` is printed to one decimal: the ceiling of anything it rounds from.
    let expected = |needed: f64| (needed.ceil() as i64).clamp(1, 4);
    assert!([expected(needed - 0.05), expected(needed + 0.05)].contains(&desired), "{actions_and_why}");
    assert!(actions[2..].iter().all(|(action, _)| action == "scale_down"), "{actions_and_why}");
    assert_eq!(actions.last().map(|(_, n)| *n), Some(1), "{actions_and_why}");
    assert!(made.iter().all(|d| d["consumer_group"] == group.as_str()), "every decision names the group");
    // Before its first instance joined, messages waited with nobody to read them.
    assert_eq!(made[0]["health"], "STOP", "{actions_and_why}");
    eprintln!("the controller's decisions:\n{actions_and_why}");

    // `frontier autoscale status`, with the controller's settings, reads the same state.
    let stdout = common::process::succeeds(&["autoscale", "status"], &env);
    assert!(stdout.contains(&format!("{group} (passthrough) on {input}")), "{stdout}");
    assert!(stdout.contains("1 instance(s) run by the controller"), "{stdout}");
    assert!(stdout.contains("1 member(s) (Stable), 4 partition(s), 0 waiting"), "{stdout}");
    assert!(stdout.contains("-> 1 (bounds 1..4)"), "{stdout}");
}
