//! Requests that reach Kafka: answered by a real serving worker through the gateway's own reply
//! topic, synchronously, by polling, as a server-sent event, or with 504 when nobody answers.

use std::time::{Duration, Instant};

use frontier::gateway::keys::Role;
use serde_json::Value;

use super::{PATIENCE, World, json_of};

const VOLATILITY: &str = "/v1/analysis/market.volatility";
const BODY: &str = r#"{"params": {"symbol": "SYN0001", "window_days": 30}}"#;

#[tokio::test]
async fn an_analysis_is_answered_through_the_gateway_by_a_serving_worker() {
    let mut world = World::new("answered").await;
    world.serving_worker().await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let response = world.post(&base, VOLATILITY, Some(&key), BODY).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("ratelimit-remaining"), "admitted answers carry the quota left");
    let answer = json_of(response).await;
    assert_eq!(answer["kind"], "market.volatility");
    let volatility = answer["result"]["volatility_annualized"].as_f64().expect("a volatility");
    assert!(volatility > 0.0, "{answer}");
    world.finish().await;
}

#[tokio::test]
async fn two_gateway_instances_each_get_their_own_answers() {
    let mut world = World::new("two").await;
    world.serving_worker().await;
    let first = world.gateway(|_| {}).await;
    let second = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let (a, b) = tokio::join!(
        world.post(&first, VOLATILITY, Some(&key), BODY),
        world.post(&second, VOLATILITY, Some(&key), BODY),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    world.finish().await;
}

#[tokio::test]
async fn an_async_request_is_polled_until_its_answer() {
    let mut world = World::new("polled").await;
    world.serving_worker().await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let accepted = world.post(&base, &format!("{VOLATILITY}?async=true"), Some(&key), BODY).await;
    assert_eq!(accepted.status(), 202);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let started = Instant::now();
    let answer = loop {
        let polled = world.get(&base, &location, &key).await;
        if polled.status() == 200 {
            break json_of(polled).await;
        }
        assert_eq!(polled.status(), 202, "pending until answered");
        assert!(started.elapsed() < PATIENCE, "no answer within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(answer["result"]["volatility_annualized"].as_f64().is_some(), "{answer}");
    world.finish().await;
}

#[tokio::test]
async fn an_async_request_streams_its_answer_as_a_server_sent_event() {
    let mut world = World::new("streamed").await;
    world.serving_worker().await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let accepted = json_of(world.post(&base, &format!("{VOLATILITY}?async=true"), Some(&key), BODY).await).await;
    let events = world.get(&base, accepted["events_url"].as_str().unwrap(), &key).await;
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(PATIENCE, events.text()).await.expect("the stream ends").unwrap();
    let data = text.lines().find_map(|line| line.strip_prefix("data: ")).expect("a data line");
    let event: Value = serde_json::from_str(data).unwrap();
    assert!(text.contains("event: result"), "{text}");
    assert_eq!(event["status"], 200, "{event}");
    assert!(event["body"]["result"]["volatility_annualized"].as_f64().is_some(), "{event}");
    world.finish().await;
}

#[tokio::test]
async fn a_request_nobody_answers_before_its_deadline_is_504() {
    let mut world = World::new("deadline").await;
    let base = world.gateway(|_| {}).await;
    let key = world.key("acme", Role::Operator).await;
    let body = r#"{"params": {"symbol": "SYN0001"}, "timeout_ms": 500}"#;
    let response = world.post(&base, VOLATILITY, Some(&key), body).await;
    assert_eq!(response.status(), 504);
    assert_eq!(json_of(response).await["error"]["code"], "deadline_exceeded");
    world.finish().await;
}

#[tokio::test]
async fn another_tenants_result_is_not_found() {
    let mut world = World::new("tenants").await;
    let base = world.gateway(|_| {}).await;
    let acme = world.key("acme", Role::Operator).await;
    let globex = world.key("globex", Role::Admin).await;
    let accepted = json_of(world.post(&base, &format!("{VOLATILITY}?async=true"), Some(&acme), BODY).await).await;
    let url = accepted["result_url"].as_str().unwrap();
    assert_eq!(world.get(&base, url, &globex).await.status(), 404);
    assert_eq!(world.get(&base, url, &acme).await.status(), 202, "its own tenant sees it pending");
    world.finish().await;
}
