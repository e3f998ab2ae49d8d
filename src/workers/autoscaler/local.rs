//! `LocalProcesses`: the actuator that runs a worker's instances as `frontier run <worker>`
//! processes on this machine.
//!
//! - Each instance gets a metrics port of its own and is recorded in `state_dir/instances/`
//!   (pid, port, start), so a restarted controller adopts what still runs instead of starting
//!   duplicates; instances run in process groups of their own, so they outlive the controller.
//! - A scale-down sends SIGTERM to the newest instances: the bus drains in-flight messages,
//!   commits and leaves the group (SIGKILL only after `stop_timeout`).
//! - An instance that exits without being asked is reaped and reported; the controller starts
//!   a replacement. One that dies within `min_uptime` of its start counts as a failed start:
//!   further starts of that worker wait an exponential backoff, so a worker that cannot start
//!   does not become a crash loop.
//! - Prometheus finds the instances through file-based service discovery:
//!   `state_dir/prometheus/<worker>.json`, which `ops/stack`'s Prometheus reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::actuator::ActuatorError;
use super::settings::LocalActuatorSettings;
use crate::clock::duration_millis as millis;

/// One instance as recorded in the state folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The worker it runs.
    pub worker: String,
    /// Its id, unique per controller state folder (`serve-3`).
    pub id: String,
    /// Its process id.
    pub pid: u32,
    /// Its metrics port on 127.0.0.1.
    pub port: u16,
    /// When it was started, ms since the epoch.
    pub started_at_ms: i64,
}

/// An instance that ended without being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// The instance.
    pub instance: InstanceRecord,
    /// Whether it died within `min_uptime` of its start (a failed start).
    pub failed_start: bool,
}

/// A running instance and, when this controller started it, its child handle (to reap it).
struct Instance {
    record: InstanceRecord,
    child: Option<Child>,
    /// When SIGTERM was sent, ms since the epoch.
    stopping_since: Option<i64>,
}

/// Per worker: its instances and its start backoff.
#[derive(Default)]
struct WorkerState {
    instances: Vec<Instance>,
    failed_starts: u32,
    next_start_ms: i64,
}

/// The local process actuator.
pub struct LocalProcesses {
    settings: LocalActuatorSettings,
    program: PathBuf,
    /// Variables set for every instance besides the inherited environment.
    env: Vec<(String, String)>,
    workers: Mutex<BTreeMap<String, WorkerState>>,
}

