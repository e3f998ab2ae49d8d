//! What the gateway answers when it cannot answer: an HTTP status and a JSON body with a stable
//! code, a readable message and, for a bad body, the path of the field at fault.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::metrics;

/// An error answered to a caller. Built in one place per cause, counted once where it is
/// answered (by code).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable lower_snake_case code (`invalid_body`, `unknown_kind`, `deadline_exceeded`).
    pub code: &'static str,
    /// Readable explanation.
    pub message: String,
    /// Dotted path of the offending field of the body (`params.window_days`), when one is.
    pub field: Option<String>,
    /// Extra headers (`Retry-After`, `RateLimit-*`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, headers: Vec::new() }
    }

    /// 400 for a body that is not what the route takes, naming the field.
    pub fn invalid_body(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        ApiError { field: (!field.is_empty() && field != ".").then_some(field), ..Self::bad_request(message) }
    }

    /// 400 `invalid_body` without a field.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    /// 401: no credentials, or ones nobody issued (or revoked).
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        error.headers.push((axum::http::header::WWW_AUTHENTICATE, "Bearer realm=\"frontier\"".into()));
        error
    }

    /// 403: a known caller whose role does not allow the route.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a result id this caller has no result under.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503: a dependency (Kafka, the key store) cannot take the request now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The same error with one more header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::error_answered(self.code);
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(json!({ "error": body }))).into_response();
        for (name, value) in self.headers {
            // A header value is built from numbers and fixed text here; one that is not a valid
            // header is left out rather than fail the answer.
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Why the gateway could not start or stopped with an error (not a request's failure).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The dashboard's HTTP client could not be built (TLS roots unreadable).
    #[error("the dashboard's client for Prometheus and Alertmanager: {source}")]
    Dashboard {
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// A Kafka client could not be created or the reply topic could not be set up.
    #[error("Kafka: {context}: {source} (is Kafka up? `ops/stack up`)")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// The reply topic is not there after creating it.
    #[error("the reply topic {topic} did not appear within {waited:?}: {reason}")]
    ReplyTopic {
        /// The topic.
        topic: String,
        /// How long the gateway waited.
        waited: std::time::Duration,
        /// What the broker said.
        reason: String,
    },
    /// The HTTP listener could not be bound or failed.
    #[error("HTTP listener on {listen}: {source}")]
    Listen {
        /// The address.
        listen: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The key store could not be reached or migrated.
    #[error("API key store: {0}")]
    Keys(#[from] super::keys::KeyError),
    /// Tokens are configured but the JWKS could not be fetched.
    #[error("JWT: {0}")]
    Jwt(#[from] super::jwt::JwtError),
    /// The rate limiter could not be built.
    #[error("rate limits: {0}")]
    RateLimits(#[from] super::ratelimit::RateLimitError),
    /// A schema the gateway encodes or decodes with is missing.
    #[error("schemas: {0}")]
    Schemas(#[from] crate::bus::CodecError),
    /// `[gateway.tls]`'s certificate or key cannot be served.
    #[error("gateway TLS: {0}")]
    Tls(#[from] super::tls::TlsError),
    /// The audit trail could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The batching control topic could not be read.
    #[error(transparent)]
    Control(#[from] crate::bus::compacted::FollowError),
}
