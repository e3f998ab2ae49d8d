//! Metric names of model instances, pools and `frontier model-serve`. Per-instance metrics carry
//! the label [`INSTANCE`] (the backend id, a handful per pool); served metrics carry `model`.

/// Label naming a model instance by its [`EmbeddingBackend::id`](super::EmbeddingBackend::id).
/// Prometheus keeps its own `instance` (the scraped target) and files this one as
/// `exported_instance` unless the scrape sets `honor_labels`.
pub const INSTANCE: &str = "instance";

/// Circuit breaker state per instance: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "frontier_model_instance_breaker_state";
/// Breaker transitions per instance and state entered (`closed`, `half_open`, `open`).
pub const BREAKER_TRANSITIONS: &str = "frontier_model_instance_breaker_transitions_total";
/// Batches sent to an instance and not yet answered, per instance.
pub const OUTSTANDING: &str = "frontier_model_instance_outstanding";
/// Time an instance took to answer a batch, per instance and outcome.
pub const REQUEST_SECONDS: &str = "frontier_model_instance_request_duration_seconds";
/// Batches sent to an instance, per instance and outcome (`ok`, `unavailable`, `refused`, `failed`).
pub const REQUESTS: &str = "frontier_model_instance_requests_total";
/// Batches a pool sent to another instance after this one failed them, per failed instance.
pub const RETRIES: &str = "frontier_model_pool_retries_total";
/// `/health` probes of an instance, per instance and result (`ok`, `failed`).
pub const HEALTH_PROBES: &str = "frontier_model_instance_health_probes_total";

/// Embeddings requests `frontier model-serve` answered, per model and HTTP status.
pub const SERVED_REQUESTS: &str = "frontier_model_serve_requests_total";
/// Texts `frontier model-serve` embedded, per model.
pub const SERVED_TEXTS: &str = "frontier_model_serve_texts_total";
/// Tokens `frontier model-serve` embedded (the usage it reports), per model.
pub const SERVED_TOKENS: &str = "frontier_model_serve_tokens_total";
/// Time from an embeddings request's arrival to its answer, per model.
pub const SERVE_SECONDS: &str = "frontier_model_serve_duration_seconds";

/// Registers descriptions so `/metrics` explains itself. Call it after the exporter is
/// installed (descriptions sent to no recorder are lost); calling it twice is harmless.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(BREAKER_STATE, "Circuit breaker state per model instance: 0 closed, 1 half-open, 2 open.");
    describe_counter!(BREAKER_TRANSITIONS, "Circuit breaker transitions per model instance and state entered.");
    describe_gauge!(OUTSTANDING, "Batches sent to a model instance and not yet answered.");
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "Time a model instance took to answer a batch.");
    describe_counter!(REQUESTS, "Batches sent to a model instance, per outcome.");
    describe_counter!(RETRIES, "Batches retried on another instance after this one failed them.");
    describe_counter!(HEALTH_PROBES, "Health probes of a model instance, per result.");
    describe_counter!(SERVED_REQUESTS, "Embeddings requests answered by model-serve, per HTTP status.");
    describe_counter!(SERVED_TEXTS, "Texts embedded by model-serve.");
    describe_counter!(SERVED_TOKENS, "Tokens embedded by model-serve.");
    describe_histogram!(SERVE_SECONDS, Unit::Seconds, "From an embeddings request's arrival to its answer.");
}
