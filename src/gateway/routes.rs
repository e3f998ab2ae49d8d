//! The HTTP routes: a request is checked, published to Kafka with this instance's reply topic,
//! and answered when its reply arrives (or at once with 202 and a URL, for `?async=true`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::admin::BatchingControl;
use super::auth::{authenticate, authorize};
use super::body::{self, AnalysisBody, InferenceBody};
use super::error::ApiError;
use super::jwt::JwtVerifier;
use super::keys::{Identity, KeyVerifier, Role};
use super::ratelimit::RateLimiter;
use super::render::render;
use super::replies::{Asked, PendingAnswers, Slot};
use super::settings::GatewaySettings;
use crate::audit::AuditTrail;
use crate::bus::SchemaCatalog;
use crate::clock::now_millis;
use crate::records::{AnalysisRequest, InferenceJob, Task};

/// What every route shares.
pub struct GatewayState {
    /// `[gateway]`.
    pub settings: GatewaySettings,
    /// This instance's reply topic, every request's `reply_to`.
    pub reply_topic: String,
    /// Schemas the records are encoded with.
    pub catalog: Arc<SchemaCatalog>,
    /// The producer of requests and jobs.
    pub producer: FutureProducer,
    /// Requests waiting for their answers.
    pub pending: Arc<PendingAnswers>,
    /// API keys, verified and remembered.
    pub verifier: KeyVerifier,
    /// JWT bearer tokens, when an identity provider is configured.
    pub tokens: Option<JwtVerifier>,
    /// Quotas per tenant and key.
    pub limiter: RateLimiter,
    /// Cancelled when the gateway stops: waiting requests are answered 503 at once.
    pub shutdown: CancellationToken,
    /// Where admin changes are recorded.
    pub audit: AuditTrail,
    /// Batch settings changed while running; `None` without a control topic.
    pub batching: Option<BatchingControl>,
    /// The live dashboard's newest sample.
    pub dashboard: super::dashboard::DashboardFeed,
}

/// A caller let in: who it is, and the rate-limit headers every answer to it carries.
pub(super) struct Admitted {
    /// Who.
    pub(super) identity: Identity,
    /// `RateLimit-*`.
    pub(super) headers: Vec<(HeaderName, String)>,
}

impl GatewayState {
    /// Authenticates, authorizes for `role` and charges the caller's quotas: 401, 403 or 429.
    pub(super) async fn admit(&self, headers: &HeaderMap, role: Role) -> Result<Admitted, ApiError> {
        let identity = authenticate(&self.verifier, self.tokens.as_ref(), headers).await?;
        authorize(&identity, role)?;
        let decision = self.limiter.check(&identity.tenant, &identity.subject).await;
        let headers: Vec<(HeaderName, String)> =
            decision.headers().into_iter().map(|(name, value)| (HeaderName::from_static(name), value)).collect();
        if !decision.allowed {
            let mut error =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "over the request quota; retry later");
            error.headers = headers;
            return Err(error);
        }
        Ok(Admitted { identity, headers })
    }
}

/// `?async=true`.
#[derive(Debug, Default, Deserialize)]
pub struct AsyncQuery {
    /// Answer 202 at once with the result's URL instead of waiting.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
}

/// `POST /v1/analysis/{kind}`.
pub async fn analysis(
    State(state): State<Arc<GatewayState>>,
    Path(kind): Path<String>,
    Query(query): Query<AsyncQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Operator).await?;
    let body: AnalysisBody = body::read(body)?;
    let params = body::analysis_params(&kind, body.params)?;
    let timeout = body::timeout(body.timeout_ms, state.settings.default_timeout, state.settings.max_timeout)?;
    let id = uuid::Uuid::new_v4().to_string();
    let issued_at = now_millis();
    let record = AnalysisRequest {
        id: id.clone(),
        tenant: caller.identity.tenant.clone(),
        user: caller.identity.subject.clone(),
        kind,
        params,
        priority: body.priority,
        issued_at,
        deadline: Some(issued_at.saturating_add(millis(timeout))),
        reply_to: Some(state.reply_topic.clone()),
        // Entitlements change answers, so they must come from the identity, never from the
        // caller's own body; keys carry none yet.
        entitlements: Vec::new(),
    };
    let payload = encode(&state, &record)?;
    let topic = state.settings.analysis_topic.clone();
    let answer = submit(&state, &caller, &id, Asked::Analysis, &topic, payload, timeout, query.asynchronous).await;
    Ok(with_headers(answer, &caller.headers))
}

/// `POST /v1/inference/{embed|classify}`.
pub async fn inference(
    State(state): State<Arc<GatewayState>>,
    Path(task): Path<String>,
    Query(query): Query<AsyncQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Operator).await?;
    let task = match task.as_str() {
        "embed" => Task::Embed,
        "classify" => Task::Classify,
        _ => return Err(ApiError::not_found("unknown_task", format!("unknown task `{task}`; known: embed, classify"))),
    };
    let body: InferenceBody = body::read(body)?;
    if body.inputs.is_empty() {
        return Err(ApiError::invalid_body("inputs", "must hold at least one text"));
    }
    let timeout = body::timeout(body.timeout_ms, state.settings.default_timeout, state.settings.max_timeout)?;
    let id = uuid::Uuid::new_v4().to_string();
    let issued_at = now_millis();
    let record = InferenceJob {
        id: id.clone(),
        model: body.model.unwrap_or_else(|| state.settings.default_model.clone()),
        task,
        inputs: body.inputs,
        labels: body.labels,
        priority: body.priority,
        issued_at,
        deadline: Some(issued_at.saturating_add(millis(timeout))),
        reply_to: Some(state.reply_topic.clone()),
    };
    let payload = encode(&state, &record)?;
    let topic = state.settings.inference_topic.clone();
    let answer = submit(&state, &caller, &id, Asked::Inference, &topic, payload, timeout, query.asynchronous).await;
    Ok(with_headers(answer, &caller.headers))
}

