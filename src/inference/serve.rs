//! `frontier model-serve`: the embedded model behind an OpenAI-compatible HTTP API, so the
//! batcher can spread batches over several processes (or machines) with [`InstancePool`] and
//! [`OpenAiEmbeddingsClient`], exactly as over vLLM or text-embeddings-inference.
//!
//! - `POST /v1/embeddings`: `{"model", "input": "text" | ["a", "b"], "encoding_format"?:
//!   "float" | "base64", "dimensions"?, "user"?}` answers `{"object": "list", "data": [{"object":
//!   "embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`.
//!   Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`: 400 for bad input,
//!   404 for another model's name, 413 for a body over the limit, 503 while the model loads.
//! - `GET /health`: 200 once the model is loaded, 503 before.
//! - `GET /v1/models`, `GET /v1/models/{model}`: the one model served.
//!
//! The server listens before the model is loaded ([`ServeState::loading`], then
//! [`ServeState::set_model`]), so a taken port fails at once and readiness is a `/health` poll.
//! Batches run one at a time on [`InProcessBackend`] (the model already uses every core).
//!
//! [`InstancePool`]: crate::inference::backend::InstancePool
//! [`OpenAiEmbeddingsClient`]: crate::inference::backend::OpenAiEmbeddingsClient

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::inference::backend::metrics as names;
use crate::inference::backend::{EmbeddingBackend, InProcessBackend};
use crate::inference::model::EmbeddingModel;

/// Most texts one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// Largest request body accepted: 2048 texts of a few kilobytes each.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the server serves: the model's name and, once loaded, the model. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServeState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    model_name: String,
    /// Other names requests may give in `model` (matched, like the name, without regard to case).
    aliases: Vec<String>,
    instance_id: String,
    loaded: OnceLock<InProcessBackend>,
}

impl ServeState {
    /// A server for `model_name` whose model is still loading: `/health` answers 503 until
    /// [`set_model`](Self::set_model). `instance_id` names this process in `/health`.
    pub fn loading(model_name: impl Into<String>, instance_id: impl Into<String>) -> Self {
        ServeState {
            inner: Arc::new(StateInner {
                model_name: model_name.into(),
                aliases: Vec::new(),
                instance_id: instance_id.into(),
                loaded: OnceLock::new(),
            }),
        }
    }

    /// A server for `model_name` with its model loaded.
    pub fn ready(model_name: impl Into<String>, instance_id: impl Into<String>, model: Arc<EmbeddingModel>) -> Self {
        let state = ServeState::loading(model_name, instance_id);
        state.set_model(model);
        state
    }

    /// Installs the loaded model; the server answers from then on. A second call keeps the
    /// first model and returns false.
    pub fn set_model(&self, model: Arc<EmbeddingModel>) -> bool {
        self.inner.loaded.set(InProcessBackend::new(self.inner.instance_id.clone(), model)).is_ok()
    }

    /// Whether the model is loaded.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.get().is_some()
    }

    /// The model name requests must ask for.
    pub fn model_name(&self) -> &str {
        &self.inner.model_name
    }

    /// The same server, also answering to `aliases`; call before sharing the state.
    pub fn with_aliases(self, aliases: Vec<String>) -> Self {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.aliases = aliases;
                inner
            }
            // Already shared: keep the aliases it has.
            Err(shared) => return ServeState { inner: shared },
        };
        ServeState { inner: Arc::new(inner) }
    }

    /// Whether a request naming `model` is for this server's model.
    pub fn answers_to(&self, model: &str) -> bool {
        std::iter::once(&self.inner.model_name).chain(&self.inner.aliases).any(|name| name.eq_ignore_ascii_case(model))
    }

    fn backend(&self) -> Result<&InProcessBackend, ApiError> {
        self.inner.loaded.get().ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("model {} is still loading", self.inner.model_name),
            kind: "server_error",
            param: None,
            code: Some("model_loading"),
        })
    }
}

/// Why the server stopped other than by cancellation.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting or serving connections failed.
    #[error("serving the embeddings API on {address} failed")]
    Serve {
        /// The address listened on (or `unknown`).
        address: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The routes, for [`serve`] or for testing without a socket.
pub fn router(state: ServeState) -> Router {
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{model}", get(model))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// requests in progress finish and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServeState,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    names::describe();
    let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_else(|_| "unknown".to_owned());
    tracing::info!(%address, model = state.model_name(), "serving the embeddings API");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| ServeError::Serve { address, source })
}

/// An OpenAI-style error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// OpenAI's `type`: `invalid_request_error`, `not_found_error`, `server_error`.
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param),
            code: Some("invalid_value"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": self.code,
        }});
        (self.status, Json(body)).into_response()
    }
}

