//! Admin routes: changes to the running platform, behind roles and on the audit trail.
//!
//! ```text
//! GET    /v1/admin/batching          operator  the batch settings overridden while running
//! PUT    /v1/admin/batching/{model}  operator  merge a JSON patch into the model's override
//! DELETE /v1/admin/batching/{model}  operator  back to the configured settings
//! ```
//!
//! An override is a [`BatchingOverride`] on the compacted control topic (the model is the key),
//! which every inference batcher follows (`workers::inference_batcher::overrides`): a change
//! reaches every instance, and survives their restarts. Each change, made, refused or failed,
//! is an [`AuditEvent`] naming the caller: so a change routes lets in any caller with a key and
//! checks the role itself, auditing a 403 like any other refusal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::auth::authorize;
use super::error::ApiError;
use super::keys::{Identity, Role};
use super::routes::GatewayState;
use crate::audit::event;
use crate::bus::compacted::Snapshot;
use crate::inference::batcher::BatchingSettings;
use crate::inference::batcher::settings::merge_patch;
use crate::records::{AuditEvent, AuditOutcome, BatchingOverride};

/// How long a change may wait for Kafka to take it.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the batching routes need: the control topic, what it holds, and the configured
/// settings of every model the batchers serve (a patch is checked against them).
pub struct BatchingControl {
    /// The compacted topic of overrides.
    pub topic: String,
    /// Its newest value per model.
    pub overrides: watch::Receiver<Snapshot>,
    /// Each model's settings in the configuration.
    pub configured: BTreeMap<String, BatchingSettings>,
}

/// `GET /v1/admin/batching`: every override in force, by model.
pub async fn batching(State(state): State<Arc<GatewayState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Operator).await?;
    let control = batching_control(&state)?;
    let snapshot = control.overrides.borrow().clone();
    let mut overrides = Map::new();
    for (model, value) in snapshot.iter() {
        if let Some(record) = decode(&state, value) {
            let settings: Value = serde_json::from_str(&record.settings).unwrap_or(Value::Null);
            overrides.insert(
                model.clone(),
                json!({ "settings": settings, "changed_by": record.changed_by, "changed_at": record.changed_at }),
            );
        }
    }
    let body = json!({ "topic": control.topic, "overrides": overrides });
    Ok(super::routes::with_headers(Json(body).into_response(), &caller.headers))
}

/// `PUT /v1/admin/batching/{model}`: merges the body (a JSON merge patch of batching fields)
/// into the model's override, checks the result over the configured settings, publishes it.
pub async fn update_batching(
    State(state): State<Arc<GatewayState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Viewer).await?;
    let control = batching_control(&state)?;
    let mut audit = change(&caller.identity, "batching.update", &model);
    let checked = authorize(&caller.identity, Role::Operator).and_then(|()| check_patch(&state, control, &model, body));
    if let Ok((patch, _)) = &checked {
        audit.parameters = flatten(patch);
    }
    let merged = match checked.map(|(_, merged)| merged) {
        Ok(merged) => merged,
        Err(error) => return Err(refuse(&state, audit, error).await),
    };
    let record = BatchingOverride {
        model: model.clone(),
        settings: merged.to_string(),
        changed_by: caller.identity.subject.clone(),
        changed_at: audit.occurred_at,
        audit_id: audit.id.clone(),
    };
    let payload = state.catalog.encode_record(&record).map_err(|error| {
        tracing::error!(%error, "encoding a batching override failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the change could not be encoded")
    })?;
    publish(&state, &control.topic, &model, Some(&payload), audit.clone()).await?;
    record_made(&state, audit.clone()).await?;
    let body = json!({ "model": model, "settings": merged, "audit_id": audit.id });
    Ok(super::routes::with_headers(Json(body).into_response(), &caller.headers))
}

/// `DELETE /v1/admin/batching/{model}`: removes the model's override (a tombstone), so every
/// batcher returns it to its configured settings.
pub async fn reset_batching(
    State(state): State<Arc<GatewayState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.admit(&headers, Role::Viewer).await?;
    let control = batching_control(&state)?;
    let audit = change(&caller.identity, "batching.reset", &model);
    let allowed = authorize(&caller.identity, Role::Operator).and_then(|()| {
        if control.configured.contains_key(&model) { Ok(()) } else { Err(unknown_model(control, &model)) }
    });
    if let Err(refusal) = allowed {
        return Err(refuse(&state, audit, refusal).await);
    }
    publish(&state, &control.topic, &model, None, audit.clone()).await?;
    record_made(&state, audit.clone()).await?;
    let body = json!({ "model": model, "settings": {}, "audit_id": audit.id });
    Ok(super::routes::with_headers(Json(body).into_response(), &caller.headers))
}

fn batching_control(state: &GatewayState) -> Result<&BatchingControl, ApiError> {
    state.batching.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "batching_control_off",
            "this gateway has no batching control topic (workers.inference.overrides_topic)",
        )
    })
}

