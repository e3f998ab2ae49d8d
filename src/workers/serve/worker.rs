//! `ServeWorker`: one `AnalysisRequest` in, its `AnalysisResponse` and a `RequestCompleted`
//! event out, answered from the tiered cache or computed over the price store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

use super::metric;
use super::settings::ServeSettings;
use crate::bus::outputs::is_valid_topic_name;
use crate::bus::{
    CodecError, HandlerError, Inbound, KnownSchema, Outbound, Refusal, RefusalCause, SchemaCatalog, Worker,
};
use crate::cache::heat::HeatTally;
use crate::cache::recipe::{self, Recipe, computation};
use crate::cache::result::CORRUPT_RESULT;
use crate::cache::{
    CacheKey, CachePolicy, CacheSettings, Cached, ComputeError, FailureKind, TieredCache, in_background_refresh,
};
use crate::market::pool::{Admission, AnalysisPool, NICE, Refused};
use crate::market::{Analysis, PriceStore};
use crate::records::{
    AnalysisRequest, AnalysisResponse, CacheHeat, CacheLayer, ErrorDetail, RequestCompleted, RequestStatus,
};
use crate::workers::WorkerConfig;

/// The service name in the request-completed events of the serving worker.
pub const SERVICE: &str = "serve";

/// Error code of an answer whose deadline had passed when the request was picked up.
pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";

/// What a request came to, before it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Outcome.
    pub status: RequestStatus,
    /// Named numbers when ok.
    pub result: Option<BTreeMap<String, f64>>,
    /// Why, when not ok.
    pub error: Option<ErrorDetail>,
    /// Layer that answered.
    pub layer: CacheLayer,
    /// Age of a cached answer.
    pub age: Option<Duration>,
    /// The cache key, for ok answers.
    pub key: Option<CacheKey>,
}

impl Answer {
    fn failed(status: RequestStatus, code: &str, message: String) -> Answer {
        Answer {
            status,
            result: None,
            error: Some(ErrorDetail { code: code.to_owned(), message }),
            layer: CacheLayer::None,
            age: None,
            key: None,
        }
    }
}

/// The serving worker. Cheap to share; every request runs concurrently with others.
pub struct ServeWorker {
    cache: TieredCache,
    store: PriceStore,
    responses_topic: Arc<str>,
    metrics_topic: Arc<str>,
    heat_topic: Arc<str>,
    heat_interval: Duration,
    heat: HeatTally,
    heat_schema: Arc<KnownSchema>,
    response_schema: Arc<KnownSchema>,
    completed_schema: Arc<KnownSchema>,
    instance: String,
    recipe_policy: CachePolicy,
    ttl_jitter: f64,
    max_field_bytes: usize,
    max_entitlements: usize,
    pool: AnalysisPool,
    computations: Arc<AtomicU64>,
}

impl ServeWorker {
    /// A worker answering from `cache` (configured by `cache_settings`), computing over `store`.
    pub fn new(
        settings: &ServeSettings,
        cache_settings: &CacheSettings,
        cache: TieredCache,
        store: PriceStore,
        catalog: &SchemaCatalog,
    ) -> Result<ServeWorker, CodecError> {
        metric::describe();
        Ok(ServeWorker {
            cache,
            store,
            responses_topic: Arc::from(settings.responses_topic.as_str()),
            metrics_topic: Arc::from(settings.metrics_topic.as_str()),
            heat_topic: Arc::from(settings.heat_topic.as_str()),
            heat_interval: settings.heat_interval,
            heat: HeatTally::new(settings.heat_max_keys),
            heat_schema: catalog.schema_of::<CacheHeat>()?,
            response_schema: catalog.schema_of::<AnalysisResponse>()?,
            completed_schema: catalog.schema_of::<RequestCompleted>()?,
            instance: settings.instance_id(),
            recipe_policy: CachePolicy { ttl: cache_settings.recipe_ttl, grace: Duration::ZERO },
            ttl_jitter: settings.ttl_jitter,
            max_field_bytes: settings.max_field_bytes,
            max_entitlements: settings.max_entitlements,
            pool: AnalysisPool::new(settings.compute.clone()),
            computations: Arc::default(),
        })
    }

    /// The cache it answers from.
    pub fn cache(&self) -> &TieredCache {
        &self.cache
    }

