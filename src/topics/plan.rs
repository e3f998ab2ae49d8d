//! The difference between the topic files and the cluster, and applying it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::TopicsError;
use super::spec::TopicSpec;

/// A topic as it exists on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTopic {
    pub partitions: i32,
    pub replication_factor: i32,
    /// Every config the broker reports for the topic (explicit or default).
    pub configs: BTreeMap<String, String>,
}

/// One config value that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    pub key: String,
    pub current: Option<String>,
    pub desired: String,
}

/// One step from the cluster towards the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(TopicSpec),
    AddPartitions {
        topic: String,
        from: i32,
        to: i32,
    },
    /// `desired` is the whole managed set, which is what Kafka's AlterConfigs writes.
    AlterConfigs {
        topic: String,
        diffs: Vec<ConfigDiff>,
        desired: BTreeMap<String, String>,
    },
    /// Something the files ask for that Kafka cannot do in place.
    Refused {
        topic: String,
        reason: String,
    },
}

/// Every change needed, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// True when the cluster already matches the files.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes that cannot be applied.
    pub fn refused(&self) -> Vec<&Change> {
        self.changes.iter().filter(|c| matches!(c, Change::Refused { .. })).collect()
    }

    /// Each refused change as `<topic>: <reason>`.
    pub fn refusals(&self) -> Vec<String> {
        self.changes
            .iter()
            .filter_map(|change| match change {
                Change::Refused { topic, reason } => Some(format!("{topic}: {reason}")),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "no changes: the cluster matches the topic files");
        }
        for change in &self.changes {
            match change {
                Change::Create(spec) => writeln!(
                    f,
                    "+ create {} (partitions {}, replication {}, {})",
                    spec.name,
                    spec.partitions,
                    spec.replication_factor,
                    spec.desired_configs().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
                )?,
                Change::AddPartitions { topic, from, to } => writeln!(f, "~ {topic}: partitions {from} -> {to}")?,
                Change::AlterConfigs { topic, diffs, .. } => {
                    for d in diffs {
                        writeln!(
                            f,
                            "~ {topic}: {} {} -> {}",
                            d.key,
                            d.current.as_deref().unwrap_or("(unset)"),
                            d.desired
                        )?;
                    }
                }
                Change::Refused { topic, reason } => writeln!(f, "! {topic}: refused: {reason}")?,
            }
        }
        let refused = self.refused().len();
        writeln!(f, "{} change(s), {refused} refused", self.changes.len() - refused)
    }
}

/// Compares the specs with the cluster's state.
pub fn plan(specs: &[TopicSpec], cluster: &HashMap<String, ClusterTopic>) -> Plan {
    let mut changes = Vec::new();
    for spec in specs {
        let Some(current) = cluster.get(&spec.name) else {
            changes.push(Change::Create(spec.clone()));
            continue;
        };
        if spec.partitions < current.partitions {
            changes.push(Change::Refused {
                topic: spec.name.clone(),
                reason: format!(
                    "partitions {} -> {}: Kafka cannot remove partitions (it would lose their data and move keys); \
                     keep {} or create a new topic",
                    current.partitions, spec.partitions, current.partitions
                ),
            });
        } else if spec.partitions > current.partitions {
            changes.push(Change::AddPartitions {
                topic: spec.name.clone(),
                from: current.partitions,
                to: spec.partitions,
            });
        }
        if spec.replication_factor != current.replication_factor {
            changes.push(Change::Refused {
                topic: spec.name.clone(),
                reason: format!(
                    "replication factor {} -> {}: changing it needs a partition reassignment \
                     (kafka-reassign-partitions), which this tool does not do",
                    current.replication_factor, spec.replication_factor
                ),
            });
        }
        let desired = spec.desired_configs();
        let diffs: Vec<ConfigDiff> = desired
            .iter()
            .filter(|(key, value)| current.configs.get(*key) != Some(*value))
            .map(|(key, value)| ConfigDiff {
                key: key.clone(),
                current: current.configs.get(key).cloned(),
                desired: value.clone(),
            })
            .collect();
        if !diffs.is_empty() {
            changes.push(Change::AlterConfigs { topic: spec.name.clone(), diffs, desired });
        }
    }
    Plan { changes }
}

/// Reads the state of the named topics from the cluster; absent topics are left out.
pub async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    timeout: Duration,
) -> Result<HashMap<String, ClusterTopic>, TopicsError> {
    // A short blocking metadata call; the CLI and tests can afford it on their thread.
    let metadata = admin.inner().fetch_metadata(None, timeout).map_err(TopicsError::Kafka)?;
    let mut found: HashMap<String, ClusterTopic> = HashMap::new();
    for topic in metadata.topics() {
        if names.contains(&topic.name()) && topic.error().is_none() {
            let replication_factor = topic.partitions().first().map(|p| p.replicas().len() as i32).unwrap_or(0);
            found.insert(
                topic.name().to_string(),
                ClusterTopic {
                    partitions: topic.partitions().len() as i32,
                    replication_factor,
                    configs: BTreeMap::new(),
                },
            );
        }
    }
    if found.is_empty() {
        return Ok(found);
    }
    let resources: Vec<ResourceSpecifier<'_>> = found.keys().map(|name| ResourceSpecifier::Topic(name)).collect();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let described = admin.describe_configs(&resources, &options).await.map_err(TopicsError::Kafka)?;
    let mut configs_by_topic = Vec::new();
    for result in described {
        let resource = result.map_err(|code| TopicsError::Broker {
            topic: "(describe)".into(),
            action: "describe configs of",
            code,
        })?;
        if let OwnedResourceSpecifier::Topic(name) = resource.specifier {
            let configs: BTreeMap<String, String> =
                resource.entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect();
            configs_by_topic.push((name, configs));
        }
    }
    for (name, configs) in configs_by_topic {
        if let Some(topic) = found.get_mut(&name) {
            topic.configs = configs;
        }
    }
    Ok(found)
}

