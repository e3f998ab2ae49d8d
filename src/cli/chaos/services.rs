//! The services a run owns: a Redis to kill, and a small filesystem to fill.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::fleet::tail;

/// The run's own `redis-server`, so killing it touches nothing else on the machine.
pub(super) struct OwnRedis {
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn new(port: u16, work_dir: &Path) -> anyhow::Result<OwnRedis> {
        std::fs::create_dir_all(work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
        let mut redis = OwnRedis { port, log: work_dir.join("redis.log"), child: None };
        redis.restart()?;
        Ok(redis)
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start()
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.log).with_context(|| format!("creating {}", self.log.display()))?;
        let child = crate::process::redis_server(self.port)
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (installed by `ops/stack up`)")?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("redis-server on port {} did not listen within 10 s; log:\n{}", self.port, tail(&self.log, 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small tmpfs for the disk-full scenario's disk caches.
pub(super) struct SmallDisk {
    pub path: PathBuf,
    pub size: &'static str,
}

impl SmallDisk {
    pub fn mount(path: &Path) -> anyhow::Result<SmallDisk> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let size = "16m";
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .context("running mount")?;
        if !status.success() {
            bail!("mounting a {size} tmpfs at {} failed ({status}): the disk-full scenario needs root", path.display());
        }
        Ok(SmallDisk { path: path.to_path_buf(), size })
    }

    /// Writes a filler file until the filesystem is full; returns its size.
    pub fn fill(&self) -> anyhow::Result<u64> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join("filler")).context("creating the filler")?;
        let block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        let _ = file.flush();
        Ok(written)
    }

    pub fn empty(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.path.join("filler")).context("removing the filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