    /// The price store it computes over.
    pub fn store(&self) -> &PriceStore {
        &self.store
    }

    /// The pool admitting its computations.
    pub fn pool(&self) -> &AnalysisPool {
        &self.pool
    }

    /// The instance id in `served_by`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Analyses computed by this worker so far (cache misses and background refreshes).
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// Answers one request: timeout, error, or a result from the cache or computed. `Err` only
    /// for a failure worth retrying (the price store is unavailable), which the bus logs,
    /// counts and retries.
    pub async fn answer(&self, request: &AnalysisRequest, now_ms: i64) -> Result<Answer, HandlerError> {
        if let Some(deadline) = request.deadline
            && deadline <= now_ms
        {
            let late = now_ms.saturating_sub(deadline);
            let message = format!("the deadline passed {late} ms before the request was picked up");
            return Ok(Answer::failed(RequestStatus::Timeout, DEADLINE_EXCEEDED, message));
        }
        let params = match request.params_json() {
            Ok(params) => params,
            Err(name) => {
                let message = format!("invalid params: `{name}` must be a finite number");
                return Ok(Answer::failed(RequestStatus::Error, "invalid_params", message));
            }
        };
        let analysis = match Analysis::parse(&request.kind, &params) {
            Ok(analysis) => analysis,
            Err(error) => return Ok(Answer::failed(RequestStatus::Error, error.code(), error.to_string())),
        };
        let cost = analysis.estimated_cost();
        if let Err(refused) = self.pool.affordable(cost) {
            return Ok(Answer::failed(RequestStatus::Error, refused.code(), refused.to_string()));
        }
        let key = CacheKey::for_request(&request.kind, &params, &request.tenant, &request.entitlements);
        let tags = analysis.tags();
        let policy = jittered(self.cache.policy_for(&request.kind), self.ttl_jitter);
        let compute = {
            let (store, computations) = (self.store.clone(), self.computations.clone());
            let (pool, tenant, priority) = (self.pool.clone(), request.tenant.clone(), request.priority);
            let deadline = request.deadline.map(|deadline| {
                let left = u64::try_from(deadline.saturating_sub(now_ms)).unwrap_or(0);
                std::time::Instant::now() + Duration::from_millis(left)
            });
            async move {
                // Only a miss or a refresh gets here: what is cached is served whatever it cost.
                // A refresh runs in the room live requests leave (see `market::pool`).
                let background = in_background_refresh();
                let admission = Admission { cost, priority, tenant: &tenant, deadline, background };
                let asked = std::time::Instant::now();
                let admitted = pool.admit(admission).await;
                let class = if background { "background" } else { priority.as_str() };
                ::metrics::histogram!(metric::ADMISSION_WAIT_SECONDS, "priority" => class)
                    .record(asked.elapsed().as_secs_f64());
                let permit = admitted.map_err(|refused| match refused {
                    Refused::DeadlinePassed => ComputeError::timed_out(DEADLINE_EXCEEDED, refused.to_string()),
                    Refused::Yielded { .. } => ComputeError::yielded(refused.to_string()),
                    other => ComputeError::new(other.code(), other.to_string()),
                })?;
                computations.fetch_add(1, Ordering::Relaxed);
                // Built here and boxed: the computation's future (its SQL reads) is many times
                // the size of everything else a request holds, and in place it would sit in
                // every request's future, memory hits included, to be allocated, zeroed and
                // moved per message. A computation is rare and slow enough to afford the box.
                Box::pin(NICE.scope(permit.nice(), computation(analysis, store))).await
            }
        };
        match self.cache.get_or_compute(&key, &tags, policy, compute).await {
            Ok(cached) => {
                if cached.layer == CacheLayer::None && !cached.coalesced {
                    let recipe = Recipe {
                        kind: request.kind.clone(),
                        params,
                        tenant: request.tenant.clone(),
                        entitlements: request.entitlements.clone(),
                    };
                    recipe::remember(&self.cache, &key, &recipe, self.recipe_policy).await;
                }
                Ok(ok_answer(cached, key))
            }
            Err(error) => match error.kind {
                // A live request never yields; were it to, trying it again is right.
                FailureKind::Transient | FailureKind::Yielded => {
                    Err(HandlerError::transient(metric::code_label(&error.code), error.message))
                }
                FailureKind::TimedOut => Ok(Answer::failed(RequestStatus::Timeout, &error.code, error.message)),
                FailureKind::Permanent => Ok(Answer::failed(RequestStatus::Error, &error.code, error.message)),
            },
        }
    }

