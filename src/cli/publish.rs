//! `frontier publish <topic>`: JSON lines in, Avro single-object records out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use futures::channel::oneshot::Canceled;
use futures::stream::FuturesUnordered;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::bus::json::{example, json_to_avro};
use crate::bus::{KnownSchema, SchemaCatalog, kafka};
use crate::settings::Settings;
use crate::topics;

/// `frontier publish` options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Topic to publish to.
    pub topic: String,
    /// JSON-lines file to read; stdin when absent or `-`.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Schema file (in the schemas folder) to encode with; defaults to the topic file's.
    #[arg(long)]
    pub schema: Option<String>,
    /// Top-level string field used as the message key (records with the same key stay in order).
    #[arg(long, default_value = "id")]
    pub key: String,
    /// Print an example line for the topic's schema instead of publishing.
    #[arg(long)]
    pub example: bool,
}

/// The schema a topic's values are written with.
pub fn schema_for(
    settings: &Settings,
    catalog: &SchemaCatalog,
    topic: &str,
    explicit: Option<&str>,
) -> anyhow::Result<Arc<KnownSchema>> {
    let file = match explicit {
        Some(file) => file.to_string(),
        None => {
            let specs = topics::load_dir(&settings.paths.topics, &settings.topics)?;
            let Some(spec) = specs.iter().find(|s| s.name == topic) else {
                bail!("topic `{topic}` is not defined in {}; pass --schema FILE", settings.paths.topics.display());
            };
            let Some(file) = spec.value_schema.clone() else {
                bail!("topic `{topic}` carries raw bytes (no value_schema); pass --schema FILE");
            };
            file
        }
    };
    Ok(catalog.by_file(&file)?)
}

pub async fn publish(settings: &Settings, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let schema = schema_for(settings, &catalog, &args.topic, args.schema.as_deref())?;
    if args.example {
        println!("{}", example(&schema.schema));
        return Ok(ExitCode::SUCCESS);
    }
    let input: Box<dyn AsyncBufRead + Unpin> = match &args.file {
        Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
            tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?,
        )),
        _ => Box::new(BufReader::new(tokio::io::stdin())),
    };
    let producer = kafka::producer(&settings.kafka).context("creating the Kafka producer")?;

    // Each record is handed to librdkafka as soon as its line is read, and acknowledgements are
    // collected while the next line is awaited: a generator piping a few events a second sees
    // them on the topic at once, not when its input ends.
    let mut lines = input.lines();
    let mut deliveries = FuturesUnordered::new();
    let (mut line_no, mut invalid, mut failed, mut published) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let line = tokio::select! {
            Some(delivery) = deliveries.next(), if !deliveries.is_empty() => {
                tally(delivery, &mut published, &mut failed);
                continue;
            }
            line = lines.next_line() => line.context("reading input")?,
        };
        let Some(line) = line else { break };
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let encoded =
            serde_json::from_str::<serde_json::Value>(&line).map_err(|e| format!("not JSON: {e}")).and_then(|json| {
                let key = json.get(&args.key).and_then(|k| k.as_str()).map(|k| k.as_bytes().to_vec());
                let value = json_to_avro(&json, &schema.schema).map_err(|e| e.to_string())?;
                let payload = SchemaCatalog::encode_value(&schema, value).map_err(|e| e.to_string())?;
                Ok((key, payload))
            });
        let (key, payload) = match encoded {
            Ok(encoded) => encoded,
            Err(reason) => {
                invalid += 1;
                eprintln!("line {line_no}: does not fit {}: {reason}", schema.name);
                continue;
            }
        };
        let mut record = FutureRecord::<[u8], [u8]>::to(&args.topic).payload(&payload);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(async move { (line_no, delivery.await) });
                    break;
                }
                // librdkafka's queue is full: wait for an acknowledgement to make room.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                    record = again;
                    match deliveries.next().await {
                        Some(delivery) => tally(delivery, &mut published, &mut failed),
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => {
                    failed += 1;
                    eprintln!("line {line_no}: not delivered: {error}");
                    break;
                }
            }
        }
    }
    while let Some(delivery) = deliveries.next().await {
        tally(delivery, &mut published, &mut failed);
    }
    eprintln!("published {published} record(s) to {} ({invalid} invalid, {failed} failed)", args.topic);
    Ok(if invalid + failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What a delivery future resolves to: the broker's answer, or cancelled.
type Acknowledgement<T> = Result<Result<T, (KafkaError, OwnedMessage)>, Canceled>;

/// Counts one acknowledgement (a cancelled delivery means the producer was dropped: failed).
fn tally<T>((line, delivery): (usize, Acknowledgement<T>), published: &mut usize, failed: &mut usize) {
    match delivery {
        Ok(Ok(_)) => *published += 1,
        Ok(Err((error, _))) => {
            *failed += 1;
            eprintln!("line {line}: not delivered: {error}");
        }
        Err(Canceled) => {
            *failed += 1;
            eprintln!("line {line}: not delivered: the producer shut down");
        }
    }
}
