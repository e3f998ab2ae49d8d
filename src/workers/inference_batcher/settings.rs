//! `[workers.inference]`: where the inference batcher reads and writes, the models it serves,
//! their instances and batch settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::InvalidSetting;
use crate::workers::WorkerConfig;

use crate::inference::backend::IN_PROCESS_SPEC;
use crate::inference::batcher::BatchingSettings;
use crate::inference::model::DEFAULT_MODEL_DIR;

/// The model served when the configuration names none: all-MiniLM-L6-v2, in-process.
pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";

/// `[workers.inference]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceBatcherSettings {
    /// Topic of `InferenceJob`s.
    pub input_topic: String,
    /// Topic results go to when a job has no `reply_to`.
    pub results_topic: String,
    /// Consumer group id; defaults to `<group_prefix>.inference-batcher`.
    pub group_id: Option<String>,
    /// Folder of the model loaded for `in-process` instances (fetched by `ops/models`).
    pub model_dir: PathBuf,
    /// Address of the read-only admin endpoint (`GET /admin/batching`, the batch settings in
    /// force on this instance); unset turns it off. Loopback only: it has no authentication.
    pub admin_listen: Option<SocketAddr>,
    /// Compacted topic of batch settings changed while running (`BatchingOverride`s, written by
    /// the gateway's `PUT /v1/admin/batching/{model}`), read whole at start and followed; unset
    /// keeps the configured settings. A missing topic reads as empty, with a warning.
    pub overrides_topic: Option<String>,
    /// Most texts one job may carry, inputs and label descriptions together (both are embedded);
    /// a larger job is answered `rejected`. A job with more inputs than a batch takes runs in
    /// chunks of `max_batch_size`, queued like any job.
    pub max_inputs_per_job: usize,
    /// The longest input, label or label description a job may carry, in bytes. The model reads
    /// 256 tokens at most; longer texts only cost tokenizing (and message size).
    pub max_text_bytes: usize,
    /// How long one batch may take on an HTTP instance before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The models served, by the name jobs use. Configuration files add models to the
    /// default one (`all-minilm-l6-v2`, in-process); they cannot remove it.
    pub models: BTreeMap<String, ModelSettings>,
}

impl Default for InferenceBatcherSettings {
    fn default() -> Self {
        InferenceBatcherSettings {
            input_topic: "frontier.inference.jobs".into(),
            results_topic: "frontier.inference.results".into(),
            group_id: None,
            model_dir: DEFAULT_MODEL_DIR.into(),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9480))),
            overrides_topic: Some("frontier.control.batching".into()),
            max_inputs_per_job: 512,
            max_text_bytes: 8192,
            request_timeout: Duration::from_secs(30),
            models: BTreeMap::from([(
                DEFAULT_MODEL.to_owned(),
                ModelSettings {
                    // As Hugging Face and sentence-transformers publish it.
                    aliases: vec!["all-MiniLM-L6-v2".into(), "sentence-transformers/all-MiniLM-L6-v2".into()],
                    ..ModelSettings::default()
                },
            )]),
        }
    }
}

/// One served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Where batches run: `in-process` (the model loaded from `model_dir`) and/or base URLs of
    /// OpenAI-compatible embeddings servers (`http://127.0.0.1:8081`). Several instances form a
    /// pool that balances batches and trips a circuit breaker on failing ones; set
    /// `batching.max_concurrent_batches` to their number so each gets work.
    pub instances: Vec<String>,
    /// How this model's jobs are batched.
    pub batching: BatchingSettings,
    /// Other names a job may ask for this model by (its published names); names and aliases
    /// match without regard to case.
    pub aliases: Vec<String>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            instances: vec![IN_PROCESS_SPEC.to_owned()],
            batching: BatchingSettings::default(),
            aliases: Vec::new(),
        }
    }
}

impl WorkerConfig for InferenceBatcherSettings {
    const SECTION: &'static str = "inference";
    const NAME: &'static str = "inference-batcher";

    fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn input_topics(&self) -> Vec<String> {
        vec![self.input_topic.clone()]
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: String, message: &str| Err(InvalidSetting::new(key, message));
        if self.input_topic.trim().is_empty() {
            return invalid("input_topic".into(), "must name a topic");
        }
        if self.results_topic.trim().is_empty() {
            return invalid("results_topic".into(), "must name a topic");
        }
        if self.results_topic == self.input_topic {
            return invalid("results_topic".into(), "must differ from input_topic (results would be read as jobs)");
        }
        if self.max_inputs_per_job == 0 {
            return invalid("max_inputs_per_job".into(), "must be at least 1");
        }
        if self.max_text_bytes < 16 {
            return invalid("max_text_bytes".into(), "must be at least 16");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout".into(), "must be greater than zero");
        }
        if self.overrides_topic.as_ref().is_some_and(|topic| topic.trim().is_empty()) {
            return invalid("overrides_topic".into(), "must name a topic (or be left out)");
        }
        // The endpoint has no authentication: reachable from elsewhere, anybody could change
        // batching. Remote changes go through the gateway's roles instead.
        if self.admin_listen.is_some_and(|listen| !listen.ip().is_loopback()) {
            return invalid(
                "admin_listen".into(),
                "must be a loopback address (the endpoint is unauthenticated; unset it to turn it off)",
            );
        }
        if self.models.is_empty() {
            return invalid("models".into(), "must name at least one model");
        }
        for (name, model) in &self.models {
            if model.instances.is_empty() {
                return invalid(format!("models.{name}.instances"), "must name at least one instance");
            }
            for instance in &model.instances {
                let instance = instance.trim();
                if instance != IN_PROCESS_SPEC && !instance.starts_with("http://") {
                    return invalid(
                        format!("models.{name}.instances"),
                        &format!("`{instance}` is neither `{IN_PROCESS_SPEC}` nor an http:// base URL"),
                    );
                }
            }
            if let Err(error) = model.batching.validate() {
                return Err(InvalidSetting::new(format!("models.{name}.batching.{}", error.key), error.message));
            }
        }
        let mut owners = std::collections::HashMap::new();
        for (name, model) in &self.models {
            for known in std::iter::once(name).chain(&model.aliases) {
                if owners.insert(known.to_lowercase(), name).is_some_and(|owner| owner != name) {
                    return invalid(format!("models.{name}.aliases"), &format!("`{known}` names two models"));
                }
            }
        }
        Ok(())
    }
}

impl InferenceBatcherSettings {
    /// Every name and alias a job may use, lowercased, with the model it names.
    pub fn model_names(&self) -> std::collections::HashMap<String, String> {
        self.models
            .iter()
            .flat_map(|(name, model)| {
                std::iter::once(name).chain(&model.aliases).map(move |known| (known.to_lowercase(), name.clone()))
            })
            .collect()
    }

    /// Whether any model runs in this process (so the model files must be loaded).
    pub fn needs_local_model(&self) -> bool {
        self.models.values().flat_map(|model| &model.instances).any(|instance| instance.trim() == IN_PROCESS_SPEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_serve_minilm_in_process() {
        let settings = InferenceBatcherSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        assert!(settings.needs_local_model());
        assert_eq!(settings.models[DEFAULT_MODEL].batching.max_batch_size, 64);
    }

    #[test]
    fn an_admin_endpoint_off_loopback_is_refused() {
        let settings = InferenceBatcherSettings {
            admin_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9480))),
            ..InferenceBatcherSettings::default()
        };
        assert_eq!(settings.validate().unwrap_err().key, "admin_listen");
    }

    #[test]
    fn a_model_is_found_by_its_published_names_whatever_their_case() {
        let names = InferenceBatcherSettings::default().model_names();
        for asked in ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "ALL-MINILM-L6-V2"] {
            assert_eq!(names.get(&asked.to_lowercase()).map(String::as_str), Some(DEFAULT_MODEL), "{asked}");
        }
    }

    #[test]
    fn an_alias_naming_two_models_is_refused() {
        let mut settings = InferenceBatcherSettings::default();
        let other = ModelSettings { aliases: vec!["All-MiniLM-L6-v2".into()], ..ModelSettings::default() };
        settings.models.insert("copy".into(), other);
        assert_eq!(settings.validate().map_err(|e| e.key), Err("models.copy.aliases".to_string()));
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let mut settings = InferenceBatcherSettings::default();
        settings
            .models
            .insert("remote".into(), ModelSettings { instances: vec!["grpc://x".into()], ..ModelSettings::default() });
        assert_eq!(settings.validate().unwrap_err().key, "models.remote.instances");
        let mut settings = InferenceBatcherSettings::default();
        settings.models.get_mut(DEFAULT_MODEL).unwrap().batching.policies.critical.max_queue_size = 0;
        assert_eq!(
            settings.validate().unwrap_err().key,
            "models.all-minilm-l6-v2.batching.policies.critical.max_queue_size"
        );
        let settings =
            InferenceBatcherSettings { results_topic: "frontier.inference.jobs".into(), ..Default::default() };
        assert_eq!(settings.validate().unwrap_err().key, "results_topic");
    }

    #[test]
    fn a_toml_section_parses_and_unknown_keys_are_refused() {
        let parsed: InferenceBatcherSettings = toml::from_str(
            r#"
            input_topic = "jobs"
            [models.finbert]
            instances = ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
            batching = { max_batch_size = 32, preferred_batch_sizes = [16, 32], max_queue_delay = "5ms", max_concurrent_batches = 2 }
            "#,
        )
        .expect("parses");
        assert_eq!(parsed.models["finbert"].batching.max_queue_delay, Duration::from_millis(5));
        assert_eq!(parsed.validate(), Ok(()));
        assert!(toml::from_str::<InferenceBatcherSettings>("max_batch = 3").is_err());
    }
}
