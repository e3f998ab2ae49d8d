//! The Redis layer, shared by every serving instance: sealed entries with `PX` = ttl + grace;
//! per tag, a hash of the entries carrying it (entry key -> the watermark it was computed
//! under) and a hash of its invalidation versions (partition -> offset). Writes and
//! invalidations are Lua scripts, so checking a tag's versions and writing happen atomically.
//!
//! Redis being down never fails a request: the first failure is logged and the layer is
//! skipped; after `retry_backoff` the next request tries a fresh connection, and success is
//! logged once too.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use tracing::{debug, info, warn};

use super::entry::Entry;
use super::metric;
use super::sealed::Sealer;
use super::stats::{Counters, bump};
use super::watermark::InvalidationVersion;
use crate::clock::duration_millis;

/// Stores `ARGV[1]` under `KEYS[1]` for `ARGV[2]` ms unless a version of one of its tags
/// (`KEYS[2..n+1]`, partition -> offset) is above its watermark `ARGV[3]` (`p:o,p:o`); then
/// records it in each tag's index (`KEYS[n+2..2n+1]`, entry key -> watermark).
const WRITE_SCRIPT: &str = r#"
local wm = {}
for p, o in string.gmatch(ARGV[3], '(%-?%d+):(%-?%d+)') do wm[p] = tonumber(o) end
local n = (#KEYS - 1) / 2
for i = 1, n do
  local versions = redis.call('HGETALL', KEYS[1 + i])
  for j = 1, #versions, 2 do
    if tonumber(versions[j + 1]) > (wm[versions[j]] or -1) then return 0 end
  end
end
local px = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
for i = 1, n do
  local index = KEYS[1 + n + i]
  redis.call('HSET', index, KEYS[1], ARGV[3])
  if redis.call('PTTL', index) < px then redis.call('PEXPIRE', index, px) end
end
return 1
"#;

/// Invalidation at partition `ARGV[1]`, offset `ARGV[2]`: raises the applied offset of the
/// partition (`KEYS[1]`) and each tag's version (`KEYS[2..n+1]`, kept `ARGV[3]` ms), then
/// deletes the entries of each tag index (`KEYS[n+2..]`) computed before it. Returns how many
/// entries it deleted.
const INVALIDATE_SCRIPT: &str = r#"
local p, o = ARGV[1], tonumber(ARGV[2])
local n = (#KEYS - 1) / 2
local applied = tonumber(redis.call('HGET', KEYS[1], p))
if applied == nil or applied < o then redis.call('HSET', KEYS[1], p, ARGV[2]) end
local dropped = 0
for i = 1, n do
  local version = tonumber(redis.call('HGET', KEYS[1 + i], p))
  if version == nil or version < o then redis.call('HSET', KEYS[1 + i], p, ARGV[2]) end
  redis.call('PEXPIRE', KEYS[1 + i], ARGV[3])
  local index = KEYS[1 + n + i]
  local members = redis.call('HGETALL', index)
  for j = 1, #members, 2 do
    local at = -1
    for mp, mo in string.gmatch(members[j + 1], '(%-?%d+):(%-?%d+)') do
      if mp == p then at = tonumber(mo) end
    end
    if at < o then
      dropped = dropped + redis.call('DEL', members[j])
      redis.call('HDEL', index, members[j])
    end
  end
end
return dropped
"#;

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored.
    Stored,
    /// Refused: a tag was invalidated above the entry's watermark.
    Refused,
    /// Not attempted or failed: Redis is unavailable (already counted and logged).
    Unavailable,
}

/// Connection state: the live connection, or since when Redis is down and when to try again.
struct Link {
    connection: Option<ConnectionManager>,
    down_since: Option<Instant>,
    retry_at: Instant,
}

/// Names of the Redis keys under one prefix.
#[derive(Debug, Clone)]
struct KeyNames {
    prefix: String,
}

impl KeyNames {
    fn entry(&self, key: &str) -> String {
        format!("{}:e:{key}", self.prefix)
    }
    fn tag_index(&self, tag: &str) -> String {
        format!("{}:t:{tag}", self.prefix)
    }
    fn tag_version(&self, tag: &str) -> String {
        format!("{}:v:{tag}", self.prefix)
    }
    fn applied(&self) -> String {
        format!("{}:applied", self.prefix)
    }
    fn hot_set(&self) -> String {
        format!("{}:hot", self.prefix)
    }
    fn busy(&self) -> String {
        format!("{}:busy", self.prefix)
    }
}

/// Commands that must run past the timeout in a row before the layer is taken down. One slow
/// answer is most often this process's own threads busy for a moment (during `frontier bench
/// serve`'s rebalances commands timed out at 500 ms while Redis's slowlog held nothing over
/// 30 ms): that request misses, the others keep Redis, instead of every request computing for
/// a whole backoff.
const TIMEOUTS_BEFORE_DOWN: u32 = 3;

/// Entries fetched by one `MGET` at most: a warm start of a thousand keys is a few round
/// trips, none of which holds Redis for long.
const MGET_CHUNK: usize = 200;

/// The shared layer.
pub struct RedisLayer {
    client: Client,
    names: KeyNames,
    sealer: Sealer,
    link: Mutex<Link>,
    /// Commands in a row that ran past `timeout` (see [`TIMEOUTS_BEFORE_DOWN`]).
    timeouts_in_a_row: AtomicU32,
    retry_backoff: Duration,
    timeout: Duration,
    tag_version_retention: Duration,
    counters: Arc<Counters>,
}

impl RedisLayer {
    /// A layer on `client` (connected on first use).
    pub fn new(
        client: Client,
        prefix: &str,
        sealer: Sealer,
        retry_backoff: Duration,
        timeout: Duration,
        tag_version_retention: Duration,
        counters: Arc<Counters>,
    ) -> Result<RedisLayer, RedisError> {
        ::metrics::gauge!(metric::REDIS_UP).set(0.0);
        Ok(RedisLayer {
            client,
            names: KeyNames { prefix: prefix.to_string() },
            sealer,
            link: Mutex::new(Link { connection: None, down_since: None, retry_at: Instant::now() }),
            timeouts_in_a_row: AtomicU32::new(0),
            retry_backoff,
            timeout,
            tag_version_retention,
            counters,
        })
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        // The state is three plain fields, each always valid on its own.
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the layer is in use now (false while backing off after a failure).
    pub fn is_up(&self) -> bool {
        self.link().connection.is_some()
    }

    /// The connection, connecting first if the backoff has passed; `None` while Redis is
    /// considered down.
    pub async fn connection(&self) -> Option<ConnectionManager> {
        {
            let mut link = self.link();
            if let Some(connection) = &link.connection {
                return Some(connection.clone());
            }
            let now = Instant::now();
            if now < link.retry_at {
                return None;
            }
            // Only this caller probes; the others skip Redis until it succeeds or the next
            // backoff passes.
            link.retry_at = now + self.retry_backoff;
        }
        // One attempt per probe: the backoff between probes is ours, not the manager's.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let attempt = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(self.timeout + Duration::from_millis(100), attempt).await {
            Ok(Ok(connection)) => {
                let mut link = self.link();
                link.connection = Some(connection.clone());
                if let Some(since) = link.down_since.take() {
                    bump(&self.counters.redis_recoveries);
                    info!(down_for = ?since.elapsed(), "Redis is reachable again; the cache uses it again");
                }
                ::metrics::gauge!(metric::REDIS_UP).set(1.0);
                Some(connection)
            }
            Ok(Err(error)) => {
                self.failed("connect", &error, true);
                None
            }
            Err(_) => {
                self.failed("connect", &format!("no connection within {:?}", self.timeout), true);
                None
            }
        }
    }

    /// Counts a failure; a connectivity failure also takes the layer down until the backoff
    /// passes, logging the outage the first time only.
    fn failed(&self, op: &'static str, error: &dyn Display, connectivity: bool) {
        bump(&self.counters.redis_errors);
        ::metrics::counter!(metric::REDIS_ERRORS, "op" => op).increment(1);
        if !connectivity {
            // A command Redis understood and refused: a bug here, not an outage.
            warn!(op, %error, "Redis refused a cache command");
            return;
        }
        let mut link = self.link();
        link.connection = None;
        link.retry_at = Instant::now() + self.retry_backoff;
        if link.down_since.is_none() {
            link.down_since = Some(Instant::now());
            bump(&self.counters.redis_outages);
            ::metrics::gauge!(metric::REDIS_UP).set(0.0);
            warn!(op, %error, retry_every = ?self.retry_backoff,
                "Redis is unreachable; the cache serves without it until it is back");
        }
    }

    /// Runs one command with the layer's timeout, counting and classifying failures.
    async fn run<T: redis::FromRedisValue>(&self, op: &'static str, command: &redis::Cmd) -> Option<T> {
        let asked = std::time::Instant::now();
        let mut connection = self.connection().await?;
        let reply = tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection)).await;
        ::metrics::histogram!(metric::REDIS_SECONDS, "op" => op).record(asked.elapsed().as_secs_f64());
        self.outcome(op, reply)
    }

    /// The value of a command's reply, counting, classifying and logging a failure.
    fn outcome<T>(
        &self,
        op: &'static str,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match reply {
            Ok(Ok(value)) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Some(value)
            }
            Ok(Err(error)) if error.is_timeout() => {
                self.timed_out(op, &error);
                None
            }
            Ok(Err(error)) => {
                self.failed(op, &error, is_connectivity(&error));
                None
            }
            Err(_) => {
                self.timed_out(op, &format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    /// A command ran past the timeout: a failure of that command only, until
    /// [`TIMEOUTS_BEFORE_DOWN`] in a row take the layer down.
    fn timed_out(&self, op: &'static str, error: &dyn Display) {
        let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row >= TIMEOUTS_BEFORE_DOWN {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            self.failed(op, error, true);
            return;
        }
        bump(&self.counters.redis_errors);
        ::metrics::counter!(metric::REDIS_ERRORS, "op" => op).increment(1);
        debug!(op, %error, in_a_row, "a Redis command timed out; the layer stays up");
    }

    /// The entry under `key`, if Redis holds a readable one. Unreadable values are deleted.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let redis_key = self.names.entry(key);
        let bytes: Option<Vec<u8>> = self.run("get", redis::cmd("GET").arg(&redis_key)).await?;
        self.open_or_drop(key, &bytes?).await
    }

    /// The entry sealed in `bytes`, read from Redis under `key`; an unreadable one is counted,
    /// logged and deleted.
    async fn open_or_drop(&self, key: &str, bytes: &[u8]) -> Option<Entry> {
        match self.sealer.open(Some(key), bytes) {
            Ok((_, entry)) => Some(entry),
            Err(reason) => {
                bump(&self.counters.unreadable);
                ::metrics::counter!(metric::UNREADABLE, "layer" => "redis", "reason" => reason.label()).increment(1);
                warn!(key, %reason, "dropping an unreadable entry from Redis");
                let _: Option<i64> = self.run("remove", redis::cmd("DEL").arg(self.names.entry(key))).await;
                None
            }
        }
    }

    /// Stores `entry` under `key` for the rest of its life, unless one of its tags was
    /// invalidated above its watermark.
    pub async fn put(&self, key: &str, entry: &Entry) -> WriteOutcome {
        let life = entry.remaining_life(crate::clock::now_millis());
        if life < Duration::from_millis(1) {
            return WriteOutcome::Stored;
        }
        let sealed = match self.sealer.seal(key, entry) {
            Ok(sealed) => sealed,
            Err(error) => {
                self.failed("set", &error, false);
                return WriteOutcome::Unavailable;
            }
        };
        let mut command = redis::cmd("EVAL");
        command.arg(WRITE_SCRIPT).arg(1 + 2 * entry.tags.len()).arg(self.names.entry(key));
        for tag in &entry.tags {
            command.arg(self.names.tag_version(tag));
        }
        for tag in &entry.tags {
            command.arg(self.names.tag_index(tag));
        }
        command.arg(sealed).arg(duration_millis(life)).arg(entry.watermark.to_string());
        match self.run::<i64>("set", &command).await {
            Some(1) => WriteOutcome::Stored,
            Some(_) => WriteOutcome::Refused,
            None => WriteOutcome::Unavailable,
        }
    }

    /// Records `version` for `tags` and deletes their entries computed before it. Returns how
    /// many entries were deleted, `None` if Redis is unavailable.
    pub async fn invalidate(&self, tags: &[String], version: InvalidationVersion) -> Option<u64> {
        let mut command = redis::cmd("EVAL");
        command.arg(INVALIDATE_SCRIPT).arg(1 + 2 * tags.len()).arg(self.names.applied());
        for tag in tags {
            command.arg(self.names.tag_version(tag));
        }
        for tag in tags {
            command.arg(self.names.tag_index(tag));
        }
        command.arg(version.partition).arg(version.offset).arg(duration_millis(self.tag_version_retention));
        self.run::<u64>("invalidate", &command).await
    }

    /// Deletes the entries under `keys`; how many existed, `None` if Redis is unavailable.
    pub async fn remove(&self, keys: &[String]) -> Option<u64> {
        if keys.is_empty() {
            return Some(0);
        }
        let mut command = redis::cmd("DEL");
        for key in keys {
            command.arg(self.names.entry(key));
        }
        self.run::<u64>("remove", &command).await
    }

    /// The invalidation versions Redis holds for `tag` (partition -> offset), `None` if
    /// unavailable.
    pub async fn tag_versions(&self, tag: &str) -> Option<HashMap<i32, i64>> {
        self.run("versions", redis::cmd("HGETALL").arg(self.names.tag_version(tag))).await
    }

    /// Replaces the hot set (a sorted set of entry keys scored by their decayed request count)
    /// with `keys`, living `ttl`, in one transaction so a reader never sees it half written.
    /// Whether it was stored.
    pub async fn publish_hot_set(&self, keys: &[(String, f64)], ttl: Duration) -> bool {
        let Some(mut connection) = self.connection().await else { return false };
        let name = self.names.hot_set();
        let mut pipe = redis::pipe();
        pipe.atomic().del(&name).ignore();
        if !keys.is_empty() {
            let members: Vec<(f64, &str)> = keys.iter().map(|(key, score)| (*score, key.as_str())).collect();
            pipe.zadd_multiple(&name, &members).ignore().pexpire(&name, duration_millis(ttl)).ignore();
        }
        let reply = tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut connection)).await;
        self.outcome("hot_set", reply).is_some()
    }

    /// The `limit` hottest keys of the hot set, hottest first; `None` if unavailable.
    pub async fn hot_set(&self, limit: usize) -> Option<Vec<String>> {
        if limit == 0 {
            return Some(Vec::new());
        }
        let last = i64::try_from(limit).unwrap_or(i64::MAX) - 1;
        self.run("hot_set", redis::cmd("ZREVRANGE").arg(self.names.hot_set()).arg(0).arg(last)).await
    }

    /// The readable entries under `keys`, fetched `MGET_CHUNK` at a time; what Redis lacks or
    /// cannot be read is left out (and an unreadable value deleted, as [`RedisLayer::get`]
    /// does). Stops at the first chunk Redis does not answer.
    pub async fn get_many(&self, keys: &[String]) -> Vec<(String, Entry)> {
        let mut found = Vec::new();
        for chunk in keys.chunks(MGET_CHUNK) {
            let mut command = redis::cmd("MGET");
            for key in chunk {
                command.arg(self.names.entry(key));
            }
            let Some(values) = self.run::<Vec<Option<Vec<u8>>>>("get", &command).await else { break };
            for (key, bytes) in chunk.iter().zip(values) {
                if let Some(bytes) = bytes
                    && let Some(entry) = self.open_or_drop(key, &bytes).await
                {
                    found.push((key.clone(), entry));
                }
            }
        }
        found
    }

    /// Says, for `ttl`, that `instance` is busy with live requests (see
    /// [`RedisLayer::someone_busy`]). Whether it was stored.
    pub async fn mark_busy(&self, instance: &str, ttl: Duration) -> bool {
        let command =
            redis::cmd("SET").arg(self.names.busy()).arg(instance).arg("PX").arg(duration_millis(ttl)).clone();
        self.run::<()>("busy", &command).await.is_some()
    }

    /// Whether a serving instance said it was busy within its mark's ttl; `None` if unavailable.
    pub async fn someone_busy(&self) -> Option<bool> {
        self.run("busy", redis::cmd("EXISTS").arg(self.names.busy())).await
    }

    /// The highest invalidation offset any instance applied, per partition; `None` if
    /// unavailable.
    pub async fn applied(&self) -> Option<HashMap<i32, i64>> {
        self.run("versions", redis::cmd("HGETALL").arg(self.names.applied())).await
    }
}

/// Whether `error` means Redis is unreachable (rather than a command it refused).
fn is_connectivity(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}
