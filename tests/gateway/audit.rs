//! The audit trail: changes made with `frontier keys` are on `frontier.audit` and in
//! `audit_log`, secrets masked, and `frontier audit` shows them.

use std::collections::BTreeMap;
use std::time::Duration;

use frontier::audit::{AuditFilter, AuditTrail, MASK, event};
use frontier::records::AuditOutcome;

use super::World;
use super::common::{catalog, create_topics, decoded_json, frontier, read_topic, unique};

async fn trail(world: &World, topic: &str) -> AuditTrail {
    let mut settings = world.settings.audit.clone();
    settings.topic = topic.to_owned();
    settings.schema = Some(world.schema.clone());
    AuditTrail::connect(&world.settings.kafka, &world.settings.postgres, &settings, catalog()).await.unwrap()
}

#[tokio::test]
async fn an_event_is_on_the_topic_and_in_the_table_with_secrets_masked() {
    let world = World::new("auditrecord").await;
    let topic = unique("audit");
    create_topics(&world.settings, &[&topic], 1).await;
    let trail = trail(&world, &topic).await;
    let parameters =
        BTreeMap::from([("password".to_owned(), "hunter2".to_owned()), ("role".to_owned(), "viewer".to_owned())]);
    let mut recorded = event("key:0123456789ab", "admin", "keys.create", parameters, AuditOutcome::Ok, "gateway");
    recorded.tenant = Some("acme".into());
    trail.record(&recorded).await.unwrap();

    let on_topic = decoded_json(&catalog(), &read_topic(&world.settings, &topic, 1, Duration::from_secs(30)));
    assert_eq!(on_topic[0]["id"], recorded.id.as_str());
    assert_eq!(on_topic[0]["parameters"]["password"], MASK);
    let filter = AuditFilter { tenant: Some("acme".into()), action: None, limit: 10 };
    let stored = trail.recent(&filter).await.unwrap();
    assert_eq!(stored, vec![recorded]);
    world.finish().await;
}

#[tokio::test]
async fn frontier_keys_changes_are_audited_and_shown_by_frontier_audit() {
    let world = World::new("auditkeys").await;
    let topic = unique("audit");
    create_topics(&world.settings, &[&topic], 1).await;
    let run = |args: &[&str]| {
        let output = frontier()
            .env("FRONTIER_GATEWAY__AUTH__SCHEMA", &world.schema)
            .env("FRONTIER_AUDIT__SCHEMA", &world.schema)
            .env("FRONTIER_AUDIT__TOPIC", &topic)
            .env("FRONTIER_POSTGRES__URL", &world.settings.postgres.url)
            .args(args)
            .output()
            .expect("frontier runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, created) = run(&["keys", "create", "--tenant", "acme", "--role", "viewer", "--name", "audited"]);
    assert_eq!(code, Some(0), "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!(run(&["keys", "revoke", id]).0, Some(0));
    assert_eq!(run(&["keys", "revoke", "ffffffffffff"]).0, Some(1));

    let (code, shown) = run(&["audit", "--json", "--limit", "10"]);
    assert_eq!(code, Some(0));
    let events: Vec<serde_json::Value> = shown.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let actions: Vec<(&str, &str)> =
        events.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(actions, [("keys.revoke", "refused"), ("keys.revoke", "ok"), ("keys.create", "ok")], "newest first");
    assert_eq!(events[2]["target"], id);
    assert_eq!(events[2]["tenant"], "acme");
    assert!(events[2]["actor"].as_str().unwrap().starts_with("cli:"));
    assert!(!shown.contains(key), "the key's secret is never audited");
    let on_topic = read_topic(&world.settings, &topic, 3, Duration::from_secs(30));
    assert_eq!(on_topic.len(), 3, "every change is on the audit topic too");
    world.finish().await;
}
