//! Topic definitions: one TOML file per topic in `topics/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TopicsError;
use crate::config::TopicOverrides;

/// What a topic should look like on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Schema file (in the schemas folder) of the values; absent for raw-bytes topics (the DLQ).
    #[serde(default)]
    pub value_schema: Option<String>,
    /// Partition count; it can only ever grow.
    pub partitions: i32,
    /// Copies of each partition.
    pub replication_factor: i32,
    /// Replicas that must acknowledge a write with `acks=all`.
    pub min_insync_replicas: i32,
    /// How long records are kept, in milliseconds (-1: forever).
    pub retention_ms: i64,
    /// `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
    /// Any other topic config, as Kafka names it.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// Topic configs the spec manages through its own fields.
const FIELD_CONFIGS: &[&str] = &["retention.ms", "cleanup.policy", "min.insync.replicas"];

impl TopicSpec {
    /// Every topic config this spec pins, as Kafka names them.
    pub fn desired_configs(&self) -> BTreeMap<String, String> {
        let mut configs = self.configs.clone();
        configs.insert("retention.ms".into(), self.retention_ms.to_string());
        configs.insert("cleanup.policy".into(), self.cleanup_policy.clone());
        configs.insert("min.insync.replicas".into(), self.min_insync_replicas.to_string());
        configs
    }

    /// A short-lived topic for tests and benchmarks: one replica, an hour of retention.
    pub fn scratch(name: &str, partitions: i32) -> Self {
        TopicSpec {
            name: name.to_string(),
            value_schema: None,
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention_ms: 3_600_000,
            cleanup_policy: "delete".into(),
            configs: BTreeMap::new(),
        }
    }

    fn validate(&self, file: &Path) -> Result<(), TopicsError> {
        let invalid = |message: String| TopicsError::InvalidSpec { file: file.to_path_buf(), message };
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.name.is_empty() || self.name.len() > 249 || !self.name.chars().all(legal) {
            return Err(invalid(format!("`{}` is not a legal topic name", self.name)));
        }
        if self.partitions < 1 {
            return Err(invalid(format!("partitions must be at least 1, not {}", self.partitions)));
        }
        if self.replication_factor < 1 {
            return Err(invalid(format!("replication_factor must be at least 1, not {}", self.replication_factor)));
        }
        if self.min_insync_replicas < 1 || self.min_insync_replicas > self.replication_factor {
            return Err(invalid(format!(
                "min_insync_replicas must be between 1 and replication_factor ({}), not {}",
                self.replication_factor, self.min_insync_replicas
            )));
        }
        if !matches!(self.cleanup_policy.as_str(), "delete" | "compact" | "compact,delete" | "delete,compact") {
            return Err(invalid(format!(
                "cleanup_policy `{}` is not delete, compact or compact,delete",
                self.cleanup_policy
            )));
        }
        if let Some(key) = self.configs.keys().find(|k| FIELD_CONFIGS.contains(&k.as_str())) {
            return Err(invalid(format!("set `{key}` through its own field, not [configs]")));
        }
        Ok(())
    }
}

/// Loads every `*.toml` in `dir`, applying the environment's overrides.
pub fn load_dir(dir: &Path, overrides: &TopicOverrides) -> Result<Vec<TopicSpec>, TopicsError> {
    let io = |path: PathBuf| move |source| TopicsError::Io { path, source };
    let mut specs: Vec<TopicSpec> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir.to_path_buf()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io(file.clone()))?;
        let mut spec: TopicSpec = toml::from_str(&text)
            .map_err(|e| TopicsError::InvalidSpec { file: file.clone(), message: e.to_string() })?;
        if let Some(rf) = overrides.replication_factor {
            spec.replication_factor = rf;
        }
        if let Some(isr) = overrides.min_insync_replicas {
            spec.min_insync_replicas = isr;
        }
        spec.validate(&file)?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(TopicsError::InvalidSpec { file, message: format!("topic `{}` is defined twice", spec.name) });
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(TopicsError::InvalidSpec {
            file: dir.to_path_buf(),
            message: "no topic files (*.toml) found".into(),
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<TopicSpec, TopicsError> {
        let spec: TopicSpec =
            toml::from_str(text).map_err(|e| TopicsError::InvalidSpec { file: "t".into(), message: e.to_string() })?;
        spec.validate(Path::new("t.toml"))?;
        Ok(spec)
    }

    const GOOD: &str = r#"
        name = "a.b"
        partitions = 3
        replication_factor = 3
        min_insync_replicas = 2
        retention_ms = 1000
        cleanup_policy = "delete"
    "#;

    #[test]
    fn desired_configs_include_the_field_configs() {
        let configs = spec(GOOD).unwrap().desired_configs();
        assert_eq!(configs["retention.ms"], "1000");
        assert_eq!(configs["cleanup.policy"], "delete");
        assert_eq!(configs["min.insync.replicas"], "2");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = spec(&format!("{GOOD}\nretention = 5")).unwrap_err();
        assert!(err.to_string().contains("unknown field `retention`"), "{err}");
    }

    #[test]
    fn min_isr_above_replication_is_refused() {
        let err = spec(&GOOD.replace("min_insync_replicas = 2", "min_insync_replicas = 4")).unwrap_err();
        assert!(err.to_string().contains("min_insync_replicas"), "{err}");
    }
}
