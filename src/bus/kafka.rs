//! librdkafka client configuration, built in one place so every worker and command connects the
//! same way and the at-least-once settings cannot drift.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;

use super::settings::KafkaSettings;

fn millis(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}

/// Settings common to every client: brokers, identity, pass-through security settings.
pub fn base_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers).set("client.id", client_id());
    for (key, value) in kafka.client_settings() {
        config.set(key, value);
    }
    config
}

/// How a classic consumer group hands partitions over when a member joins or leaves (KIP-848
/// groups leave it to the broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rebalancing {
    /// `cooperative-sticky`: only the partitions that change owner stop, but in two rounds, and
    /// librdkafka sends a member's JoinGroup at most once a second, so they stop for about a
    /// second. For workers whose messages take long (a batch, a model call): a member keeps the
    /// work in flight on the partitions it keeps.
    #[default]
    Cooperative,
    /// `range`: every member gives up all its partitions and takes them back in one round,
    /// which takes tens of milliseconds, but whatever is in flight on them is redone. For
    /// workers whose messages are short and latency-bound (serving requests).
    Eager,
}

impl Rebalancing {
    /// librdkafka's `partition.assignment.strategy` for it.
    pub fn assignment_strategy(self) -> &'static str {
        match self {
            Rebalancing::Cooperative => "cooperative-sticky",
            Rebalancing::Eager => "range",
        }
    }
}

/// A consumer that never stores an offset by itself: the bus stores each one only after the
/// message's outputs are acknowledged, and librdkafka commits stored offsets in the background.
/// `rebalancing` applies to classic groups unless `[kafka.client]` names a strategy.
pub fn consumer_config(kafka: &KafkaSettings, group_id: &str, rebalancing: Rebalancing) -> ClientConfig {
    let mut config = base_config(kafka);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        // Group members report statistics: their consumer lag becomes a gauge (LoopContext).
        .set("statistics.interval.ms", millis(kafka.statistics_interval));
    set_defaults(&mut config, &[("auto.offset.reset", "earliest")]);
    // A member that subscribed before its topic reached the broker it asked (a worker started
    // right after `frontier topics apply`) rejoins when a metadata refresh shows the topic:
    // librdkafka's default refresh, 5 minutes, is long to sit idle. 10 s costs one small
    // metadata request per consumer. (When it is the leader's assignment that missed the
    // topic, no refresh helps: the consumer loop's ownership audit, `consumer_loop/orphans.rs`.)
    set_defaults(&mut config, &[("topic.metadata.refresh.interval.ms", "10000")]);
    // KIP-848's protocol (`group.protocol = "consumer"` in `[kafka.client]`) assigns on the
    // broker, which also sets the heartbeat: librdkafka refuses to create a consumer given an
    // assignment strategy or a heartbeat interval, so both are left to the broker there.
    if kafka.uses_kip_848_groups() {
        set_defaults(&mut config, &[("auto.commit.interval.ms", "1000")]);
        return config;
    }
    // A member learns of a rebalance (another member left or joined) only from its next
    // heartbeat's answer. librdkafka's classic group code checks whether a heartbeat is due
    // only when its main thread wakes, and with nothing else to do that thread sleeps until
    // its next timer: about once a second (its 1 s timers, the 1 s auto-commit timer). With
    // `debug=cgrp` on, members configured for 100 ms heartbeats sent one a second; the
    // survivor of a restart learned of the leave 358-366 ms after it, while the leaving
    // member's partitions sat unread (`frontier bench serve` restart bucket p99 314-334 ms,
    // 2026-12-07). Latency-bound (eager) groups therefore also commit as often as they
    // heartbeat: the commit timer wakes the thread, so the heartbeats are really sent. At
    // 100 ms the restart bucket came down to 33-41 ms; what was left of it was the leaving
    // member's partitions waiting for the survivor's next heartbeat (up to 100 ms), so 50 ms,
    // which with the stacks' broker writing group records without a linger
    // (`group.coordinator.append.linger.ms=0`, ops/stack) took it to 15-17 ms in three runs
    // (README, "Request serving"). The cost is 20 heartbeats and, while offsets move, 20
    // OffsetCommits a second per member. Other groups keep librdkafka's 1 s commits and
    // 500 ms (in effect, 1 s) heartbeats: a second to start a rebalance is nothing beside
    // their work.
    let (heartbeat, commit) = match rebalancing {
        Rebalancing::Eager => ("50", "50"),
        Rebalancing::Cooperative => ("500", "1000"),
    };
    let classic = [
        ("partition.assignment.strategy", rebalancing.assignment_strategy()),
        ("heartbeat.interval.ms", heartbeat),
        ("auto.commit.interval.ms", commit),
    ];
    set_defaults(&mut config, &classic);
    config
}

/// Sets each key the pass-through settings left unset.
fn set_defaults(config: &mut ClientConfig, defaults: &[(&str, &str)]) {
    for (key, value) in defaults {
        if config.get(key).is_none() {
            config.set(*key, *value);
        }
    }
}

