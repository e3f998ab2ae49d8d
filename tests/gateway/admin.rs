//! Admin routes: batch settings change through the gateway (operator role), reach every running
//! inference batcher through the control topic, are read back by a batcher that starts later,
//! and every change, made or refused, is on the audit trail.

use std::time::{Duration, Instant};

use frontier::audit::{AuditFilter, AuditTrail};
use frontier::gateway::keys::Role;
use frontier::workers::inference_batcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::common::{catalog, model_server::free_port};
use super::{MODEL, PATIENCE, World, json_of};

/// The configured batch size of [`MODEL`] (the default settings').
const CONFIGURED_BATCH: u64 = 64;

impl World {
    /// Starts an inference batcher the way `frontier run inference-batcher` does; returns the
    /// URL of its (read-only, loopback) admin endpoint once it answers.
    async fn batcher(&mut self) -> String {
        let mut settings = self.settings.workers.inference.clone();
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        settings.admin_listen = Some(listen);
        settings.group_id = Some(format!("{}.batchers", settings.input_topic));
        let token = CancellationToken::new();
        self.stops.push(token.clone());
        let shared = self.settings.shared();
        tokio::spawn(async move {
            inference_batcher::run(&shared, &settings, catalog(), token).await.expect("the batcher runs");
        });
        let url = format!("http://{listen}/admin/batching");
        let started = Instant::now();
        while self.http.get(&url).send().await.is_err() {
            assert!(started.elapsed() < PATIENCE, "the batcher's admin endpoint did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        url
    }

    async fn put(&self, base: &str, path: &str, key: &str, body: Value) -> reqwest::Response {
        let request = self.http.put(format!("{base}{path}")).bearer_auth(key).json(&body);
        request.send().await.expect("the gateway answers")
    }

    async fn trail(&self) -> AuditTrail {
        let trail = AuditTrail::connect(&self.settings.kafka, &self.settings.postgres, &self.settings.audit, catalog());
        trail.await.expect("the audit trail opens")
    }
}

/// The batch size a batcher's admin endpoint shows for [`MODEL`].
async fn batch_size(http: &reqwest::Client, admin: &str) -> u64 {
    let shown: Value = http.get(admin).send().await.unwrap().json().await.unwrap();
    shown[MODEL]["max_batch_size"].as_u64().unwrap()
}

/// Waits until the batcher at `admin` batches [`MODEL`] by `size`.
async fn await_batch_size(http: &reqwest::Client, admin: &str, size: u64) {
    let started = Instant::now();
    loop {
        let shown = batch_size(http, admin).await;
        if shown == size {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "the batcher still batches by {shown}, not {size}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_change_reaches_running_and_starting_batchers_and_a_reset_undoes_it() {
    let mut world = World::new("adminbatching").await;
    let gateway = world.gateway(|_| {}).await;
    let running = world.batcher().await;
    let operator = world.key("acme", Role::Operator).await;
    assert_eq!(batch_size(&world.http, &running).await, CONFIGURED_BATCH);

    let change = json!({"max_batch_size": 8, "preferred_batch_sizes": [8]});
    let answer = world.put(&gateway, &format!("/v1/admin/batching/{MODEL}"), &operator, change).await;
    assert_eq!(answer.status(), 200);
    let body = json_of(answer).await;
    assert_eq!(body["settings"]["max_batch_size"], 8);
    await_batch_size(&world.http, &running, 8).await;

    let started_later = world.batcher().await;
    assert_eq!(batch_size(&world.http, &started_later).await, 8, "a batcher starting later reads the change first");
    let listed = json_of(world.get(&gateway, "/v1/admin/batching", &operator).await).await;
    assert_eq!(listed["overrides"][MODEL]["settings"]["max_batch_size"], 8);
    assert!(listed["overrides"][MODEL]["changed_by"].as_str().unwrap().starts_with("key:"));

    let reset = world.http.delete(format!("{gateway}/v1/admin/batching/{MODEL}")).bearer_auth(&operator);
    assert_eq!(reset.send().await.unwrap().status(), 200);
    await_batch_size(&world.http, &running, CONFIGURED_BATCH).await;
    await_batch_size(&world.http, &started_later, CONFIGURED_BATCH).await;

    let filter = AuditFilter { tenant: Some("acme".into()), action: None, limit: 10 };
    let audited = world.trail().await.recent(&filter).await.unwrap();
    let actions: Vec<(&str, &str)> = audited.iter().map(|e| (e.action.as_str(), e.outcome.as_str())).collect();
    assert_eq!(actions, [("batching.reset", "ok"), ("batching.update", "ok")], "newest first");
    assert_eq!(audited[1].parameters["max_batch_size"], "8");
    assert_eq!((audited[1].role.as_str(), audited[1].target.as_deref()), ("operator", Some(MODEL)));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batching_changes_answer_why_change_nothing_and_are_audited() {
    let mut world = World::new("adminrefused").await;
    let gateway = world.gateway(|_| {}).await;
    let running = world.batcher().await;
    let (viewer, operator) = (world.key("acme", Role::Viewer).await, world.key("acme", Role::Operator).await);
    let path = format!("/v1/admin/batching/{MODEL}");

    let forbidden = world.put(&gateway, &path, &viewer, json!({"max_batch_size": 8})).await;
    assert_eq!(forbidden.status(), 403, "a viewer may not change batching");
    let invalid = world.put(&gateway, &path, &operator, json!({"max_batch_size": 0})).await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(json_of(invalid).await["error"]["field"], "max_batch_size");
    let too_small = world.put(&gateway, &path, &operator, json!({"max_batch_size": 4})).await;
    assert_eq!(json_of(too_small).await["error"]["field"], "preferred_batch_sizes", "checked over the configuration");
    let unknown = world.put(&gateway, "/v1/admin/batching/gpt-9", &operator, json!({"max_batch_size": 8})).await;
    assert_eq!(unknown.status(), 404);

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(batch_size(&world.http, &running).await, CONFIGURED_BATCH, "nothing changed");
    let filter = AuditFilter { tenant: Some("acme".into()), action: Some("batching.update".into()), limit: 10 };
    let audited = world.trail().await.recent(&filter).await.unwrap();
    assert_eq!(audited.len(), 4, "every refusal is audited, the 403 too: {audited:?}");
    assert!(audited.iter().all(|e| e.outcome.as_str() == "refused" && e.detail.is_some()), "{audited:?}");
    assert_eq!(audited[3].role, "viewer", "the oldest, the viewer's attempt, names its role");
    world.finish().await;
}
