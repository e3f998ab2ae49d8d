//! Unit tests of the serving worker's pure parts (the path through Kafka, Redis and PostgreSQL
//! is tested in `tests/serve.rs`).

use super::metric::kind_label;
use super::settings::ServeSettings;
use crate::workers::WorkerConfig;

#[test]
fn kinds_from_clients_cannot_create_metric_series() {
    assert_eq!(kind_label("market.volatility"), "market.volatility");
    assert_eq!(kind_label("anything.else"), "other");
}

#[test]
fn settings_refuse_a_loop_and_a_shared_invalidation_group() {
    assert!(ServeSettings::default().validate().is_ok());
    let looping = ServeSettings { responses_topic: "frontier.requests".into(), ..ServeSettings::default() };
    assert_eq!(looping.validate().unwrap_err().key, "input_topic");
    let shared = ServeSettings {
        group_id: Some("g".into()),
        invalidations_group_id: Some("g".into()),
        ..ServeSettings::default()
    };
    assert_eq!(shared.validate().unwrap_err().key, "invalidations_group_id");
}

#[test]
fn settings_refuse_an_answer_linger_over_a_second() {
    use std::time::Duration;
    let settings = |millis| ServeSettings { answer_linger: Duration::from_millis(millis), ..ServeSettings::default() };
    assert!(settings(0).validate().is_ok());
    assert!(settings(1_000).validate().is_ok());
    assert_eq!(settings(1_001).validate().unwrap_err().key, "answer_linger");
}

#[test]
fn settings_refuse_heat_read_back_as_requests_and_windows_out_of_range() {
    use std::time::Duration;
    let looping = ServeSettings { heat_topic: "frontier.requests".into(), ..ServeSettings::default() };
    assert_eq!(looping.validate().unwrap_err().key, "input_topic");
    let often = ServeSettings { heat_interval: Duration::from_millis(99), ..ServeSettings::default() };
    assert_eq!(often.validate().unwrap_err().key, "heat_interval");
    let none = ServeSettings { heat_max_keys: 0, ..ServeSettings::default() };
    assert_eq!(none.validate().unwrap_err().key, "heat_max_keys");
}

#[test]
fn jitter_only_shortens_the_ttl_and_never_below_its_share() {
    use std::time::Duration;

    use crate::cache::CachePolicy;
    let policy = CachePolicy { ttl: Duration::from_secs(100), grace: Duration::from_secs(7) };
    for _ in 0..1000 {
        let jittered = super::worker::jittered(policy, 0.1);
        assert!(jittered.ttl <= policy.ttl && jittered.ttl >= Duration::from_secs(90), "{jittered:?}");
        assert_eq!(jittered.grace, policy.grace);
    }
    assert_eq!(super::worker::jittered(policy, 0.0), policy);
}

/// Bytes of the future `f` returns, without calling it.
fn returned_size<A, B, R>(_: fn(A, B) -> R) -> usize {
    std::mem::size_of::<R>()
}

#[test]
fn a_request_in_flight_holds_a_small_future_whatever_its_computation_needs() {
    use super::worker::ServeWorker;
    use crate::bus::{Inbound, Worker};
    // The bus keeps up to `max_in_flight` (10,000) of these at once, each allocated, filled
    // and moved per message. The computation's future (SQL reads through sqlx) is the large
    // part, and only a miss needs it: it must not be laid out inside every request's future
    // (in a debug build it was 36,192 bytes with it, 3,760 without; the computation's 8,448).
    let handle = returned_size::<&'static ServeWorker, &'static Inbound, _>(<ServeWorker as Worker>::handle);
    let computation = returned_size(crate::cache::recipe::computation);
    assert!(handle < computation, "the request future ({handle} bytes) holds the computation's ({computation} bytes)");
}