impl LocalProcesses {
    /// An actuator starting `program run <worker>` (with `env` set besides what this process
    /// has), adopting the recorded instances that still run (and forgetting the others).
    pub fn open(
        settings: &LocalActuatorSettings,
        program: PathBuf,
        env: Vec<(String, String)>,
    ) -> Result<LocalProcesses, ActuatorError> {
        let actuator =
            LocalProcesses { settings: settings.clone(), program, env, workers: Mutex::new(BTreeMap::new()) };
        for dir in [actuator.instances_dir(), actuator.targets_dir(), actuator.logs_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| ActuatorError::State {
                action: "creating",
                path: dir.clone(),
                source,
            })?;
        }
        let mut adopted: BTreeMap<String, WorkerState> = BTreeMap::new();
        for path in list(&actuator.instances_dir())? {
            let record =
                std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<InstanceRecord>(&bytes).ok());
            match record {
                Some(record) if runs_worker(record.pid, &record.worker) => {
                    tracing::info!(worker = %record.worker, id = %record.id, pid = record.pid, "adopted a running instance");
                    let instance = Instance { record: record.clone(), child: None, stopping_since: None };
                    adopted.entry(record.worker).or_default().instances.push(instance);
                }
                _ => remove(&path)?,
            }
        }
        let workers: Vec<String> = adopted.keys().cloned().collect();
        *actuator.lock() = adopted;
        for worker in workers {
            actuator.write_targets(&worker, &actuator.lock_targets_of(&worker))?;
        }
        Ok(actuator)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, WorkerState>> {
        // The map stays consistent whatever a panicking holder left: every change is one push
        // or retain.
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Instances of `worker` running and not asked to stop.
    pub fn running(&self, worker: &str) -> u32 {
        let workers = self.lock();
        let count = workers
            .get(worker)
            .map_or(0, |state| state.instances.iter().filter(|instance| instance.stopping_since.is_none()).count());
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The records of `worker`'s running instances, oldest first.
    pub fn instances(&self, worker: &str) -> Vec<InstanceRecord> {
        self.lock()
            .get(worker)
            .map(|state| state.instances.iter().map(|instance| instance.record.clone()).collect())
            .unwrap_or_default()
    }

    /// Forgets the instances that ended; returns those that ended without being asked to.
    /// Instances past `stop_timeout` after their SIGTERM get SIGKILL.
    pub fn reap(&self) -> Result<Vec<Crash>, ActuatorError> {
        let now = crate::clock::now_millis();
        let min_uptime = millis(self.settings.min_uptime);
        let stop_timeout = millis(self.settings.stop_timeout);
        let mut crashes = Vec::new();
        let mut ended = Vec::new();
        let mut changed = Vec::new();
        {
            let mut workers = self.lock();
            for (worker, state) in workers.iter_mut() {
                let before = state.instances.len();
                state.instances.retain_mut(|instance| {
                    if is_running(instance) {
                        if instance.stopping_since.is_some_and(|since| now - since > stop_timeout) {
                            signal(instance.record.pid, libc::SIGKILL);
                        }
                        return true;
                    }
                    ended.push(instance.record.clone());
                    if instance.stopping_since.is_none() {
                        let failed_start = now - instance.record.started_at_ms < min_uptime;
                        crashes.push(Crash { instance: instance.record.clone(), failed_start });
                    }
                    false
                });
                let failed = crashes.iter().filter(|c| c.failed_start && c.instance.worker == *worker).count();
                if failed > 0 {
                    state.failed_starts = state.failed_starts.saturating_add(u32::try_from(failed).unwrap_or(1));
                    let exponent = state.failed_starts.min(16) - 1;
                    let backoff = millis(self.settings.restart_backoff).saturating_mul(1 << exponent);
                    state.next_start_ms = now + backoff.min(millis(self.settings.max_restart_backoff));
                } else if state.instances.iter().any(|i| now - i.record.started_at_ms >= min_uptime) {
                    state.failed_starts = 0;
                }
                if state.instances.len() != before {
                    changed.push(worker.clone());
                }
            }
        }
        for record in &ended {
            remove(&self.record_path(&record.id))?;
        }
        for worker in changed {
            self.write_targets(&worker, &self.lock_targets_of(&worker))?;
        }
        Ok(crashes)
    }

    /// Starts or stops instances of `worker` until `desired` run (not counting those
    /// stopping). Starts wait out a failed-start backoff: returns how many run after the call.
    pub fn scale(&self, worker: &str, desired: u32) -> Result<u32, ActuatorError> {
        let now = crate::clock::now_millis();
        let running = self.running(worker);
        if desired < running {
            let mut workers = self.lock();
            let state = workers.entry(worker.to_owned()).or_default();
            let mut to_stop = running - desired;
            // Newest first: the oldest instances keep their partitions and warm caches.
            for instance in state.instances.iter_mut().rev().filter(|i| i.stopping_since.is_none()) {
                if to_stop == 0 {
                    break;
                }
                tracing::info!(worker, id = %instance.record.id, pid = instance.record.pid, "stopping an instance (SIGTERM)");
                signal(instance.record.pid, libc::SIGTERM);
                instance.stopping_since = Some(now);
                to_stop -= 1;
            }
        } else {
            let next_start_ms = self.lock().get(worker).map_or(0, |state| state.next_start_ms);
            if now < next_start_ms {
                tracing::warn!(
                    worker,
                    wait_ms = next_start_ms - now,
                    "not starting instances: backing off after failed starts"
                );
            } else {
                for _ in running..desired {
                    self.start(worker)?;
                }
            }
        }
        self.write_targets(worker, &self.lock_targets_of(worker))?;
        Ok(self.running(worker))
    }

    /// Starts one more instance of `worker` at once (no backoff, no target count): a rolling
    /// restart's replacement. Returns its record.
    pub fn start_replacement(&self, worker: &str) -> Result<InstanceRecord, ActuatorError> {
        self.start(worker)?;
        self.write_targets(worker, &self.lock_targets_of(worker))?;
        // start() pushed it last.
        self.instances(worker).pop().ok_or_else(|| ActuatorError::Spawn {
            worker: worker.to_owned(),
            source: std::io::Error::other("the started instance is not recorded"),
        })
    }

    /// Asks the instance `id` to stop (SIGTERM: it drains, commits and leaves its group);
    /// `reap` forgets it once it has exited. False when no running instance has that id.
    pub fn stop(&self, id: &str) -> bool {
        let now = crate::clock::now_millis();
        let mut workers = self.lock();
        let found = workers
            .values_mut()
            .flat_map(|state| state.instances.iter_mut())
            .find(|instance| instance.record.id == id && instance.stopping_since.is_none());
        match found {
            Some(instance) => {
                tracing::info!(id, pid = instance.record.pid, "stopping an instance (SIGTERM)");
                signal(instance.record.pid, libc::SIGTERM);
                instance.stopping_since = Some(now);
                true
            }
            None => false,
        }
    }

    /// Whether an instance with that id is still recorded (running or stopping).
    pub fn knows(&self, id: &str) -> bool {
        self.lock().values().any(|state| state.instances.iter().any(|instance| instance.record.id == id))
    }

    /// Starts one instance of `worker`.
    fn start(&self, worker: &str) -> Result<(), ActuatorError> {
        let port = self.free_port();
        let id = format!("{worker}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let log_path = self.logs_dir().join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).map_err(|source| ActuatorError::State {
            action: "creating",
            path: log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| ActuatorError::State {
            action: "opening",
            path: log_path.clone(),
            source,
        })?;
        let mut command = Command::new(&self.program);
        command
            .args(["run", worker])
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("FRONTIER_METRICS__LISTEN", format!("{}:{port}", self.settings.metrics_host))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // A process group of its own: a Ctrl-C meant for the controller does not stop the
        // workers, and a restarted controller adopts them.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|source| ActuatorError::Spawn { worker: worker.to_owned(), source })?;
        let record = InstanceRecord {
            worker: worker.to_owned(),
            id: id.clone(),
            pid: child.id(),
            port,
            started_at_ms: crate::clock::now_millis(),
        };
        let path = self.record_path(&id);
        write_atomically(&path, &serde_json::to_vec_pretty(&record).unwrap_or_default())?;
        tracing::info!(worker, id = %id, pid = record.pid, port, "started an instance");
        let instance = Instance { record, child: Some(child), stopping_since: None };
        self.lock().entry(worker.to_owned()).or_default().instances.push(instance);
        Ok(())
    }

    /// The first port from `first_metrics_port` no recorded instance uses and nobody listens on.
    fn free_port(&self) -> u16 {
        let used: Vec<u16> =
            self.lock().values().flat_map(|state| state.instances.iter().map(|i| i.record.port)).collect();
        (self.settings.first_metrics_port..=u16::MAX)
            .find(|port| {
                !used.contains(port)
                    && std::net::TcpListener::bind((self.settings.metrics_host.as_str(), *port)).is_ok()
            })
            .unwrap_or(0)
    }

    fn lock_targets_of(&self, worker: &str) -> Vec<u16> {
        self.lock().get(worker).map(|state| state.instances.iter().map(|i| i.record.port).collect()).unwrap_or_default()
    }

    /// `state_dir/prometheus/<worker>.json`: Prometheus's file-based discovery format.
    fn write_targets(&self, worker: &str, ports: &[u16]) -> Result<(), ActuatorError> {
        let host = &self.settings.advertised_host;
        let targets: Vec<String> = ports.iter().map(|port| format!("{host}:{port}")).collect();
        let body =
            serde_json::json!([{ "targets": targets, "labels": { "worker": worker, "scaled_by": "autoscaler" } }]);
        write_atomically(&self.targets_dir().join(format!("{worker}.json")), body.to_string().as_bytes())
    }

    fn instances_dir(&self) -> PathBuf {
        self.settings.state_dir.join("instances")
    }

    fn targets_dir(&self) -> PathBuf {
        self.settings.state_dir.join("prometheus")
    }

    fn logs_dir(&self) -> PathBuf {
        self.settings.state_dir.join("logs")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.instances_dir().join(format!("{id}.json"))
    }
}

/// The instances recorded in `state_dir` whose process still runs, read without adopting or
/// changing anything (for `frontier autoscale status`).
pub fn recorded_instances(state_dir: &Path) -> Vec<InstanceRecord> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("instances")) else { return Vec::new() };
    let mut records: Vec<InstanceRecord> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "json"))
        .filter_map(|entry| serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok())
        .filter(|record: &InstanceRecord| runs_worker(record.pid, &record.worker))
        .collect();
    records.sort_by_key(|record| record.started_at_ms);
    records
}

/// Whether the instance's process is still alive (a child of ours is reaped here).
fn is_running(instance: &mut Instance) -> bool {
    match &mut instance.child {
        Some(child) => matches!(child.try_wait(), Ok(None)),
        None => runs_worker(instance.record.pid, &instance.record.worker),
    }
}

/// Whether `pid` is a live `frontier run <worker>` process (not a zombie, not a reused pid).
fn runs_worker(pid: u32, worker: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name: `1234 (frontier) S ...`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2).any(|pair| pair[0] == b"run" && pair[1] == worker.as_bytes())
}

/// Signals an instance; one that has gone already (ESRCH) is what the signal wanted anyway.
fn signal(pid: u32, signal: libc::c_int) {
    let _ = crate::process::signal(pid, signal);
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, ActuatorError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ActuatorError::State {
        action: "listing",
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect())
}

fn remove(path: &Path) -> Result<(), ActuatorError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(ActuatorError::State { action: "removing", path: path.to_path_buf(), source })
        }
        _ => Ok(()),
    }
}

/// Writes through a temporary file and a rename, so readers (Prometheus, an adopting
/// controller) never see half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ActuatorError> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| ActuatorError::State { action: "writing", path: path.to_path_buf(), source })
}
