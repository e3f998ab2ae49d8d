//! `frontier model-serve` as a real process for tests: started, awaited on `/health`, killed.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use frontier::inference::model::DEFAULT_MODEL_DIR;

use super::{frontier, repo};

/// The name the test servers serve the model under.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// How long a debug-build server may take to load the model and answer `/health`.
const READY_PATIENCE: Duration = Duration::from_secs(120);

pub fn model_dir() -> PathBuf {
    let dir = repo().join(DEFAULT_MODEL_DIR);
    assert!(
        dir.join("model.safetensors").is_file(),
        "the embedding model is missing from {}: fetch it with `ops/models` (or run every test with `ops/test`)",
        dir.display()
    );
    dir
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

/// One `frontier model-serve` process, SIGKILLed when dropped.
pub struct ModelServer {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl ModelServer {
    /// Starts a server on `port` and waits until its `/health` answers 200.
    pub async fn start(port: u16) -> Self {
        Self::start_named(port, MODEL_NAME).await
    }

    /// The same, serving the model under `model_name`.
    pub async fn start_named(port: u16, model_name: &str) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = frontier()
            .args(["model-serve", "--listen", &format!("127.0.0.1:{port}"), "--model-name", model_name])
            .arg("--model-dir")
            .arg(model_dir())
            .args(["--instance-id", &format!("test-{port}")])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("frontier model-serve starts");
        let mut server = ModelServer { child, port, log };
        server.wait_ready().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/health` until it answers 200, failing with the server's log if it exits first.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("model-serve on port {} exited with {status}:\n{}", self.port, self.log_text());
            }
            if let Ok(response) = client.get(format!("{}/health", self.url())).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < READY_PATIENCE,
                "model-serve on port {} not ready within {READY_PATIENCE:?}:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.kill();
    }
}
