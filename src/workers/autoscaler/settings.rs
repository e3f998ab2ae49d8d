//! `[workers.autoscaler]`: how often groups are sampled and decided, and the policy of each
//! group it sizes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::autoscale::PolicySettings;
use crate::config::{InvalidSetting, topic_named};
use crate::workers::WorkerConfig;

/// `[workers.autoscaler]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscalerSettings {
    /// Consumer group id; defaults to `<group_prefix>.autoscaler`.
    pub group_id: Option<String>,
    /// How often every group is sampled and decided. KEDA polls every 30 s; a backlog should
    /// be acted on within seconds.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Samples a group's partition health is judged over (Burrow judges its last 10 commits).
    pub window_samples: usize,
    /// Longest the broker calls of one group's sample may take.
    #[serde(with = "humantime_serde")]
    pub sample_timeout: Duration,
    /// Topic every decision goes to, holds included.
    pub decisions_topic: String,
    /// The groups sized, by worker name (`serve`, `inference-batcher`, ...), each with its
    /// policy (`[workers.autoscaler.groups.serve]`; an empty table takes every default). None
    /// by default: the controller starts processes, so which workers it runs is a choice made
    /// in the configuration, never a surprise.
    pub groups: BTreeMap<String, PolicySettings>,
    /// What starts and stops instances: `local` processes on this machine, or the
    /// `kubernetes` Deployments of a cluster.
    pub actuator: ActuatorKind,
    /// The local process actuator: how instances run on this machine.
    pub local: LocalActuatorSettings,
    /// The Kubernetes actuator: which Deployments run the workers.
    pub kubernetes: KubernetesActuatorSettings,
}

/// `[workers.autoscaler] actuator`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActuatorKind {
    /// `frontier run <worker>` processes started by the controller ([`LocalActuatorSettings`]).
    #[default]
    Local,
    /// A Deployment per worker whose scale the controller patches
    /// ([`KubernetesActuatorSettings`], manifests in `ops/k8s/`).
    Kubernetes,
}

/// `[workers.autoscaler.kubernetes]`: each sized worker runs as the Deployment
/// `<deployment_prefix><worker>` in `namespace`. The client configuration is the usual one:
/// `KUBECONFIG` or `~/.kube/config`, else the pod's ServiceAccount in a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesActuatorSettings {
    /// The Deployments' namespace; unset, the client configuration's (in a pod, its own).
    pub namespace: Option<String>,
    /// The Deployment of worker `serve` is `<deployment_prefix>serve` (ops/k8s/ names them
    /// `frontier-<worker>`).
    pub deployment_prefix: String,
    /// Longest one API request (read or patch of a scale) may take; a slower API server is
    /// an error for that tick and the group holds.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The `fieldManager` the scale patches name (the API server's audit log shows it).
    pub field_manager: String,
}

impl Default for KubernetesActuatorSettings {
    fn default() -> Self {
        KubernetesActuatorSettings {
            namespace: None,
            deployment_prefix: "frontier-".into(),
            request_timeout: Duration::from_secs(10),
            field_manager: "frontier-autoscaler".into(),
        }
    }
}

/// `[workers.autoscaler.local]`: instances as `frontier run <worker>` processes here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalActuatorSettings {
    /// Folder of the instance records (adopted by a restarted controller), their logs, and the
    /// Prometheus file-discovery targets (`prometheus/<worker>.json`).
    pub state_dir: PathBuf,
    /// Metrics ports are taken from here up (127.0.0.1:9464-9474 are the hand-started
    /// workers' in `ops/prometheus/local.yml`).
    pub first_metrics_port: u16,
    /// The address the instances' metrics listen on (`0.0.0.0` in a container, so Prometheus
    /// in another one reaches them).
    pub metrics_host: String,
    /// The host name written to the Prometheus targets (the container's name in Compose).
    pub advertised_host: String,
    /// After SIGTERM, how long an instance may drain before SIGKILL.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// An instance that exits sooner after its start failed to start.
    #[serde(with = "humantime_serde")]
    pub min_uptime: Duration,
    /// Wait before starting a worker again after its first failed start; doubles with each
    /// further one.
    #[serde(with = "humantime_serde")]
    pub restart_backoff: Duration,
    /// The longest that wait grows.
    #[serde(with = "humantime_serde")]
    pub max_restart_backoff: Duration,
}

impl Default for LocalActuatorSettings {
    fn default() -> Self {
        LocalActuatorSettings {
            state_dir: PathBuf::from(".stack/autoscaler"),
            first_metrics_port: 9475,
            metrics_host: "127.0.0.1".into(),
            advertised_host: "127.0.0.1".into(),
            stop_timeout: Duration::from_secs(30),
            min_uptime: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(2),
            max_restart_backoff: Duration::from_secs(60),
        }
    }
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        AutoscalerSettings {
            group_id: None,
            interval: Duration::from_secs(5),
            window_samples: 10,
            sample_timeout: Duration::from_secs(5),
            decisions_topic: "frontier.autoscale.decisions".into(),
            groups: BTreeMap::new(),
            actuator: ActuatorKind::Local,
            local: LocalActuatorSettings::default(),
            kubernetes: KubernetesActuatorSettings::default(),
        }
    }
}