/// Applies a plan, then waits until the cluster's metadata shows it. Refuses the whole plan if
/// any change is refused, so a half-applied state never results from a bad file.
pub async fn apply(
    admin: &AdminClient<DefaultClientContext>,
    plan: &Plan,
    timeout: Duration,
) -> Result<(), TopicsError> {
    let refused = plan.refusals();
    if !refused.is_empty() {
        return Err(TopicsError::Refused(refused));
    }
    let options = AdminOptions::new().request_timeout(Some(timeout)).operation_timeout(Some(timeout));

    let creates: Vec<(&TopicSpec, BTreeMap<String, String>)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Create(spec) => Some((spec, spec.desired_configs())),
            _ => None,
        })
        .collect();
    if !creates.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = creates
            .iter()
            .map(|(spec, configs)| {
                configs.iter().fold(
                    NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication_factor)),
                    |topic, (k, v)| topic.set(k, v),
                )
            })
            .collect();
        for result in admin.create_topics(&new_topics, &options).await.map_err(TopicsError::Kafka)? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(TopicsError::Broker { topic, action: "create", code }),
            }
        }
    }

    let grows: Vec<NewPartitions<'_>> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::AddPartitions { topic, to, .. } => Some(NewPartitions::new(topic, *to as usize)),
            _ => None,
        })
        .collect();
    if !grows.is_empty() {
        for result in admin.create_partitions(&grows, &options).await.map_err(TopicsError::Kafka)? {
            if let Err((topic, code)) = result {
                return Err(TopicsError::Broker { topic, action: "add partitions to", code });
            }
        }
    }

    let alters: Vec<AlterConfig<'_>> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::AlterConfigs { topic, desired, .. } => Some(
                desired.iter().fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |alter, (k, v)| alter.set(k, v)),
            ),
            _ => None,
        })
        .collect();
    if !alters.is_empty() {
        for result in admin.alter_configs(&alters, &options).await.map_err(TopicsError::Kafka)? {
            if let Err((resource, code)) = result {
                let topic = match resource {
                    OwnedResourceSpecifier::Topic(name) => name,
                    other => format!("{other:?}"),
                };
                return Err(TopicsError::Broker { topic, action: "alter configs of", code });
            }
        }
    }
    wait_for_metadata(admin, plan, timeout).await
}

/// Polls metadata until every created or grown topic shows its partitions, so a command run
/// right after `apply` sees the new state.
async fn wait_for_metadata(
    admin: &AdminClient<DefaultClientContext>,
    plan: &Plan,
    timeout: Duration,
) -> Result<(), TopicsError> {
    let expected: Vec<(&str, i32)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Create(spec) => Some((spec.name.as_str(), spec.partitions)),
            Change::AddPartitions { topic, to, .. } => Some((topic.as_str(), *to)),
            _ => None,
        })
        .collect();
    let started = Instant::now();
    loop {
        let metadata = admin.inner().fetch_metadata(None, timeout).map_err(TopicsError::Kafka)?;
        let ready = expected.iter().all(|(name, partitions)| {
            metadata
                .topics()
                .iter()
                .any(|t| t.name() == *name && t.error().is_none() && t.partitions().len() as i32 == *partitions)
        });
        if ready {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(TopicsError::NotVisible(expected.iter().map(|(n, _)| n.to_string()).collect()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(partitions: i32) -> TopicSpec {
        TopicSpec {
            name: "t".into(),
            value_schema: None,
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention_ms: 1000,
            cleanup_policy: "delete".into(),
            configs: BTreeMap::new(),
        }
    }

    fn cluster(partitions: i32, retention: &str) -> HashMap<String, ClusterTopic> {
        let configs = [("retention.ms", retention), ("cleanup.policy", "delete"), ("min.insync.replicas", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HashMap::from([("t".to_string(), ClusterTopic { partitions, replication_factor: 1, configs })])
    }

    #[test]
    fn missing_topic_is_created() {
        assert_eq!(plan(&[spec(3)], &HashMap::new()).changes, vec![Change::Create(spec(3))]);
    }

    #[test]
    fn matching_topic_needs_nothing() {
        assert!(plan(&[spec(3)], &cluster(3, "1000")).is_empty());
    }

    #[test]
    fn partitions_only_grow() {
        assert_eq!(
            plan(&[spec(6)], &cluster(3, "1000")).changes,
            vec![Change::AddPartitions { topic: "t".into(), from: 3, to: 6 }]
        );
        let shrink = plan(&[spec(2)], &cluster(3, "1000"));
        assert_eq!(shrink.refused().len(), 1);
        assert!(shrink.to_string().contains("cannot remove partitions"), "{shrink}");
    }

    #[test]
    fn config_drift_is_altered() {
        let drift = plan(&[spec(3)], &cluster(3, "5"));
        assert!(matches!(&drift.changes[..], [Change::AlterConfigs { diffs, .. }] if diffs[0].key == "retention.ms"));
    }
}
