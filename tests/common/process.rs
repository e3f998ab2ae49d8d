//! Workers as users run them: `frontier run <worker>` processes, and the topics around them.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use frontier::settings::Settings;
use frontier::workers::autoscaler::{LocalActuatorSettings, LocalProcesses};
use rdkafka::message::OwnedMessage;

use super::{create_topics, frontier, header, read_topic, repo, unique};

/// Kills, when the test ends however it ends, every `worker` instance recorded in a local
/// actuator's state folder, whichever process started it: the autoscaler controller and
/// `frontier deploy` start instances in their own processes and leave them running by design.
pub struct RecordedInstances {
    pub state_dir: PathBuf,
    pub worker: &'static str,
}

impl Drop for RecordedInstances {
    fn drop(&mut self) {
        let settings = LocalActuatorSettings { state_dir: self.state_dir.clone(), ..LocalActuatorSettings::default() };
        // Opening adopts only the records whose pid still runs `worker`: a reused pid is spared.
        let Ok(recorded) = LocalProcesses::open(&settings, PathBuf::from("frontier"), Vec::new()) else { return };
        for instance in recorded.instances(self.worker) {
            let _ = std::process::Command::new("kill").args(["-KILL", &instance.pid.to_string()]).status();
        }
    }
}

/// How long a test waits for a worker's output (a debug build starting, joining its group, and
/// for the batcher loading the model).
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A `frontier run <worker>` process, killed when the test ends however it ends.
pub struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts `frontier run <worker>` with the settings in `env`; its log goes to
    /// `target/test-logs/<worker>-<unique>.log`.
    pub fn start(worker: &str, env: &[(&str, String)]) -> Worker {
        let dir = repo().join("target/test-logs");
        std::fs::create_dir_all(&dir).expect("log folder");
        let log = dir.join(format!("{worker}-{}.log", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let mut command = frontier();
        command
            .args(["run", worker])
            // A port of its own for /metrics: tests run side by side.
            .env("FRONTIER_METRICS__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("frontier run {worker} does not start: {e}"));
        Worker { child, log }
    }

    /// Fails the test with the worker's log if it exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("worker status") {
            panic!("the worker exited with {status}; its log ({}):\n{}", self.log.display(), self.log_text());
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `count` messages of `topic`, failing with the worker's log when they do not come.
pub fn await_messages(settings: &Settings, worker: &mut Worker, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let started = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < count && started.elapsed() < PATIENCE {
        worker.assert_running();
        messages = read_topic(settings, topic, count, Duration::from_secs(2));
    }
    assert!(
        messages.len() >= count,
        "{} of {count} messages on {topic} within {PATIENCE:?}; the worker's log ({}):\n{}",
        messages.len(),
        worker.log.display(),
        worker.log_text()
    );
    messages
}

/// Unique topics for one test (`<test>.<name>.<id>`), created with one partition.
pub async fn topics<const N: usize>(settings: &Settings, test: &str, names: [&str; N]) -> [String; N] {
    let topics = names.map(|n| unique(&format!("{test}.{n}")));
    create_topics(settings, &topics.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;
    topics
}

/// Nothing reached the dead-letter topic.
pub fn assert_no_dead_letters(settings: &Settings, dlq: &str) {
    let letters = read_topic(settings, dlq, 1, Duration::from_secs(3));
    let why: Vec<String> =
        letters.iter().filter_map(|m| header(m, frontier::bus::dlq::header::ERROR_MESSAGE)).collect();
    assert!(letters.is_empty(), "{} dead letter(s) on {dlq}: {why:?}", letters.len());
}

pub async fn drop_pg_schema(settings: &Settings, schema: &str) {
    let pool = sqlx::PgPool::connect(&settings.postgres.url).await.expect("PostgreSQL connects");
    let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.expect("test schema dropped");
}

/// Runs `frontier <args>` with `env` set and returns its standard output, failing the test
/// with both outputs when it does not succeed.
pub fn succeeds(args: &[&str], env: &[(&str, String)]) -> String {
    let output =
        frontier().args(args).envs(env.iter().map(|(key, value)| (key, value))).output().expect("frontier runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "frontier {args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}
