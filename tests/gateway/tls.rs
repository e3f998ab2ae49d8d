//! TLS everywhere: a request answered through the gateway over HTTPS by a serving worker that
//! reaches Kafka only through its SSL listener and Redis only through its TLS port, all with
//! the certificate `ops/stack up` signs with its local CA (`.stack/tls/`).

use std::path::PathBuf;

use frontier::config::RedisSettings;
use frontier::gateway::keys::Role;
use frontier::gateway::settings::GatewayTls;

use super::common::repo;
use super::{World, json_of};

/// Kafka's SSL listener and Redis's TLS port in the local stack.
const KAFKA_SSL: &str = "127.0.0.1:9095";
const REDIS_TLS: &str = "rediss://127.0.0.1:6380";
const TLS_HINT: &str = "the stack's TLS is missing: `ops/stack up` makes it (a broker or Redis started before it existed \
                        needs `ops/stack down && ops/stack up`)";

fn tls_file(name: &str) -> PathBuf {
    let path = repo().join(".stack/tls").join(name);
    assert!(path.is_file(), "{} is missing: {TLS_HINT}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_over_https_by_a_worker_reaching_kafka_and_redis_over_tls() {
    let mut world = World::new("tls").await;
    let ca = tls_file("ca.pem");
    // Everything from here on speaks TLS only: the plain ports are never named.
    let kafka = &mut world.settings.kafka;
    kafka.bootstrap_servers = KAFKA_SSL.into();
    kafka.client.insert("security.protocol".into(), "ssl".into());
    kafka.client.insert("ssl.ca.location".into(), ca.display().to_string());
    world.settings.redis = RedisSettings { url: REDIS_TLS.into(), ca_file: Some(ca.clone()) };
    world.settings.gateway.tls =
        Some(GatewayTls { cert_file: tls_file("server.pem"), key_file: tls_file("server.key") });
    let redis = world.settings.redis.clone();
    assert!(
        redis.client().unwrap().get_multiplexed_async_connection().await.is_ok(),
        "Redis does not answer TLS on {REDIS_TLS}: {TLS_HINT}"
    );

    world.serving_worker_on(Some(&redis)).await;
    // The world's client trusts the stack's CA, and nothing else.
    let ca_certificate = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    world.http = reqwest::Client::builder().add_root_certificate(ca_certificate).build().unwrap();
    let base = world.gateway(|_| {}).await;
    assert!(base.starts_with("https://"), "{base}");
    let key = world.key("acme", Role::Operator).await;
    let body = r#"{"params": {"symbol": "SYN0001", "window_days": 30}}"#;
    let answer = world.post(&base, "/v1/analysis/market.volatility", Some(&key), body).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(json_of(answer).await["kind"], "market.volatility");

    let plain = base.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain}/health")).await.is_err(), "plain HTTP is not served on the HTTPS port");
    let untrusting = reqwest::Client::new().get(format!("{base}/health")).send().await;
    assert!(untrusting.is_err(), "a client that does not trust the stack's CA refuses the certificate");

    let mut connection = redis.client().unwrap().get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("test:gateway:{}*", world.schema);
    let cached: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut connection).await.unwrap();
    assert!(!cached.is_empty(), "the worker wrote its answer to Redis over TLS");
    let _: i64 = redis::cmd("DEL").arg(&cached).query_async(&mut connection).await.unwrap();
    world.finish().await;
}
