//! Redis for tests: the stack's Redis checked before use, keys under a test's prefix deleted, a
//! PING with a timeout, and a private `redis-server` a test can kill and restart (the stack's
//! Redis is shared by every test, so it must never be stopped).

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The stack's Redis URL (`settings.redis.url`), failing with instructions when it does not answer.
pub async fn stack_redis(settings: &frontier::settings::Settings) -> String {
    let url = settings.redis.url.clone();
    if let Err(error) = ping(&url).await {
        panic!("Redis is not reachable at {url} ({error}): {}", super::START_HINT);
    }
    url
}

/// Deletes every key under `prefix` (what another operator's FLUSH would do to a test's keys).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut connection).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut connection).await.unwrap();
    }
}

/// The hot set a warmer published under `prefix` (`<prefix>:hot`): every key with its score.
pub async fn hot_set(url: &str, prefix: &str) -> Vec<(String, f64)> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZRANGE")
        .arg(format!("{prefix}:hot"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Whether Redis at `url` answers PING within 2 s.
pub async fn ping(url: &str) -> Result<(), String> {
    let attempt = async {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 2s".into()),
    }
}

/// A `redis-server` of this test only, killed on drop.
pub struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    pub async fn start(port: u16) -> PrivateRedis {
        let child = frontier::process::redis_server(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it, e.g. with `ops/stack up`"));
        let server = PrivateRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while ping(&server.url()).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {port} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
