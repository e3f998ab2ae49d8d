//! API keys in PostgreSQL: hashed, verified, revoked, and managed with `frontier keys`.

use std::time::Duration;

use frontier::gateway::keys::{ApiKeyStore, KeyVerifier, Role};
use sqlx::Row;

use super::common::{START_HINT, create_topics, frontier, unique};

/// A key store in a fresh schema of its own (no topics: these tests need only PostgreSQL).
async fn key_store() -> (ApiKeyStore, String) {
    let schema = format!("test_keys_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    match ApiKeyStore::connect(&super::common::settings().postgres, Some(&schema)).await {
        Ok(store) => (store, schema),
        Err(error) => panic!("PostgreSQL is not usable ({error}): {START_HINT}"),
    }
}

async fn drop_schema(store: &ApiKeyStore, schema: &str) {
    let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(store.pool()).await.expect("test schema dropped");
}

/// Sets or clears `revoked_at` behind the store's back, as another process would.
async fn set_revoked(store: &ApiKeyStore, id: &str, revoked: bool) {
    let statement = if revoked {
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1"
    } else {
        "UPDATE api_keys SET revoked_at = NULL WHERE id = $1"
    };
    sqlx::query(statement).bind(id).execute(store.pool()).await.expect("key row updated");
}

#[tokio::test]
async fn a_created_key_verifies_to_its_tenant_and_role() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Operator, "verify").await.unwrap();
    let identity = store.verify(&created.key).await.unwrap().expect("the key verifies");
    assert_eq!((identity.tenant.as_str(), identity.role), ("acme", Role::Operator));
    assert_eq!(identity.subject, format!("key:{}", created.id));
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_wrong_secret_for_a_real_id_is_refused() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Admin, "wrong").await.unwrap();
    let mut forged = created.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(store.verify(&forged).await.unwrap(), None);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn only_an_argon2id_hash_of_the_secret_is_stored() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Viewer, "hash").await.unwrap();
    // `frk_<id>_<secret>`: the id is hex, the secret 32 bytes in base64url, which may hold `_`
    // itself (its tail after the last one can be a few characters any hash might contain).
    let (_, secret) = created.key.strip_prefix("frk_").unwrap().split_once('_').unwrap();
    assert_eq!(secret.len(), 43, "{secret}");
    let row = sqlx::query("SELECT secret_hash FROM api_keys WHERE id = $1")
        .bind(&created.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(secret));
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn frontier_keys_creates_lists_and_revokes() {
    let (store, schema) = key_store().await;
    let settings = super::common::settings();
    // Changes are audited: to a topic and a table of this test's own.
    let audit_topic = unique("audit");
    create_topics(&settings, &[&audit_topic], 1).await;
    let run = |args: &[&str]| {
        let output = frontier()
            .env("FRONTIER_GATEWAY__AUTH__SCHEMA", &schema)
            .env("FRONTIER_AUDIT__SCHEMA", &schema)
            .env("FRONTIER_AUDIT__TOPIC", &audit_topic)
            .env("FRONTIER_POSTGRES__URL", &settings.postgres.url)
            .args(args)
            .output()
            .expect("frontier runs");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };
    let (code, created, warning) =
        run(&["keys", "create", "--tenant", "acme", "--role", "operator", "--name", "cli test"]);
    assert_eq!(code, Some(0), "{created}{warning}");
    assert!(warning.contains("cannot be shown again"), "{warning}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        (&created["tenant"], &created["role"], &created["name"]),
        (&"acme".into(), &"operator".into(), &"cli test".into())
    );
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert!(store.verify(key).await.unwrap().is_some(), "the printed key works");

    let (_, listed, _) = run(&["keys", "list", "--json"]);
    assert!(listed.contains(id) && !listed.contains(key), "listed without its secret: {listed}");
    let (_, table, _) = run(&["keys", "list"]);
    let line = table.lines().find(|line| line.starts_with(id)).unwrap_or_else(|| panic!("{id} in {table}"));
    assert!(line.contains("acme") && line.contains("operator") && line.ends_with("cli test"), "{line}");

    assert_eq!(run(&["keys", "revoke", id]).0, Some(0));
    assert_eq!(store.verify(key).await.unwrap(), None, "a revoked key no longer verifies");
    let (code, _, message) = run(&["keys", "revoke", id]);
    assert_eq!(code, Some(1), "a key is revoked once");
    assert!(message.contains(id), "{message}");
    let (_, listed, _) = run(&["keys", "list", "--json"]);
    let row: serde_json::Value = serde_json::from_str(listed.lines().find(|line| line.contains(id)).unwrap()).unwrap();
    assert!(row["revoked_at"].is_string(), "{row}");
    drop_schema(&store, &schema).await;
}

