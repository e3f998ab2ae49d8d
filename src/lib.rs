//! Frontier Optimizer: the optimization layer of the Frontier financial-analysis platform, as
//! consumer groups on Apache Kafka.
//!
//! - [`bus`]: Kafka clients, the Avro single-object codec, and the consumer loop every worker
//!   runs on (at-least-once, dead-lettering, graceful shutdown).
//! - [`topics`]: declarative topic definitions, planned and applied against a cluster.
//! - [`config`]: typed, validated settings per environment.
//! - Workers, one module each: [`passthrough`].
//! - [`cli`]: the `frontier` command.

pub mod bus;
pub mod cli;
pub mod config;
pub mod health;
pub mod passthrough;
pub mod shutdown;
pub mod telemetry;
pub mod topics;
