//! Why a store operation failed.

use crate::market::TradingDay;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The PostgreSQL URL in the settings does not parse.
    #[error("invalid PostgreSQL URL {url}: {source}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// Why it does not parse.
        #[source]
        source: sqlx::Error,
    },
    /// The schema name is not a plain lower-case identifier.
    #[error(
        "invalid PostgreSQL schema name `{0}`: use lower-case letters, digits and _ (at most 63), starting with a letter"
    )]
    InvalidSchemaName(String),
    /// No connection could be opened.
    #[error("connecting to PostgreSQL at {url}: {source} (start it with `ops/stack up`)")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The migrations in `migrations/` could not be applied.
    #[error("migrating the price tables: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("{operation}: {source}")]
    Query {
        /// What the store was doing (`latest closes of AAPL`).
        operation: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement answered through the statement cache failed; every read that shared it
    /// gets its error as text.
    #[error("{operation}: {message}")]
    Shared {
        /// The statement's kind (`sql.prices.latest`).
        operation: String,
        /// What failed.
        message: String,
    },
    /// A row to insert is unusable (bad symbol, non-finite or non-positive close).
    #[error("invalid price row {symbol} {day}: {reason}")]
    InvalidRow {
        /// The row's symbol.
        symbol: String,
        /// The row's day.
        day: TradingDay,
        /// What is wrong.
        reason: &'static str,
    },
}
