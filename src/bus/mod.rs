//! The bus: Kafka clients, the Avro codec, and the consumer loop every worker shares.

pub mod codec;
pub mod compacted;
mod consumer_loop;
mod context;
mod delivery;
pub mod dlq;
pub mod groups;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod outputs;
pub mod replay;
pub mod settings;
mod stages;
pub mod status;
mod worker;

pub use codec::{CodecError, Decoded, Identified, KnownSchema, SchemaCatalog};
pub use consumer_loop::{BusError, ConsumerLoop, LoopOptions, LoopReport};
pub use outputs::{Refusal, RefusalCause};
pub use settings::{BusSettings, KafkaSettings};
pub use worker::{HandlerError, Inbound, Outbound, Worker};
