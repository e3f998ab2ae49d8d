//! Frontier Optimizer: the optimization layer of the Frontier financial-analysis platform, as
//! consumer groups on Apache Kafka.
//!
//! - [`bus`]: Kafka clients, the Avro single-object codec, and the consumer loop every worker
//!   runs on (at-least-once, dead-lettering, graceful shutdown).
//! - [`topics`]: declarative topic definitions, planned and applied against a cluster.
//! - [`config`]: typed, validated settings per environment.
//! - [`analytics`]: the financial analytics the serving worker computes and caches.
//! - [`inference`]: the embedding model (all-MiniLM-L6-v2 on candle), model instances and the batcher.
//! - [`cache`]: the multi-layer request cache and the serving worker.
//! - [`market`]: daily prices in PostgreSQL and the DB query events of every query on them.
//! - [`sla`]: SLIs, threshold rules, burn-rate SLO alerts and alert state (I/O-free core).
//! - Workers, one module each: [`passthrough`].
//! - [`cli`]: the `frontier` command.

pub mod analytics;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod health;
pub mod inference;
pub mod market;
pub mod passthrough;
pub mod shutdown;
pub mod sla;
pub mod telemetry;
pub mod topics;
