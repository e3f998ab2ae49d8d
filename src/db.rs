//! PostgreSQL connection pools that report their use on `/metrics`.
//!
//! Every sqlx pool of a long-running process is a [`MeteredPool`], named by what it serves
//! (`prices`, `recommendations`): connections held, idle ones, statements waiting for one, and
//! how long they waited. One place measures all pools, so a pool too small for its load shows
//! the same way whichever worker owns it, and `frontier queries report`'s sizing hint can point
//! at one metric.

use std::time::Instant;

use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;

/// Seconds a statement waited for a pool connection, apart from its own time (which its query
/// event carries), by pool: a pool too small for the load shows here first.
pub const POOL_ACQUIRE_SECONDS: &str = "frontier_db_pool_acquire_duration_seconds";
/// Connections the pool holds (busy and idle), after each acquire, by pool: at the pool's
/// `max_connections` with waiters means the pool, not PostgreSQL, is the limit.
pub const POOL_CONNECTIONS: &str = "frontier_db_pool_connections";
/// Idle connections of the pool, after each acquire, by pool.
pub const POOL_IDLE: &str = "frontier_db_pool_idle_connections";
/// Statements waiting for a pool connection right now, by pool.
pub const POOL_WAITING: &str = "frontier_db_pool_waiting";
/// The most connections the pool may open, by pool (constant; beside the others for ratios).
pub const POOL_MAX_CONNECTIONS: &str = "frontier_db_pool_max_connections";

/// A sqlx pool whose every acquire is measured under the pool's name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MeteredPool {
    pool: PgPool,
    name: &'static str,
}

impl MeteredPool {
    /// Meters `pool` as `name` (a fixed, low-cardinality label such as `prices`).
    pub fn new(name: &'static str, pool: PgPool) -> MeteredPool {
        describe();
        ::metrics::gauge!(POOL_MAX_CONNECTIONS, "pool" => name).set(f64::from(pool.options().get_max_connections()));
        MeteredPool { pool, name }
    }

    /// The pool itself, for statements that need no measuring (migrations at start).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool's name, as its metrics' `pool` label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A connection from the pool, counting this caller among the waiters until it has one
    /// (or gives up: the count is kept right when the caller's future is dropped mid-wait).
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let asked = Instant::now();
        let acquired = {
            let _waiting = Waiting::start(self.name);
            self.pool.acquire().await
        };
        ::metrics::histogram!(POOL_ACQUIRE_SECONDS, "pool" => self.name).record(asked.elapsed().as_secs_f64());
        ::metrics::gauge!(POOL_CONNECTIONS, "pool" => self.name).set(f64::from(self.pool.size()));
        ::metrics::gauge!(POOL_IDLE, "pool" => self.name).set(self.pool.num_idle() as f64);
        acquired
    }
}

/// One caller counted in [`POOL_WAITING`] while it lives.
struct Waiting(&'static str);

impl Waiting {
    fn start(name: &'static str) -> Waiting {
        ::metrics::gauge!(POOL_WAITING, "pool" => name).increment(1.0);
        Waiting(name)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        ::metrics::gauge!(POOL_WAITING, "pool" => self.0).decrement(1.0);
    }
}

/// Describes the pool metrics (idempotent).
pub fn describe() {
    use metrics::{Unit, describe_gauge, describe_histogram};
    describe_histogram!(
        POOL_ACQUIRE_SECONDS,
        Unit::Seconds,
        "Seconds a statement waited for a PostgreSQL pool connection, by pool."
    );
    describe_gauge!(POOL_CONNECTIONS, "Connections the PostgreSQL pool holds, busy and idle, by pool.");
    describe_gauge!(POOL_IDLE, "Idle connections of the PostgreSQL pool, by pool.");
    describe_gauge!(POOL_WAITING, "Statements waiting for a PostgreSQL pool connection, by pool.");
    describe_gauge!(POOL_MAX_CONNECTIONS, "The most connections the PostgreSQL pool may open, by pool.");
}

/// Whether `schema` is a plain lower-case identifier (a letter, then letters, digits or `_`,
/// 63 at most): schema names are spliced into `CREATE SCHEMA` and the search path unquoted.
pub fn is_plain_schema_name(schema: &str) -> bool {
    let mut chars = schema.chars();
    schema.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a pool could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not one, or the schema name is not a plain identifier.
    #[error("invalid PostgreSQL settings: {0}")]
    Invalid(String),
    /// PostgreSQL could not be reached.
    #[error("connecting to PostgreSQL at {url}: {source} (is PostgreSQL up? `ops/stack up`)")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The migrations could not be applied.
    #[error("migrating PostgreSQL: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A pool of up to `max_connections` (and at most the configured size) on `settings`, working in
/// `schema` when given (which must exist), without migrating: for readers such as the deploy
/// preflight, which must change nothing.
pub async fn connect(
    settings: &crate::config::PostgresSettings,
    schema: Option<&str>,
    application: &str,
    max_connections: u32,
) -> Result<PgPool, ConnectError> {
    use std::str::FromStr;

    let url = crate::health::redact(&settings.url);
    let mut options = sqlx::postgres::PgConnectOptions::from_str(&settings.url)
        .map_err(|error| ConnectError::Invalid(format!("{url}: {error}")))?
        .application_name(application);
    if let Some(schema) = schema {
        if !is_plain_schema_name(schema) {
            return Err(ConnectError::Invalid(format!(
                "schema `{schema}` must be 1-63 of a-z 0-9 _, starting with a letter"
            )));
        }
        options = options.options([("search_path", schema)]);
    }
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections.clamp(1, settings.max_connections.max(1)))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|source| ConnectError::Connect { url, source })
}

/// A pool of up to `max_connections` (and at most the configured size) on `settings`, working in
/// `schema` when given (created if needed), with the migrations of `migrations/` applied: for
/// the small stores beside the price store (keys, the audit log).
pub async fn connect_migrated(
    settings: &crate::config::PostgresSettings,
    schema: Option<&str>,
    application: &str,
    max_connections: u32,
) -> Result<PgPool, ConnectError> {
    let pool = connect(settings, schema, application, max_connections).await?;
    let mut migrator = sqlx::migrate!();
    if let Some(schema) = schema {
        migrator.create_schema(schema.to_owned());
    }
    migrator.run(&pool).await?;
    Ok(pool)
}
