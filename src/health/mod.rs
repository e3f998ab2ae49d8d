//! `frontier health-check`: can this process reach everything it needs, and are the workers
//! alive and keeping up ([`workers`])?

pub mod workers;

use std::fmt;
use std::time::Duration;

use sqlx::Connection;

use crate::bus::kafka;
use crate::settings::Settings;
use crate::topics;

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked (`kafka`).
    pub name: &'static str,
    /// What was seen, or why it failed.
    #[serde(serialize_with = "workers::verdict")]
    pub result: Result<String, String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(detail) => write!(f, "{:<10} ok      {detail}", self.name),
            Err(reason) => write!(f, "{:<10} FAILED  {reason}", self.name),
        }
    }
}

/// Runs every check, each bounded by `timeout`.
pub async fn run_checks(settings: &Settings, timeout: Duration) -> Vec<Check> {
    let kafka_check = check_kafka(settings, timeout).await;
    let topics_check = match &kafka_check {
        Ok(_) => check_topics(settings, timeout).await,
        Err(_) => Err("skipped: Kafka is unreachable".to_string()),
    };
    vec![
        Check { name: "kafka", result: kafka_check },
        Check { name: "topics", result: topics_check },
        Check { name: "redis", result: check_redis(settings, timeout).await },
        Check { name: "postgres", result: check_postgres(settings, timeout).await },
    ]
}

async fn check_kafka(settings: &Settings, timeout: Duration) -> Result<String, String> {
    let admin = kafka::admin(&settings.kafka).map_err(|e| e.to_string())?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("{} unreachable: {e} (start it with `ops/stack up`)", settings.kafka.bootstrap_servers))?;
    Ok(format!("{} ({} broker(s))", settings.kafka.bootstrap_servers, metadata.brokers().len()))
}

async fn check_topics(settings: &Settings, timeout: Duration) -> Result<String, String> {
    let specs = topics::load_dir(&settings.paths.topics, &settings.topics).map_err(|e| e.to_string())?;
    let admin = kafka::admin(&settings.kafka).map_err(|e| e.to_string())?;
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let cluster = topics::describe(&admin, &names, timeout).await.map_err(|e| e.to_string())?;
    let missing: Vec<&str> = names.iter().copied().filter(|n| !cluster.contains_key(*n)).collect();
    if missing.is_empty() {
        Ok(format!("all {} topics exist", names.len()))
    } else {
        Err(format!("missing {} (run `frontier topics apply`)", missing.join(", ")))
    }
}

async fn check_redis(settings: &Settings, timeout: Duration) -> Result<String, String> {
    let ping = async {
        let client = settings.redis.client()?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(pong)) => Ok(format!("{} ({pong})", redact(&settings.redis.url))),
        Ok(Err(e)) => Err(format!("{}: {e} (start it with `ops/stack up`)", redact(&settings.redis.url))),
        Err(_) => Err(format!("{}: no answer within {timeout:?}", redact(&settings.redis.url))),
    }
}

async fn check_postgres(settings: &Settings, timeout: Duration) -> Result<String, String> {
    let select = async {
        let mut connection = sqlx::PgConnection::connect(&settings.postgres.url).await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut connection).await?;
        connection.close().await?;
        Ok::<i32, sqlx::Error>(one)
    };
    match tokio::time::timeout(timeout, select).await {
        Ok(Ok(_)) => Ok(format!("{} (SELECT 1)", redact(&settings.postgres.url))),
        Ok(Err(e)) => Err(format!("{}: {e} (start it with `ops/stack up`)", redact(&settings.postgres.url))),
        Err(_) => Err(format!("{}: no answer within {timeout:?}", redact(&settings.postgres.url))),
    }
}

/// Hides the password of a URL before it is printed.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://frontier:secret@h:5432/db"), "postgres://frontier:***@h:5432/db");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
