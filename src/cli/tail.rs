//! `frontier tail <topic>`: decoded messages as JSON lines, one per line on stdout.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Map, Value as Json, json};

use crate::bus::json::avro_to_json;
use crate::bus::{SchemaCatalog, kafka};
use crate::settings::Settings;

/// `frontier tail` options.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Topic to read.
    pub topic: String,
    #[command(flatten)]
    pub reading: Reading,
    /// Print each message with its partition, offset, key and headers around the value; for
    /// raw-bytes topics such as the DLQ, the value is decoded when it can be, else shown in hex.
    #[arg(long)]
    pub envelope: bool,
}

pub async fn tail(settings: &Settings, args: TailArgs) -> anyhow::Result<ExitCode> {
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    read_topic(settings, &args.topic, &args.reading, |message| match render(&catalog, message, args.envelope) {
        Ok(line) => println!("{line}"),
        Err(reason) => {
            eprintln!("{}[{}]@{}: undecodable: {reason}", message.topic(), message.partition(), message.offset())
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Where to start and when to stop reading a topic.
#[derive(Debug, Args)]
pub struct Reading {
    /// Start at the oldest retained message instead of the end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop when no message arrives for this long (e.g. `10s`).
    #[arg(long, value_parser = crate::cli::duration_arg)]
    pub timeout: Option<Duration>,
}

/// Reads every partition of `topic` outside any consumer group, handing each message to
/// `each`, until `max` messages, `timeout` without a message, or Ctrl-C.
pub(super) async fn read_topic(
    settings: &Settings,
    topic: &str,
    reading: &Reading,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let mut config = kafka::base_config(&settings.kafka);
    // A reader, not a group member: nothing is committed and no group is joined.
    config
        .set("group.id", format!("frontier.reader.{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: StreamConsumer = config.create().context("creating the Kafka consumer")?;
    let partitions = kafka::partitions_of(&consumer, topic, settings.kafka.request_timeout).with_context(|| {
        format!("reading metadata from {} (is Kafka up? `ops/stack up`)", settings.kafka.bootstrap_servers)
    })?;
    if partitions.is_empty() {
        bail!("topic `{topic}` does not exist (create it with `frontier topics apply`)");
    }
    let start = if reading.from_beginning { Offset::Beginning } else { Offset::End };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(topic, partition, start)?;
    }
    consumer.assign(&assignment)?;

    let mut seen = 0u64;
    loop {
        if reading.max.is_some_and(|max| seen >= max) {
            return Ok(());
        }
        let next = tokio::select! {
            () = idle(reading.timeout) => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = consumer.recv() => next,
        };
        each(&next.context("consuming")?);
        seen += 1;
    }
}

/// Completes after `timeout`, or never.
async fn idle(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

/// One message as a JSON line.
fn render(catalog: &SchemaCatalog, message: &BorrowedMessage<'_>, envelope: bool) -> Result<String, String> {
    let payload = message.payload().unwrap_or_default();
    let decoded = catalog.decode(payload);
    if !envelope {
        return decoded.map(|d| avro_to_json(&d.value).to_string()).map_err(|e| e.to_string());
    }
    let headers: Map<String, Json> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (h.key.to_string(), Json::String(String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": message.timestamp().to_millis(),
        "key": message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
    });
    match decoded {
        Ok(d) => {
            out["schema"] = Json::String(d.schema.name.clone());
            out["value"] = avro_to_json(&d.value);
        }
        Err(e) => {
            out["value_error"] = Json::String(e.to_string());
            out["value_hex"] = Json::String(hex::encode(payload));
        }
    }
    Ok(out.to_string())
}