#[test]
fn frontier_keys_refuses_a_role_it_does_not_know() {
    let output =
        frontier().args(["keys", "create", "--tenant", "acme", "--role", "root", "--name", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error, before any connection");
    assert!(String::from_utf8_lossy(&output.stderr).contains("viewer"), "the roles are listed");
}

#[test]
fn frontier_keys_says_how_to_start_postgresql_when_it_is_down() {
    let output = frontier()
        .env("FRONTIER_POSTGRES__URL", "postgres://frontier:secret@127.0.0.1:1/frontier")
        .args(["keys", "list"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("ops/stack up") && !message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Operator, "revoked").await.unwrap();
    assert!(store.revoke(&created.id).await.unwrap().is_some(), "a live key is revoked");
    assert_eq!(store.verify(&created.key).await.unwrap(), None);
    assert!(store.revoke(&created.id).await.unwrap().is_none(), "revoking twice revokes nothing");
    let listed = store.list().await.unwrap();
    let row = listed.iter().find(|key| key.id == created.id).expect("a revoked key is still listed");
    assert!(row.revoked_at.is_some(), "{row:?}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn the_verifier_answers_a_key_it_verified_from_memory() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Viewer, "remembered").await.unwrap();
    let verifier = KeyVerifier::new(store.clone(), Duration::from_secs(600), 100);
    let first = verifier.verify(&created.key).await.unwrap().expect("the key verifies");
    // Without its row the store can no longer verify the key: only memory can.
    sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(&created.id).execute(store.pool()).await.unwrap();
    assert_eq!(store.verify(&created.key).await.unwrap(), None);
    assert_eq!(verifier.verify(&created.key).await.unwrap(), Some(first));
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn the_verifier_remembers_a_refusal_of_a_well_formed_key() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Admin, "refused").await.unwrap();
    set_revoked(&store, &created.id, true).await;
    let verifier = KeyVerifier::new(store.clone(), Duration::from_secs(600), 100);
    assert_eq!(verifier.verify(&created.key).await.unwrap(), None);
    set_revoked(&store, &created.id, false).await;
    assert!(store.verify(&created.key).await.unwrap().is_some(), "the key is live again in the store");
    assert_eq!(verifier.verify(&created.key).await.unwrap(), None, "the refusal is answered from memory");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_once_the_verifier_ttl_has_passed() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Operator, "ttl").await.unwrap();
    let ttl = Duration::from_millis(200);
    let verifier = KeyVerifier::new(store.clone(), ttl, 100);
    assert!(verifier.verify(&created.key).await.unwrap().is_some());
    assert!(store.revoke(&created.id).await.unwrap().is_some());
    tokio::time::sleep(ttl * 5).await;
    assert_eq!(verifier.verify(&created.key).await.unwrap(), None);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn concurrent_presentations_of_one_key_agree() {
    let (store, schema) = key_store().await;
    let created = store.create("acme", Role::Viewer, "concurrent").await.unwrap();
    let verifier = KeyVerifier::new(store.clone(), Duration::from_secs(600), 100);
    let answers = futures::future::join_all((0..16).map(|_| verifier.verify(&created.key))).await;
    for answer in answers {
        assert_eq!(answer.unwrap().map(|identity| identity.subject), Some(format!("key:{}", created.id)));
    }
    drop_schema(&store, &schema).await;
}