/// `GET /v1/results/{id}`: the answer (as the synchronous call would have given it), or 202
/// while it is pending.
pub async fn result(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Viewer).await?;
    let slot = own_slot(&state, &caller.identity, &id)?;
    let answer = match slot.answer() {
        Some(answer) => render(slot.asked, &id, &answer),
        None if Instant::now() >= slot.deadline => deadline_exceeded(&id).into_response(),
        None => {
            let body = json!({ "id": id, "status": "pending" });
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    };
    Ok(with_headers(answer, &caller.headers))
}

/// `GET /v1/results/{id}/events`: server-sent events; one `result` event (`data` is
/// `{"status": <http status>, "body": <the answer>}`) when the answer arrives or the deadline
/// passes, then the stream ends.
pub async fn result_events(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Viewer).await?;
    let slot = own_slot(&state, &caller.identity, &id)?;
    let shutdown = state.shutdown.clone();
    let event = async move {
        let response = wait(&slot, &id, &shutdown).await;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let data = json!({ "status": status, "body": body }).to_string();
        Ok::<Event, Infallible>(Event::default().event("result").data(data))
    };
    let stream = futures::stream::once(event);
    let response = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    Ok(with_headers(response, &caller.headers))
}

/// `GET /health`: whether this instance is up, without credentials (for load balancers).
pub async fn health(State(state): State<Arc<GatewayState>>) -> Response {
    let body = json!({
        "status": "ok",
        "reply_topic": state.reply_topic,
        "pending": state.pending.len(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// Publishes one request and answers it: at once with 202 when asynchronous, else when its
/// reply arrives or its deadline passes.
#[allow(clippy::too_many_arguments, reason = "one call site per route; a struct would only rename them")]
async fn submit(
    state: &GatewayState,
    caller: &Admitted,
    id: &str,
    asked: Asked,
    topic: &str,
    payload: Vec<u8>,
    timeout: Duration,
    asynchronous: bool,
) -> Response {
    let deadline = Instant::now() + timeout;
    let Some(slot) = state.pending.open(id, &caller.identity.tenant, asked, deadline) else {
        return ApiError::unavailable("gateway_busy", "too many requests are pending on this instance; retry")
            .into_response();
    };
    // Bounded by the deadline: a request Kafka has not taken by then is answered 503 rather
    // than left hanging (librdkafka may still deliver it; the worker then answers `timeout`).
    let record = FutureRecord::to(topic).key(id.as_bytes()).payload(&payload);
    let sent = tokio::time::timeout(timeout, state.producer.send(record, Timeout::After(timeout))).await;
    let failure = match sent {
        Ok(Ok(_)) => None,
        Ok(Err((error, _))) => Some(error.to_string()),
        Err(_) => Some(format!("not acknowledged within {timeout:?}")),
    };
    if let Some(reason) = failure {
        state.pending.close(id);
        tracing::warn!(topic, %reason, "publishing a request failed");
        return ApiError::unavailable("kafka_unavailable", format!("Kafka did not take the request: {reason}"))
            .into_response();
    }
    if asynchronous {
        let url = format!("/v1/results/{id}");
        let body = json!({
            "id": id, "status": "pending", "result_url": url, "events_url": format!("{url}/events"),
        });
        let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
        if let Ok(location) = HeaderValue::from_str(&url) {
            response.headers_mut().insert(LOCATION, location);
        }
        return response;
    }
    let response = wait(&slot, id, &state.shutdown).await;
    state.pending.close(id);
    response
}

/// Waits for the slot's answer until its deadline (504) or the gateway stops (503).
async fn wait(slot: &Slot, id: &str, shutdown: &CancellationToken) -> Response {
    let mut receiver = slot.subscribe();
    let deadline = tokio::time::Instant::from_std(slot.deadline);
    tokio::select! {
        answered = tokio::time::timeout_at(deadline, receiver.wait_for(Option::is_some)) => match answered {
            Ok(Ok(answer)) => match answer.as_ref() {
                Some(answer) => render(slot.asked, id, answer),
                None => deadline_exceeded(id).into_response(),
            },
            Ok(Err(_)) | Err(_) => deadline_exceeded(id).into_response(),
        },
        () = shutdown.cancelled() => ApiError::unavailable("gateway_stopping", "this gateway instance is stopping; retry").into_response(),
    }
}

/// The slot of `id` if it belongs to the caller's tenant; 404 otherwise, so ids of other
/// tenants cannot be probed.
fn own_slot(state: &GatewayState, identity: &Identity, id: &str) -> Result<Arc<Slot>, ApiError> {
    state
        .pending
        .get(id)
        .filter(|slot| slot.tenant == identity.tenant)
        .ok_or_else(|| ApiError::not_found("unknown_result", format!("no result `{id}` is kept for this tenant")))
}

fn deadline_exceeded(id: &str) -> ApiError {
    ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", format!("no answer to {id} before its deadline"))
}

fn encode<T: crate::records::Record>(state: &GatewayState, record: &T) -> Result<Vec<u8>, ApiError> {
    state.catalog.encode_record(record).map_err(|error| {
        // The body was checked field by field, so this is a mismatch between the gateway and
        // the schemas it was started with.
        tracing::error!(%error, "encoding a checked request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the request could not be encoded")
    })
}

pub(super) fn with_headers(mut response: Response, headers: &[(HeaderName, String)]) -> Response {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    response
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