/// A producer that waits for every in-sync replica, so an acknowledged output is durable, and
/// keeps one request in flight per broker, so a retry never reorders a partition.
///
/// Not librdkafka's idempotent producer, which would also drop the duplicate a retry after a
/// lost acknowledgement writes (every output tolerates one: README, "Duplicates, and where
/// they would hurt"). In librdkafka 2.12.1 it counts a partition's in-flight *messages*
/// against the five-*request* window (`rktp_msgs_inflight` against
/// `RD_KAFKA_IDEMP_MAX_INFLIGHT` in `rd_kafka_toppar_producer_serve`, unchanged on master), so
/// a partition with one batch of five or more in flight sends nothing more until it is
/// answered, and once the next batch's `linger.ms` has passed the broker thread polls with a
/// zero timeout until then. An answer slower than the linger (5 ms) put two such threads on
/// both of this project's two cores: `perf` at `frontier bench serve`'s 100-170 ms stalls
/// showed nothing else running, the broker starved of the CPU it needed to answer. Without
/// it, runs had none of those (README, "Request serving"), and `frontier bench bus` moved the
/// same messages per second with one request in flight per broker as with one per partition.
pub fn producer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(kafka);
    config
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("acks", "all")
        .set("linger.ms", millis(kafka.linger))
        .set("delivery.timeout.ms", millis(kafka.delivery_timeout));
    // zstd, measured against lz4 with `frontier bench bus` on the same broker (README,
    // "Benchmarks"): a bare consume-and-produce loop moved 1.17x the messages per second and the
    // bus 1.22x, and the topic took 0.6x the bytes.
    set_defaults(&mut config, &[("compression.type", "zstd")]);
    config
}

/// The shared producer every output and dead letter goes through.
pub fn producer(kafka: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    producer_config(kafka).create()
}

/// An admin client for topic management and health checks.
pub fn admin(kafka: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    base_config(kafka).create()
}

/// Deletes `topics`, waiting at most the request timeout for the cluster; the ones it could not
/// delete, with why. `Err` when the cluster could not be asked at all.
pub async fn delete_topics(
    kafka: &KafkaSettings,
    topics: &[&str],
) -> Result<Vec<(String, RDKafkaErrorCode)>, KafkaError> {
    let options = AdminOptions::new().operation_timeout(Some(kafka.request_timeout));
    let results = admin(kafka)?.delete_topics(topics, &options).await?;
    Ok(results.into_iter().filter_map(Result::err).collect())
}

/// `frontier@<host>:<pid>`, so brokers and logs can tell instances apart.
pub fn client_id() -> String {
    format!("frontier@{}", crate::telemetry::instance_id())
}

/// The partition ids of `topic`; empty when it does not exist.
pub fn partitions_of<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;

    use super::*;

    #[test]
    fn a_group_on_the_classic_protocol_rebalances_cooperatively_by_default() {
        let config = consumer_config(&KafkaSettings::default(), "group", Rebalancing::default());
        assert_eq!(config.get("partition.assignment.strategy"), Some("cooperative-sticky"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("500"));
        assert_eq!(config.get("auto.commit.interval.ms"), Some("1000"));
        config.create::<BaseConsumer>().unwrap();
    }

    #[test]
    fn an_eager_group_asks_for_range_assignment() {
        let config = consumer_config(&KafkaSettings::default(), "group", Rebalancing::Eager);
        assert_eq!(config.get("partition.assignment.strategy"), Some("range"));
        config.create::<BaseConsumer>().unwrap();
    }

    #[test]
    fn an_eager_group_wakes_librdkafka_often_enough_to_heartbeat_every_50_ms() {
        let config = consumer_config(&KafkaSettings::default(), "group", Rebalancing::Eager);
        assert_eq!(config.get("heartbeat.interval.ms"), Some("50"));
        // The commit timer is what wakes the group code to send those heartbeats.
        assert_eq!(config.get("auto.commit.interval.ms"), Some("50"));
    }

    #[test]
    fn a_strategy_named_in_the_client_settings_wins() {
        let mut kafka = KafkaSettings::default();
        kafka.client.insert("partition.assignment.strategy".into(), "cooperative-sticky".into());
        let config = consumer_config(&kafka, "group", Rebalancing::Eager);
        assert_eq!(config.get("partition.assignment.strategy"), Some("cooperative-sticky"));
    }

    #[test]
    fn a_group_on_the_kip_848_protocol_leaves_assignment_and_heartbeat_to_the_broker() {
        let mut kafka = KafkaSettings::default();
        kafka.client.insert("group.protocol".into(), "consumer".into());
        let config = consumer_config(&kafka, "group", Rebalancing::Eager);
        assert_eq!(config.get("partition.assignment.strategy"), None);
        assert_eq!(config.get("heartbeat.interval.ms"), None);
        // librdkafka refuses a consumer on this protocol given either setting.
        config.create::<BaseConsumer>().unwrap();
    }

    #[test]
    fn the_producer_keeps_partition_order_with_one_request_in_flight_and_no_idempotence() {
        let config = producer_config(&KafkaSettings::default());
        assert_eq!(config.get("enable.idempotence"), Some("false"));
        assert_eq!(config.get("max.in.flight.requests.per.connection"), Some("1"));
        assert_eq!(config.get("acks"), Some("all"));
        config.create::<rdkafka::producer::BaseProducer>().unwrap();
    }

    #[test]
    fn client_settings_cannot_turn_idempotence_on_or_allow_reordering() {
        for key in ["enable.idempotence", "max.in.flight.requests.per.connection"] {
            let mut kafka = KafkaSettings::default();
            kafka.client.insert(key.into(), "5".into());
            let error = kafka.validate().unwrap_err().to_string();
            assert!(error.contains(key) && error.contains("reserved"), "{error}");
        }
    }
}
