//! Daily price history in PostgreSQL: migrations, the price store, seeding, DB query events, and
//! the request kinds computed from the prices.
//!
//! - [`PriceStore`]: a `sqlx` pool over the `symbols` and `prices` tables (`migrations/`); every
//!   statement is timed and reported as a [`QueryEvent`] to a [`QueryEventSink`]
//!   ([`KafkaQueryEvents`] publishes them to `frontier.db.query-events`).
//!   Its frequent identical reads can be answered from the tiered cache
//!   ([`PriceStore::with_statement_cache`]).
//! - [`seed`]: `frontier seed`'s deterministic synthetic closes and cache invalidations.
//! - [`requests`]: `market.volatility`, `portfolio.risk` and `option.price`, parsed, tagged and
//!   computed.

pub mod day;
pub mod events;
pub mod pool;
pub mod requests;
pub mod seed;
mod settings;
pub mod store;

pub use day::TradingDay;
pub use events::{DiscardQueryEvents, KafkaQueryEvents, QUERY_EVENTS_TOPIC, QueryEventSink, RecordedQueryEvents};
pub use requests::{Analysis, AnalysisResult, RequestError, TURN_WAIT_SECONDS};
pub use settings::{ConnectStoreError, PriceStoreSettings, connect_store};
pub use store::{
    AlignedCloses, DailyClose, POOL_NAME, PriceStore, READS_PER_STATEMENT, StoreError, StoreOptions, UpsertCounts,
};
