//! The worker processes of one scenario: `frontier run <worker>` children that a fault may
//! kill, stop and resume, stopped with SIGTERM at the end.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// One member of the fleet.
#[derive(Debug)]
struct Member {
    name: String,
    worker: &'static str,
    env: Vec<(String, String)>,
    metrics: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

/// The scenario's worker processes.
#[derive(Debug)]
pub(super) struct Fleet {
    binary: PathBuf,
    /// Settings every member gets (topics, brokers, Redis, ...).
    common: Vec<(String, String)>,
    log_dir: PathBuf,
    members: Vec<Member>,
}

impl Fleet {
    pub fn new(binary: &Path, common: Vec<(String, String)>, log_dir: PathBuf) -> anyhow::Result<Fleet> {
        std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        Ok(Fleet { binary: binary.to_path_buf(), common, log_dir, members: Vec::new() })
    }

    /// Starts member `name` running `worker` with its own `env` on top of the common settings.
    pub fn add(&mut self, name: &str, worker: &'static str, env: Vec<(String, String)>) -> anyhow::Result<()> {
        let metrics = free_port()?;
        let log = self.log_dir.join(format!("{name}.log"));
        let mut member = Member { name: name.into(), worker, env, metrics, log, child: None };
        self.spawn(&mut member)?;
        self.members.push(member);
        Ok(())
    }

    fn spawn(&self, member: &mut Member) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .with_context(|| format!("opening {}", member.log.display()))?;
        let child = Command::new(&self.binary)
            .args(["run", member.worker])
            .envs(self.common.iter().map(|(k, v)| (k, v)))
            .envs(member.env.iter().map(|(k, v)| (k, v)))
            .env("FRONTIER_METRICS__LISTEN", member.metrics.to_string())
            .env("FRONTIER_LOG__FORMAT", "human")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} run {}", self.binary.display(), member.worker))?;
        member.child = Some(child);
        Ok(())
    }

    fn member(&mut self, name: &str) -> anyhow::Result<&mut Member> {
        self.members.iter_mut().find(|m| m.name == name).with_context(|| format!("no fleet member {name}"))
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let member = self.member(name)?;
        if let Some(mut child) = member.child.take() {
            child.kill().with_context(|| format!("killing {name}"))?;
            child.wait().with_context(|| format!("reaping {name}"))?;
        }
        Ok(())
    }

    /// Starts a member again (after [`Fleet::kill`]) with the same name, settings and log.
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self.members.iter().position(|m| m.name == name).with_context(|| format!("no member {name}"))?;
        let mut member = self.members.remove(index);
        let spawned = self.spawn(&mut member);
        self.members.insert(index, member);
        spawned
    }

    /// Sends `signal` (`libc::SIGSTOP`, `SIGCONT`, ...) to a member.
    pub fn signal(&mut self, name: &str, signal: libc::c_int) -> anyhow::Result<()> {
        let member = self.member(name)?;
        let pid = member.child.as_ref().map(Child::id).with_context(|| format!("{name} is not running"))?;
        crate::process::signal(pid, signal).with_context(|| format!("signalling {name} (pid {pid})"))
    }

    /// Every member's name and metrics address.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.members.iter().map(|m| (m.name.clone(), m.metrics)).collect()
    }

    /// The last `lines` of every member's log, each under its name: why a fleet that did not
    /// come up did not, without the logs at hand (as on a CI machine).
    pub fn log_tails(&self, lines: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ({}):\n{}\n", m.name, m.log.display(), tail(&m.log, lines)))
            .collect()
    }

    /// Members that exited on their own, with their status and the end of their log.
    pub fn exited(&mut self) -> Vec<Exit> {
        let mut gone = Vec::new();
        for member in &mut self.members {
            let Some(child) = member.child.as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                let why = format!("{} exited with {status}; log tail:\n{}", member.name, tail(&member.log, 20));
                gone.push(Exit { name: member.name.clone(), why });
                member.child = None;
            }
        }
        gone
    }

    /// Restarts every member that exited on its own, as Kubernetes or compose's restart policy
    /// would, and says which and why. A member killed on purpose ([`Fleet::kill`]) is not
    /// restarted here.
    pub fn revive(&mut self) -> Vec<Exit> {
        let exited = self.exited();
        for exit in &exited {
            if let Err(error) = self.restart(&exit.name) {
                tracing::warn!(member = exit.name, %error, "could not restart an exited worker");
            }
        }
        exited
    }

    /// Sleeps until `deadline`, restarting members that exit meanwhile; returns what exited.
    pub async fn supervise_until(
        &mut self,
        deadline: Instant,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<Exit> {
        let mut exited = Vec::new();
        while Instant::now() < deadline && !shutdown.is_cancelled() {
            exited.extend(self.revive());
            let next = (Instant::now() + Duration::from_millis(250)).min(deadline);
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
        exited
    }

    /// Waits until every member's /metrics answers: it has started (for the batcher: loaded
    /// its model) far enough to serve it.
    pub async fn wait_started(&mut self, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        for index in 0..self.members.len() {
            loop {
                let exited = self.exited();
                if !exited.is_empty() {
                    bail!("a worker exited while starting: {}", Exit::all(&exited));
                }
                let member = &self.members[index];
                let url = format!("http://{}/metrics", member.metrics);
                if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if started.elapsed() > patience {
                    bail!(
                        "{} did not serve /metrics within {patience:?}; log:\n{}",
                        member.name,
                        tail(&member.log, 30)
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// SIGTERM (SIGCONT first, in case one is stopped) to every member, then SIGKILL to any
    /// still running after `deadline`.
    pub async fn stop(&mut self, deadline: Duration) {
        for member in &mut self.members {
            if let Some(child) = member.child.as_ref() {
                let _ = crate::process::signal(child.id(), libc::SIGCONT);
                let _ = crate::process::signal(child.id(), libc::SIGTERM);
            }
        }
        let started = Instant::now();
        for member in &mut self.members {
            let Some(mut child) = member.child.take() else { continue };
            while started.elapsed() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A member that exited on its own.
#[derive(Debug)]
pub(super) struct Exit {
    pub name: String,
    /// Its status and the end of its log.
    pub why: String,
}

impl Exit {
    /// The report's note on an exit the fleet restarted.
    pub fn restarted(&self) -> String {
        format!("a worker exited and was restarted (as a supervisor would): {}", self.why)
    }

    /// Every exit's `why`, one after the other.
    pub fn all(exits: &[Exit]) -> String {
        exits.iter().map(|e| e.why.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// A loopback port free right now (the OS picks it).
pub(super) fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The last `lines` lines of a log.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sums a counter's samples (every label set) on a Prometheus text page.
pub(super) fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(name) && matches!(line.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