impl WorkerConfig for AutoscalerSettings {
    const SECTION: &'static str = "autoscaler";
    const NAME: &'static str = "autoscaler";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        // It reads `bus.status_topic`, which is not its own setting (see `autoscaler::run`);
        // nobody sizes the autoscaler, so nothing needs it here.
        Vec::new()
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.interval < Duration::from_secs(1) {
            return Err(InvalidSetting::new("interval", "must be at least 1s"));
        }
        if self.window_samples < 2 {
            return Err(InvalidSetting::new("window_samples", "must be at least 2 (rates need two samples)"));
        }
        if self.sample_timeout.is_zero() {
            return Err(InvalidSetting::new("sample_timeout", "must be longer than 0s"));
        }
        topic_named("decisions_topic", &self.decisions_topic)?;
        if self.groups.contains_key(Self::NAME) {
            return Err(InvalidSetting::new("groups.autoscaler", "the autoscaler does not size itself"));
        }
        if self.local.metrics_host.parse::<std::net::IpAddr>().is_err() {
            return Err(InvalidSetting::new("local.metrics_host", "must be an IP address (127.0.0.1, 0.0.0.0)"));
        }
        if self.local.advertised_host.trim().is_empty() {
            return Err(InvalidSetting::new("local.advertised_host", "must name a host"));
        }
        if self.local.first_metrics_port == 0 {
            return Err(InvalidSetting::new("local.first_metrics_port", "must be a port, not 0"));
        }
        if self.local.restart_backoff.is_zero() || self.local.max_restart_backoff < self.local.restart_backoff {
            return Err(InvalidSetting::new("local.max_restart_backoff", "must be at least restart_backoff, above 0s"));
        }
        self.kubernetes.validate()?;
        for (worker, policy) in &self.groups {
            policy.validate().map_err(|error| error.within(&format!("groups.{worker}")))?;
        }
        Ok(())
    }
}

impl KubernetesActuatorSettings {
    fn validate(&self) -> Result<(), InvalidSetting> {
        // Kubernetes object names are DNS labels (RFC 1123): lower-case alphanumerics and '-'.
        let dns_label = |name: &str| {
            !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-')
        };
        if let Some(namespace) = &self.namespace
            && !dns_label(namespace)
        {
            return Err(InvalidSetting::new(
                "kubernetes.namespace",
                "must be a DNS label (lower-case letters, digits, '-')",
            ));
        }
        // The prefix may end in '-': the worker's name follows it.
        let prefix_ok = self.deployment_prefix.is_empty() || dns_label(self.deployment_prefix.trim_end_matches('-'));
        if !prefix_ok || self.deployment_prefix.len() > 40 {
            return Err(InvalidSetting::new(
                "kubernetes.deployment_prefix",
                "must be lower-case letters, digits and '-', at most 40 characters",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(InvalidSetting::new("kubernetes.request_timeout", "must be longer than 0s"));
        }
        if self.field_manager.trim().is_empty() {
            return Err(InvalidSetting::new("kubernetes.field_manager", "must name the manager"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::Sizing;

    #[test]
    fn group_tables_as_the_readme_shows_them_parse_and_validate() {
        let settings: AutoscalerSettings = toml::from_str(
            r#"
            [groups.serve]
            min_instances = 2
            max_instances = 12
            catch_up = "60s"
            sizing = { kind = "rate" }

            [groups.passthrough]
            sizing = { kind = "lag", lag_threshold = 1000 }
            "#,
        )
        .unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.groups["serve"].max_instances, 12);
        assert_eq!(settings.groups["passthrough"].sizing, Sizing::Lag { lag_threshold: 1000 });
    }

    #[test]
    fn the_kubernetes_actuator_is_chosen_and_configured_in_its_own_table() {
        let settings: AutoscalerSettings = toml::from_str(
            r#"
            actuator = "kubernetes"
            [kubernetes]
            namespace = "frontier"
            request_timeout = "5s"
            "#,
        )
        .unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.actuator, ActuatorKind::Kubernetes);
        assert_eq!(settings.kubernetes.deployment_prefix, "frontier-");
    }

    #[test]
    fn a_namespace_that_kubernetes_would_refuse_is_refused_at_start() {
        let mut settings = AutoscalerSettings::default();
        settings.kubernetes.namespace = Some("Frontier_Prod".into());
        assert_eq!(settings.validate().unwrap_err().key, "kubernetes.namespace");
    }

    #[test]
    fn the_autoscaler_does_not_size_itself() {
        let mut settings = AutoscalerSettings::default();
        settings.groups.insert("autoscaler".into(), PolicySettings::default());
        assert_eq!(settings.validate().unwrap_err().key, "groups.autoscaler");
    }
}
