//! `[workers.cdn_purger]`: where changes come from and results go, the targets purged, and
//! how purges are retried, re-warmed and verified.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cdn::provider::ProviderSettings;
use crate::cdn::purge::RetrySettings;
use crate::config::{InvalidSetting, topic_named};
use crate::workers::WorkerConfig;

/// `[workers.cdn_purger]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdnPurgerSettings {
    /// Topic of `AssetChange`s.
    pub input_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.cdn-purger`.
    pub group_id: Option<String>,
    /// Topic the `PurgeResult`s go to, one per change, target and method.
    pub results_topic: String,
    /// Topic an alert goes to when the edge still serves old content after the purge.
    pub alerts_topic: String,
    /// The CDNs and edges purged, each in turn (`[[workers.cdn_purger.targets]]`).
    pub targets: Vec<TargetSettings>,
    /// How failed purge requests are retried before the change is retried as a whole.
    pub retry: RetrySettings,
    /// Purged URLs fetched through the edge right after the purge (entry points first), so the
    /// first user does not wait for the origin; 0 turns re-warming and verification off.
    pub rewarm_max: usize,
    /// Wait, before reporting the purge, until each re-warmed file's variants carry the new
    /// build's `ETag` at the edge (no stale response after the result is out).
    pub verify: bool,
    /// Forced refetches (`X-Frontier-Refresh`) of a variant still old after polling, before
    /// it is alerted on.
    pub verify_attempts: u32,
    /// Deadline of one re-warm or verification fetch.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// How long a purged batch is remembered (in Redis), so a redelivered change does not
    /// purge it again.
    #[serde(with = "humantime_serde")]
    pub remember: Duration,
}

/// One CDN or edge to purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// Its name in results and metrics (`edge`, `fastly-eu`, ...).
    pub name: String,
    /// Mark content stale instead of evicting it, where the provider can: the edge keeps
    /// serving it while one request refreshes it, so a purge never stampedes the origin.
    #[serde(default = "yes")]
    pub soft: bool,
    /// The provider and its settings: `{ provider = "varnish", edge = "http://127.0.0.1:6081" }`.
    pub api: ProviderSettings,
}

fn yes() -> bool {
    true
}

impl Default for CdnPurgerSettings {
    fn default() -> Self {
        CdnPurgerSettings {
            input_topic: "frontier.assets.changes".into(),
            group_id: None,
            results_topic: "frontier.cdn.purges".into(),
            alerts_topic: "frontier.alerts".into(),
            targets: vec![TargetSettings {
                name: "edge".into(),
                soft: true,
                api: ProviderSettings::Varnish(crate::cdn::provider::varnish::VarnishSettings::default()),
            }],
            retry: RetrySettings::default(),
            rewarm_max: 100,
            verify: true,
            verify_attempts: 3,
            fetch_timeout: Duration::from_secs(5),
            remember: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl WorkerConfig for CdnPurgerSettings {
    const SECTION: &'static str = "cdn_purger";
    const NAME: &'static str = "cdn-purger";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        topic_named("input_topic", &self.input_topic)?;
        topic_named("results_topic", &self.results_topic)?;
        topic_named("alerts_topic", &self.alerts_topic)?;
        if self.targets.is_empty() {
            return Err(InvalidSetting::new("targets", "must list at least one CDN or edge to purge"));
        }
        for (index, target) in self.targets.iter().enumerate() {
            if target.name.trim().is_empty() {
                return Err(InvalidSetting::new(format!("targets[{index}].name"), "must not be empty"));
            }
            if self.targets[..index].iter().any(|other| other.name == target.name) {
                return Err(InvalidSetting::new(
                    format!("targets[{index}].name"),
                    format!("`{}` is listed twice", target.name),
                ));
            }
        }
        if self.retry.attempts == 0 {
            return Err(InvalidSetting::new("retry.attempts", "must be at least 1"));
        }
        if self.verify_attempts == 0 {
            return Err(InvalidSetting::new("verify_attempts", "must be at least 1"));
        }
        Ok(())
    }
}