/// A validated embeddings request.
#[derive(Debug, PartialEq)]
struct EmbeddingsRequest {
    texts: Vec<String>,
    base64: bool,
}

/// Checks a request body against the served model; every refusal says which field is wrong.
fn parse_request(body: &[u8], state: &ServeState, dimension: usize) -> Result<EmbeddingsRequest, ApiError> {
    let model_name = state.model_name();
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid("body", format!("the request body is not valid JSON: {error}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid("body", "the request body must be a JSON object"));
    };
    let model = match fields.get("model") {
        Some(Value::String(model)) => model,
        Some(_) => return Err(ApiError::invalid("model", "`model` must be a string")),
        None => return Err(ApiError::invalid("model", "`model` is required")),
    };
    if !state.answers_to(model) {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("the model `{model}` does not exist here; this server has `{model_name}`"),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
        });
    }
    let texts = match fields.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::invalid("input", "`input` must not be an empty array"));
            }
            if items.len() > MAX_INPUTS {
                return Err(ApiError::invalid(
                    "input",
                    format!("`input` has {} items; at most {MAX_INPUTS} are accepted", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text.clone()),
                    Value::Number(_) | Value::Array(_) => Err(ApiError::invalid(
                        "input",
                        "token arrays are not supported: send `input` as a string or an array of strings",
                    )),
                    _ => Err(ApiError::invalid("input", format!("`input[{index}]` must be a string"))),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("input", "`input` must be a string or an array of strings")),
        None => return Err(ApiError::invalid("input", "`input` is required")),
    };
    let base64 = match fields.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => return Err(ApiError::invalid("encoding_format", "`encoding_format` must be `float` or `base64`")),
    };
    match fields.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(Value::Number(number)) if number.as_u64() == Some(dimension as u64) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "dimensions",
                format!("`dimensions` can only be {dimension}, this model's dimension"),
            ));
        }
    }
    Ok(EmbeddingsRequest { texts, base64 })
}

async fn embeddings(State(state): State<ServeState>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let response = match embed_request(&state, body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(status = %error.status, message = %error.message, "embeddings request failed");
            }
            error.into_response()
        }
    };
    let model = state.model_name().to_owned();
    metrics::counter!(names::SERVED_REQUESTS, "model" => model.clone(), "status" => response.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!(names::SERVE_SECONDS, "model" => model).record(started.elapsed().as_secs_f64());
    response
}

async fn embed_request(state: &ServeState, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        message: rejection.body_text(),
        kind: "invalid_request_error",
        param: Some("body"),
        code: None,
    })?;
    let backend = state.backend()?;
    let model = Arc::clone(backend.model());
    let request = parse_request(&body, state, model.dimension())?;
    let server_error = |message: String| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
        kind: "server_error",
        param: None,
        code: Some("inference_failed"),
    };

    // Tokenizing thousands of texts takes milliseconds: off the async threads, like inference.
    let texts = request.texts;
    let (texts, token_counts) = tokio::task::spawn_blocking(move || {
        let counts = model.count_tokens(&texts);
        (texts, counts)
    })
    .await
    .map_err(|error| server_error(format!("tokenizing ended abnormally: {error}")))?;
    let prompt_tokens: usize = token_counts.map_err(|error| server_error(error.to_string()))?.iter().sum();
    let text_count = texts.len();
    let embedded = backend.embed(texts).await.map_err(|error| server_error(error.to_string()))?;

    let labels = [("model", state.model_name().to_owned())];
    metrics::counter!(names::SERVED_TEXTS, &labels).increment(text_count as u64);
    metrics::counter!(names::SERVED_TOKENS, &labels).increment(prompt_tokens as u64);

    let data: Vec<Value> = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if request.base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": state.model_name(),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
}

async fn health(State(state): State<ServeState>) -> Response {
    let body = json!({
        "status": if state.is_loaded() { "ok" } else { "loading" },
        "model": state.model_name(),
        "instance": state.inner.instance_id,
    });
    let status = if state.is_loaded() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// An OpenAI model object; `root` names the model an alias stands for (as vLLM lists its
/// served model names).
fn model_object(name: &str, root: &str) -> Value {
    json!({"id": name, "object": "model", "created": 0, "owned_by": "frontier", "root": root})
}

async fn models(State(state): State<ServeState>) -> Json<Value> {
    let root = state.model_name();
    let names = std::iter::once(root).chain(state.inner.aliases.iter().map(String::as_str));
    Json(json!({"object": "list", "data": names.map(|name| model_object(name, root)).collect::<Vec<_>>()}))
}

async fn model(State(state): State<ServeState>, Path(name): Path<String>) -> Response {
    if state.answers_to(&name) {
        Json(model_object(&name, state.model_name())).into_response()
    } else {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("the model `{name}` does not exist here; this server has `{}`", state.model_name()),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
        }
        .into_response()
    }
}

