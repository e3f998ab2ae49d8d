//! API keys in PostgreSQL: hashed, verified, revoked, and managed with `frontier keys`.

use frontier::gateway::keys::Role;
use sqlx::Row;

use super::World;
use super::common::frontier;

#[tokio::test]
async fn a_created_key_verifies_to_its_tenant_and_role() {
    let world = World::new("keyverify").await;
    let created = world.keys.create("acme", Role::Operator, "verify").await.unwrap();
    let identity = world.keys.verify(&created.key).await.unwrap().expect("the key verifies");
    assert_eq!((identity.tenant.as_str(), identity.role), ("acme", Role::Operator));
    assert_eq!(identity.subject, format!("key:{}", created.id));
    world.finish().await;
}

#[tokio::test]
async fn a_wrong_secret_for_a_real_id_is_refused() {
    let world = World::new("keywrong").await;
    let created = world.keys.create("acme", Role::Admin, "wrong").await.unwrap();
    let mut forged = created.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(world.keys.verify(&forged).await.unwrap(), None);
    world.finish().await;
}

#[tokio::test]
async fn only_an_argon2id_hash_of_the_secret_is_stored() {
    let world = World::new("keyhash").await;
    let created = world.keys.create("acme", Role::Viewer, "hash").await.unwrap();
    let secret = created.key.rsplit('_').next().unwrap();
    let row = sqlx::query("SELECT secret_hash FROM api_keys WHERE id = $1")
        .bind(&created.id)
        .fetch_one(world.keys.pool())
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(secret));
    world.finish().await;
}

#[tokio::test]
async fn frontier_keys_creates_lists_and_revokes() {
    let world = World::new("keycli").await;
    let run = |args: &[&str]| {
        let output = frontier()
            .env("FRONTIER_GATEWAY__AUTH__SCHEMA", &world.schema)
            .env("FRONTIER_POSTGRES__URL", &world.settings.postgres.url)
            .args(args)
            .output()
            .expect("frontier runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, created) = run(&["keys", "create", "--tenant", "acme", "--role", "operator", "--name", "cli test"]);
    assert_eq!(code, Some(0), "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert!(world.keys.verify(key).await.unwrap().is_some(), "the printed key works");

    let (_, listed) = run(&["keys", "list", "--json"]);
    assert!(listed.contains(id) && !listed.contains(key), "listed without its secret: {listed}");

    assert_eq!(run(&["keys", "revoke", id]).0, Some(0));
    assert_eq!(world.keys.verify(key).await.unwrap(), None, "a revoked key no longer verifies");
    assert_eq!(run(&["keys", "revoke", id]).0, Some(1), "a key is revoked once");
    world.finish().await;
}
