//! Frontier Optimizer: the optimization layer of the Frontier financial-analysis platform, as
//! consumer groups on Apache Kafka.
//!
//! - [`autoscale`]: lag-based sizing of consumer groups (partition health, the policy).
//! - [`bus`]: Kafka clients, the Avro single-object codec, and the consumer loop every worker
//!   runs on (at-least-once, dead-lettering, graceful shutdown).
//! - [`records`]: one Rust type per Avro record of `schemas/`.
//! - [`topics`]: declarative topic definitions, planned and applied against a cluster.
//! - [`config`]: typed, validated settings per environment.
//! - [`analytics`]: the financial analytics the serving worker computes and caches.
//! - [`inference`]: the embedding model (all-MiniLM-L6-v2 on candle), model instances, the
//!   batcher as a library and `frontier model-serve`.
//! - [`cache`]: the multi-layer request cache, its invalidation loop and the recipes the
//!   serving worker and the warmer share.
//! - [`cdn`]: site manifests and the minimal purge set of a deploy (the CDN purger, to come).
//! - [`db`]: PostgreSQL pools that report their use on `/metrics`.
//! - [`deploy`]: `frontier deploy` and `rollback`: preflight, apply, record, rolling restart.
//! - [`gateway`]: the HTTP front door (keys, roles, quotas, audit, TLS, the live dashboard).
//! - [`market`]: daily prices in PostgreSQL and the DB query events of every query on them.
//! - [`queries`]: slow-query fingerprints and index advice proven with HypoPG.
//! - [`sla`]: SLIs, threshold rules, burn-rate SLO alerts and alert state (I/O-free core).
//! - [`workers`]: the consumer groups side by side (passthrough, serve, cache warmer, inference
//!   batcher, SLA monitor), each with its settings and one entry point.
//! - [`settings`]: the whole configuration, every section in one place above its owners.
//! - [`cli`]: the `frontier` command.

pub mod analytics;
pub mod audit;
pub mod autoscale;
pub mod bus;
pub mod cache;
pub mod cdn;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod deploy;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod health;
pub mod inference;
pub mod market;
pub mod process;
pub mod queries;
pub mod records;
pub mod settings;
pub mod shutdown;
pub mod sla;
pub mod telemetry;
pub mod topics;
pub mod workers;