/// The patch of the body and the model's override with it merged in, checked over the
/// model's configured settings: 404 for an unknown model, 400 naming the field.
fn check_patch(
    state: &GatewayState,
    control: &BatchingControl,
    model: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Value, Value), ApiError> {
    let Some(configured) = control.configured.get(model) else { return Err(unknown_model(control, model)) };
    let body = body.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("the body is not JSON: {error}")))?;
    if !patch.is_object() {
        return Err(ApiError::invalid_body("$", "must be a JSON object of batching fields"));
    }
    let current = control
        .overrides
        .borrow()
        .get(model)
        .and_then(|value| decode(state, value))
        .and_then(|record| serde_json::from_str::<Value>(&record.settings).ok())
        .unwrap_or_else(|| json!({}));
    let mut merged = current;
    merge_patch(&mut merged, &patch);
    configured.patched(&merged).map_err(|error| ApiError::invalid_body(error.key, error.message))?;
    Ok((patch, merged))
}

fn unknown_model(control: &BatchingControl, model: &str) -> ApiError {
    let known: Vec<&str> = control.configured.keys().map(String::as_str).collect();
    ApiError::not_found(
        "unknown_model",
        format!("unknown model `{}`; known: {}", model.escape_debug(), known.join(", ")),
    )
}

/// Publishes the model's new override (`None`: a tombstone), acknowledged by every in-sync
/// replica; 503 (audited as failed) when Kafka does not take it.
async fn publish(
    state: &GatewayState,
    topic: &str,
    model: &str,
    payload: Option<&[u8]>,
    audit: AuditEvent,
) -> Result<(), ApiError> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(model.as_bytes());
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    match state.producer.send(record, Timeout::After(PUBLISH_TIMEOUT)).await {
        Ok(_) => Ok(()),
        Err((error, _)) => {
            tracing::warn!(topic, %error, "publishing a batching change failed");
            let mut failed = audit;
            failed.outcome = AuditOutcome::Failed;
            failed.detail = Some(format!("Kafka did not take the change: {error}"));
            if let Err(error) = state.audit.record(&failed).await {
                tracing::error!(%error, "a failed change could not be audited");
            }
            Err(ApiError::unavailable("kafka_unavailable", format!("Kafka did not take the change: {error}")))
        }
    }
}

/// Audits a change that was made. The change is in Kafka already: when the trail cannot take
/// it, the caller hears so (500), and the error is logged with the event for an operator.
async fn record_made(state: &GatewayState, audit: AuditEvent) -> Result<(), ApiError> {
    state.audit.record(&audit).await.map_err(|error| {
        tracing::error!(%error, ?audit, "a change was made but could not be audited");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_failed", "the change was made but could not be audited")
    })
}

/// Audits a refused change and hands back the refusal; a trail that cannot take it is logged.
async fn refuse(state: &GatewayState, mut audit: AuditEvent, refusal: ApiError) -> ApiError {
    audit.outcome = AuditOutcome::Refused;
    audit.detail = Some(refusal.message.clone());
    if let Err(error) = state.audit.record(&audit).await {
        tracing::error!(%error, "a refused change could not be audited");
    }
    refusal
}

/// An audit event of `action` on `model` by `identity`, made (until told otherwise).
fn change(identity: &Identity, action: &str, model: &str) -> AuditEvent {
    let mut audit =
        event(&identity.subject, identity.role.as_str(), action, BTreeMap::new(), AuditOutcome::Ok, "gateway");
    audit.tenant = Some(identity.tenant.clone());
    audit.target = Some(model.to_owned());
    audit
}

/// A patch as audit parameters: each leaf under its dotted path, as JSON text (masked by
/// [`crate::audit::mask`] like every parameter).
fn flatten(patch: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(fields) if !fields.is_empty() => {
                for (name, value) in fields {
                    let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    walk(&path, value, out);
                }
            }
            leaf => {
                out.insert(if prefix.is_empty() { "$".into() } else { prefix.to_owned() }, leaf.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", patch, &mut out);
    crate::audit::mask(out)
}

fn decode(state: &GatewayState, value: &[u8]) -> Option<BatchingOverride> {
    state.catalog.decode_record(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_is_audited_leaf_by_leaf() {
        let flat = flatten(&json!({"max_batch_size": 8, "policies": {"low": {"max_queue_size": 5}}}));
        assert_eq!(flat["max_batch_size"], "8");
        assert_eq!(flat["policies.low.max_queue_size"], "5");
    }

    #[test]
    fn merging_keeps_earlier_fields_and_null_removes_one() {
        let mut current = json!({"max_batch_size": 8, "adaptive": false});
        merge_patch(&mut current, &json!({"adaptive": null, "max_queue_delay": "5ms"}));
        assert_eq!(current, json!({"max_batch_size": 8, "max_queue_delay": "5ms"}));
    }
}
