//! Declarative topics: the files in `topics/` are the truth, `frontier topics plan` shows how the
//! cluster differs, `frontier topics apply` makes it match (idempotently; partitions only grow).

mod plan;
mod spec;

use std::path::PathBuf;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use plan::{Change, ClusterTopic, ConfigDiff, Plan, apply, describe, plan};
pub use spec::{TopicSpec, load_dir};

/// Why topics could not be read, planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid topic file {file}: {message}")]
    InvalidSpec { file: PathBuf, message: String },
    #[error("kafka: {0}")]
    Kafka(#[source] KafkaError),
    #[error("the broker refused to {action} {topic}: {code}")]
    Broker { topic: String, action: &'static str, code: RDKafkaErrorCode },
    #[error("the plan has changes Kafka cannot make; nothing was applied:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    #[error("topics not visible in metadata after apply: {0:?}")]
    NotVisible(Vec<String>),
}
