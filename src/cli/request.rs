//! `frontier request <kind> --params '{...}'`: one analysis request published the way a client
//! publishes it (with a `reply_to`), its answer read back by id, printed with the round trip as
//! the client sees it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value as Json, json};

use crate::bus::json::{avro_to_json, json_to_avro};
use crate::bus::{SchemaCatalog, kafka};
use crate::clock::now_millis;
use crate::settings::Settings;

/// `frontier request` options.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Analysis kind, e.g. `market.volatility`.
    pub kind: String,
    /// Parameters, as a JSON object (e.g. `{"symbol":"AAPL","window_days":30}`).
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Tenant the request is made for.
    #[arg(long, default_value = "acme")]
    pub tenant: String,
    /// User within the tenant.
    #[arg(long, default_value = "cli")]
    pub user: String,
    /// `low`, `normal`, `high` or `critical`.
    #[arg(long, default_value = "normal")]
    pub priority: String,
    /// Entitlements of the user, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub entitlements: Vec<String>,
    /// Topic the request goes to; the serve worker's input topic by default.
    #[arg(long)]
    pub topic: Option<String>,
    /// Topic the answer is asked for (`reply_to`); the serve worker's responses topic by default.
    #[arg(long)]
    pub reply_to: Option<String>,
    /// How long to wait for the answer; also the request's deadline.
    #[arg(long, default_value = "30s", value_parser = crate::cli::duration_arg)]
    pub timeout: Duration,
}

pub async fn request(settings: &Settings, args: RequestArgs) -> anyhow::Result<ExitCode> {
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let schema = catalog.by_file("request.avsc")?;
    let topic = args.topic.clone().unwrap_or_else(|| settings.workers.serve.input_topic.clone());
    let reply_to = args.reply_to.clone().unwrap_or_else(|| settings.workers.serve.responses_topic.clone());
    let params: Json = serde_json::from_str(&args.params).context("--params is not JSON")?;
    let id = uuid::Uuid::new_v4().to_string();
    let issued_at = now_millis();
    let timeout_ms = i64::try_from(args.timeout.as_millis()).unwrap_or(i64::MAX);
    let doc = json!({
        "id": id, "tenant": args.tenant, "user": args.user, "kind": args.kind, "params": params,
        "priority": args.priority, "issued_at": issued_at, "deadline": issued_at.saturating_add(timeout_ms),
        "reply_to": reply_to, "entitlements": args.entitlements,
    });
    let value = json_to_avro(&doc, &schema.schema).context("the request does not fit request.avsc")?;
    let payload = SchemaCatalog::encode_value(&schema, value)?;

    // Read the reply topic from its current end, fixed before the request leaves: an answer
    // faster than the consumer's first fetch would be missed by `Offset::End`.
    let consumer: StreamConsumer = kafka::base_config(&settings.kafka)
        .set("group.id", format!("frontier.request.{id}"))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the Kafka consumer")?;
    let partitions = kafka::partitions_of(&consumer, &reply_to, settings.kafka.request_timeout).with_context(|| {
        format!("reading metadata from {} (is Kafka up? `ops/stack up`)", settings.kafka.bootstrap_servers)
    })?;
    if partitions.is_empty() {
        bail!("the reply topic `{reply_to}` does not exist (create it with `frontier topics apply`)");
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (_, high) = consumer.fetch_watermarks(&reply_to, partition, settings.kafka.request_timeout)?;
        assignment.add_partition_offset(&reply_to, partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;

    let producer = kafka::producer(&settings.kafka).context("creating the Kafka producer")?;
    let started = Instant::now();
    producer
        .send(FutureRecord::to(&topic).key(id.as_bytes()).payload(&payload), Timeout::After(args.timeout))
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("publishing the request to {topic}"))?;
    let published = started.elapsed();

    let answer = tokio::time::timeout(args.timeout, async {
        loop {
            let message = consumer.recv().await?;
            let Ok(decoded) = catalog.decode(message.payload().unwrap_or_default()) else { continue };
            let response = avro_to_json(&decoded.value);
            if response["request_id"] == id.as_str() {
                return Ok::<_, rdkafka::error::KafkaError>(response);
            }
        }
    })
    .await;
    let response = match answer {
        Ok(response) => response.context("reading the reply topic")?,
        Err(_) => {
            eprintln!("no answer to {id} on {reply_to} within {:?} (is `frontier run serve` running?)", args.timeout);
            return Ok(ExitCode::FAILURE);
        }
    };
    let round_trip = started.elapsed();
    println!("{response}");
    eprintln!(
        "round trip {:.1} ms (publishing {:.1} ms); the worker reports latency_ms {}",
        round_trip.as_secs_f64() * 1000.0,
        published.as_secs_f64() * 1000.0,
        response["latency_ms"]
    );
    Ok(ExitCode::SUCCESS)
}