    /// The response and the request-completed event of `answer`, counted in the metrics.
    fn outputs(&self, request: &AnalysisRequest, answer: Answer) -> Result<Vec<Outbound>, HandlerError> {
        let completed_at = SystemTime::now();
        let completed_ms = crate::clock::epoch_millis(completed_at);
        let completed_exact_ms =
            completed_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default();
        let latency_ms = (completed_exact_ms - request.issued_at as f64).max(0.0);
        let layer = answer.layer;
        ::metrics::histogram!(metric::LATENCY, "kind" => metric::kind_label(&request.kind), "layer" => layer.as_str())
            .record(latency_ms / 1000.0);
        ::metrics::counter!(metric::RESPONSES, "status" => answer.status.as_str()).increment(1);
        if let Some(error) = &answer.error {
            ::metrics::counter!(metric::ERRORS, "code" => metric::code_label(&error.code)).increment(1);
            debug!(request = %request.id, code = %error.code, message = %error.message, "answered with an error");
        }
        let response = AnalysisResponse {
            request_id: request.id.clone(),
            tenant: request.tenant.clone(),
            kind: request.kind.clone(),
            status: answer.status,
            result: answer.result,
            error: answer.error,
            cache_layer: layer,
            cache_age_ms: answer.age.map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX)),
            latency_ms,
            served_by: self.instance.clone(),
            completed_at: completed_ms,
        };
        if let (Some(key), RequestStatus::Ok) = (&answer.key, answer.status) {
            self.heat.count(key, &request.kind, layer == CacheLayer::None, completed_ms);
        }
        let completed = RequestCompleted {
            id: request.id.clone(),
            service: SERVICE.to_owned(),
            kind: request.kind.clone(),
            tenant: request.tenant.clone(),
            latency_ms,
            status: answer.status,
            cache_layer: layer,
            occurred_at: completed_ms,
            instance: Some(self.instance.clone()),
            cache_key: answer.key.map(|key| key.as_str().to_owned()),
        };
        // Our own records always fit our own schemas; failing here is a bug that must stop
        // the worker rather than drop answers silently.
        let response = SchemaCatalog::encode(&self.response_schema, &response)
            .map_err(|e| HandlerError::fatal("response_encoding", e.to_string()))?;
        let completed = SchemaCatalog::encode(&self.completed_schema, &completed)
            .map_err(|e| HandlerError::fatal("event_encoding", e.to_string()))?;
        let reply_to: Arc<str> = match &request.reply_to {
            Some(topic) if !topic.trim().is_empty() => Arc::from(topic.as_str()),
            _ => self.responses_topic.clone(),
        };
        Ok(vec![
            Outbound::new(reply_to, Some(request.id.as_bytes().to_vec()), response),
            Outbound::new(self.metrics_topic.clone(), Some(SERVICE.as_bytes().to_vec()), completed),
        ])
    }

    /// The per-key answer counts since the last time, as records for the heat topic. They go
    /// out on the tick, never beside an answer: a heat record the bus refused must not cost a
    /// requester its answer.
    fn heat_outputs(&self, now_ms: i64) -> Result<Vec<Outbound>, HandlerError> {
        let taken = self.heat.take(SERVICE, &self.instance, now_ms);
        if taken.dropped_windows > 0 {
            ::metrics::counter!(metric::HEAT_WINDOWS_DROPPED).increment(taken.dropped_windows);
            warn!(
                dropped = taken.dropped_windows,
                "more keys answered within heat_interval than the heat windows kept hold; the oldest were dropped"
            );
        }
        let key = Some(SERVICE.as_bytes().to_vec());
        taken
            .records
            .iter()
            .map(|heat| {
                ::metrics::histogram!(metric::HEAT_KEYS).record(heat.keys.len() as f64);
                // Our own record always fits our own schema (see `outputs`).
                let payload = SchemaCatalog::encode(&self.heat_schema, heat)
                    .map_err(|e| HandlerError::fatal("heat_encoding", e.to_string()))?;
                Ok(Outbound::new(self.heat_topic.clone(), key.clone(), payload))
            })
            .collect()
    }
}