async fn unknown_path(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no such endpoint: {}", uri.path()),
        kind: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{method} is not allowed on {}", uri.path()),
        kind: "invalid_request_error",
        param: None,
        code: Some("method_not_allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbeddingsRequest, ApiError> {
        parse_request(body.as_bytes(), &ServeState::loading("m", "test"), 384)
    }

    fn refusal(body: &str) -> (StatusCode, &'static str) {
        let error = parse(body).expect_err("refused");
        (error.status, error.param.unwrap_or_default())
    }

    #[test]
    fn a_string_or_an_array_of_strings_is_accepted() {
        let one = parse(r#"{"model":"m","input":"a"}"#).expect("valid");
        assert_eq!(one, EmbeddingsRequest { texts: vec!["a".into()], base64: false });
        let many =
            parse(r#"{"model":"m","input":["a",""],"encoding_format":"base64","dimensions":384}"#).expect("valid");
        assert_eq!(many, EmbeddingsRequest { texts: vec!["a".into(), "".into()], base64: true });
    }

    #[test]
    fn bad_input_is_a_400_naming_the_field() {
        let cases = [
            ("not json", "body"),
            ("[1]", "body"),
            (r#"{"input":"a"}"#, "model"),
            (r#"{"model":1,"input":"a"}"#, "model"),
            (r#"{"model":"m"}"#, "input"),
            (r#"{"model":"m","input":[]}"#, "input"),
            (r#"{"model":"m","input":[1,2]}"#, "input"),
            (r#"{"model":"m","input":["a",null]}"#, "input"),
            (r#"{"model":"m","input":{"a":1}}"#, "input"),
            (r#"{"model":"m","input":"a","encoding_format":"int8"}"#, "encoding_format"),
            (r#"{"model":"m","input":"a","dimensions":128}"#, "dimensions"),
        ];
        for (body, param) in cases {
            assert_eq!(refusal(body), (StatusCode::BAD_REQUEST, param), "{body}");
        }
        let too_many = json!({"model": "m", "input": vec!["a"; MAX_INPUTS + 1]}).to_string();
        assert_eq!(refusal(&too_many), (StatusCode::BAD_REQUEST, "input"));
    }

    /// Serves a model-less state on an ephemeral port: routes that need no model.
    async fn start_loading() -> (String, CancellationToken, tokio::task::JoinHandle<Result<(), ServeError>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("ephemeral port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, ServeState::loading("m", "test"), shutdown.clone()));
        (url, shutdown, server)
    }

    #[tokio::test]
    async fn health_is_503_and_embeddings_wait_while_the_model_loads() {
        let (url, shutdown, _server) = start_loading().await;
        let client = reqwest::Client::new();
        let health = client.get(format!("{url}/health")).send().await.expect("answers");
        assert_eq!(health.status(), 503);
        let embeddings = client
            .post(format!("{url}/v1/embeddings"))
            .body(r#"{"model":"m","input":"a"}"#)
            .send()
            .await
            .expect("answers");
        assert_eq!(embeddings.status(), 503);
        let body: Value = embeddings.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "model_loading");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn serving_stops_when_cancelled() {
        let (url, shutdown, server) = start_loading().await;
        let models: Value =
            reqwest::get(format!("{url}/v1/models")).await.expect("answers").json().await.expect("JSON");
        assert_eq!(models["data"][0]["id"], "m");
        shutdown.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        stopped.expect("stopped in time").expect("no panic").expect("no error");
    }

    #[tokio::test]
    async fn models_lists_every_alias_and_a_request_may_use_any_of_them_in_any_case() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("ephemeral port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let state = ServeState::loading("all-MiniLM-L6-v2", "test").with_aliases(vec!["all-minilm-l6-v2".into()]);
        assert!(state.answers_to("ALL-MINILM-L6-V2") && !state.answers_to("gpt-4"));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, state, shutdown.clone()));
        let models: Value =
            reqwest::get(format!("{url}/v1/models")).await.expect("answers").json().await.expect("JSON");
        let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["all-MiniLM-L6-v2", "all-minilm-l6-v2"]);
        assert_eq!(models["data"][1]["root"], "all-MiniLM-L6-v2");
        let alias = reqwest::get(format!("{url}/v1/models/all-minilm-l6-v2")).await.expect("answers");
        assert_eq!(alias.status(), 200);
        shutdown.cancel();
    }

    #[test]
    fn another_models_name_is_a_404() {
        assert_eq!(refusal(r#"{"model":"gpt-4","input":"a"}"#), (StatusCode::NOT_FOUND, "model"));
    }
}
