//! A reply from Kafka as an HTTP answer: the worker's outcome decides the status, and errors
//! read the same as the gateway's own (`{"error": {"code", "message"}}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::replies::Asked;

/// The answer to request `id` from its decoded reply.
pub fn render(asked: Asked, id: &str, reply: &Value) -> Response {
    match asked {
        Asked::Analysis => analysis(id, reply),
        Asked::Inference => inference(id, reply),
    }
}

/// An `AnalysisResponse`: 200 with the result; a failed analysis as its code says.
fn analysis(id: &str, reply: &Value) -> Response {
    match reply["status"].as_str() {
        Some("ok") => {
            let body = json!({
                "id": id,
                "kind": reply["kind"],
                "result": reply["result"],
                "cache_layer": reply["cache_layer"],
                "cache_age_ms": reply["cache_age_ms"],
                "latency_ms": reply["latency_ms"],
                "served_by": reply["served_by"],
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Some("timeout") => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", text_of(&reply["error"])).into_response()
        }
        _ => {
            let code = reply["error"]["code"].as_str().unwrap_or("analysis_failed");
            let (status, code) = analysis_error(code);
            ApiError::new(status, code, text_of(&reply["error"])).into_response()
        }
    }
}

/// The status of a serving worker's error code: the caller's mistake 4xx, the platform's 5xx.
fn analysis_error(code: &str) -> (StatusCode, &'static str) {
    match code {
        "invalid_params" => (StatusCode::BAD_REQUEST, "invalid_params"),
        "unknown_kind" => (StatusCode::NOT_FOUND, "unknown_kind"),
        "unknown_symbol" => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_symbol"),
        "insufficient_history" => (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_history"),
        "analysis_failed" => (StatusCode::UNPROCESSABLE_ENTITY, "analysis_failed"),
        "store_unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        "deadline_exceeded" => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        _ => (StatusCode::BAD_GATEWAY, "internal_error"),
    }
}

/// An `InferenceResult`: 200 with the outputs; rejected 422, expired 504, failed 502.
fn inference(id: &str, reply: &Value) -> Response {
    let message = reply["error"].as_str().unwrap_or_default().to_owned();
    match reply["status"].as_str() {
        Some("ok") => {
            let mut body = json!({
                "id": id,
                "model": reply["model"],
                "instance": reply["instance"],
                "batch_size": reply["batch_size"],
                "queue_time_ms": reply["queue_time_ms"],
                "inference_time_ms": reply["inference_time_ms"],
            });
            for output in ["embeddings", "classifications"] {
                if !reply[output].is_null() {
                    body[output] = reply[output].clone();
                }
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Some("rejected") => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message).into_response(),
        Some("expired") => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", message).into_response(),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "inference_failed", message).into_response(),
    }
}

/// An `ErrorDetail`'s message, or nothing.
fn text_of(error: &Value) -> String {
    error["message"].as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_analysis_is_200_with_its_result() {
        let reply = json!({"status": "ok", "kind": "market.volatility", "result": {"v": 0.2}, "cache_layer": "memory"});
        assert_eq!(render(Asked::Analysis, "r1", &reply).status(), StatusCode::OK);
    }

    #[test]
    fn an_unknown_symbol_is_the_callers_mistake() {
        let reply = json!({"status": "error", "error": {"code": "unknown_symbol", "message": "no prices"}});
        assert_eq!(render(Asked::Analysis, "r1", &reply).status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_store_outage_is_unavailable() {
        let reply = json!({"status": "error", "error": {"code": "store_unavailable", "message": "down"}});
        assert_eq!(render(Asked::Analysis, "r1", &reply).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_worker_timeout_is_a_gateway_timeout() {
        let reply = json!({"status": "timeout", "error": {"code": "deadline_exceeded", "message": "late"}});
        assert_eq!(render(Asked::Analysis, "r1", &reply).status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn a_rejected_job_is_unprocessable() {
        let reply = json!({"status": "rejected", "error": "unknown model"});
        assert_eq!(render(Asked::Inference, "j1", &reply).status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