impl Worker for ServeWorker {
    fn name(&self) -> &'static str {
        ServeSettings::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let request: AnalysisRequest = message.record()?;
        self.check_fields(&request)?;
        if let Some(reply_to) = request.reply_to.as_deref().filter(|topic| !is_valid_topic_name(topic)) {
            // Nothing can be sent there: say so on the responses topic, dead-letter the request.
            let reason = format!("reply_to `{}` is not a valid Kafka topic name", reply_to.escape_debug());
            let answer = Answer::failed(RequestStatus::Error, "invalid_reply_to", reason.clone());
            let to_default = AnalysisRequest { reply_to: None, ..request };
            return Err(HandlerError::rejected_with_answer(
                "invalid_reply_to",
                reason,
                self.outputs(&to_default, answer)?,
            ));
        }
        let answer = self.answer(&request, crate::clock::now_millis()).await?;
        self.outputs(&request, answer)
    }

    /// An error answer in place of a response the bus will not send: too large for a message,
    /// or to a `reply_to` that does not exist (then on the responses topic).
    fn refused(&self, message: &Inbound, refusal: &Refusal) -> Vec<Outbound> {
        let Ok(request) = message.record::<AnalysisRequest>() else { return Vec::new() };
        if *refusal.topic == *self.metrics_topic {
            // Our own configuration is wrong, not the request: nothing to tell the requester.
            return Vec::new();
        }
        let (code, request) = match refusal.cause {
            RefusalCause::TooLarge { .. } => ("response_too_large", request),
            RefusalCause::InvalidTopic | RefusalCause::UnknownTopic => {
                ("unknown_reply_to", AnalysisRequest { reply_to: None, ..request })
            }
        };
        let answer = Answer::failed(RequestStatus::Error, code, refusal.to_string());
        self.outputs(&request, answer).unwrap_or_default()
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.heat_interval)
    }

    /// Writes the answers' per-key counts of the interval for the cache warmer.
    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        self.heat_outputs(crate::clock::epoch_millis(now))
    }
}

impl ServeWorker {
    /// Refuses fields too long to echo into answers and events, or to hash into cache keys.
    fn check_fields(&self, request: &AnalysisRequest) -> Result<(), HandlerError> {
        let limit = self.max_field_bytes;
        let fields =
            [("id", &request.id), ("tenant", &request.tenant), ("user", &request.user), ("kind", &request.kind)];
        let entitlements = request.entitlements.iter().map(|e| ("entitlements", e));
        if let Some((name, value)) = fields.into_iter().chain(entitlements).find(|(_, value)| value.len() > limit) {
            let reason = format!("`{name}` takes {} bytes, more than the {limit} allowed", value.len());
            return Err(HandlerError::rejected("field_too_long", reason));
        }
        if request.entitlements.len() > self.max_entitlements {
            let reason =
                format!("{} entitlements, more than the {} allowed", request.entitlements.len(), self.max_entitlements);
            return Err(HandlerError::rejected("field_too_long", reason));
        }
        Ok(())
    }
}

/// The ok answer of a cache lookup; a value that is not a result map becomes an error answer.
fn ok_answer(cached: Cached, key: CacheKey) -> Answer {
    match crate::cache::result::decode(&cached.value) {
        Ok(result) => Answer {
            status: RequestStatus::Ok,
            result: Some(result),
            error: None,
            layer: cached.layer,
            age: cached.age,
            key: Some(key),
        },
        Err(error) => {
            // Counted with every error answer in `outputs`; logged louder here, as it is a bug.
            warn!(%key, %error, "a cached value is not a result map");
            Answer::failed(RequestStatus::Error, CORRUPT_RESULT, format!("the cached result is unreadable: {error}"))
        }
    }
}

/// `policy` with its ttl shortened by a random fraction up to `jitter` (see
/// `ServeSettings::ttl_jitter`).
pub fn jittered(policy: CachePolicy, jitter: f64) -> CachePolicy {
    if jitter <= 0.0 {
        return policy;
    }
    let factor = 1.0 - jitter * rand::random::<f64>();
    CachePolicy { ttl: policy.ttl.mul_f64(factor), ..policy }
}
