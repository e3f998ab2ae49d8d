//! Timeouts, error answers with their codes, and PostgreSQL failures retried.

use super::*;

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_timeout_without_computing() {
    let mut world = World::new("deadline").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let late = request("market.volatility", json!({"symbol": "SYN0001"}), Some(frontier::clock::now_millis() - 1_000));
    let response = instance.ask(&mut world, late).await;
    assert_eq!(response["status"], "timeout");
    assert_eq!(response["error"]["code"], "deadline_exceeded");
    assert!(response["result"].is_null());
    assert_eq!(instance.worker.computations(), 0);
    instance.stop().await;
    world.drop_schema().await;
}

/// Asks one request and returns its error code and message, checking it is an error answer.
async fn error_of(world: &mut World, instance: &Instance, sent: Value) -> (String, String) {
    let response = instance.ask(world, sent).await;
    assert_eq!(response["status"], "error", "{response}");
    assert!(response["result"].is_null());
    (
        response["error"]["code"].as_str().unwrap().to_string(),
        response["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn invalid_params_are_answered_with_invalid_params() {
    let mut world = World::new("invalid").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let (code, message) = error_of(
        &mut world,
        &instance,
        request("market.volatility", json!({"symbol": "SYN0001", "window_days": -3}), None),
    )
    .await;
    assert_eq!(code, "invalid_params");
    assert!(message.contains("window_days"), "{message}");
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn an_unknown_kind_is_answered_with_unknown_kind() {
    let mut world = World::new("kind").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let (code, message) =
        error_of(&mut world, &instance, request("market.horoscope", json!({"symbol": "SYN0001"}), None)).await;
    assert_eq!(code, "unknown_kind");
    assert!(message.contains("market.horoscope"), "{message}");
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn an_unknown_symbol_is_answered_with_unknown_symbol() {
    let mut world = World::new("symbol").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    let instance = world.instance("a", world.cache_settings(&disk), Some(&redis)).await;
    let (code, message) = error_of(&mut world, &instance, volatility("NOSUCH", 30)).await;
    assert_eq!(code, "unknown_symbol");
    assert!(message.contains("NOSUCH"), "{message}");
    instance.stop().await;
    world.drop_schema().await;
}

#[tokio::test]
async fn a_request_is_retried_not_answered_while_postgres_fails_and_answered_once_it_works() {
    let mut world = World::new("postgres").await;
    let redis = stack_redis(&world.settings).await;
    let disk = tempfile::tempdir().unwrap();
    // An instance whose own connection pool is closed: every query fails like a database
    // that went away.
    let broken = world.own_store().await;
    broken.pool().close().await;
    let settings = world.instance_settings("a").await;
    let first = world.instance_with(settings.clone(), world.cache_settings(&disk), Some(&redis), broken).await;
    let sent = volatility("SYN0001", 50);
    first.send(&sent).await;
    let id = sent["id"].as_str().unwrap().to_string();
    let waited = tokio::time::timeout(Duration::from_secs(3), world.responses.wait(&id)).await;
    assert!(waited.is_err(), "no answer (and no error answer) while the store fails: {waited:?}");
    first.stop().await;

    // The same group again, with a working store: the request was never committed, so it is
    // delivered again and answered.
    let second = world.instance_with(settings, world.cache_settings(&disk), Some(&redis), world.store.clone()).await;
    let response = world.responses.wait(&id).await;
    assert_eq!(response["status"], "ok", "{response}");
    second.stop().await;
    world.drop_schema().await;
}
