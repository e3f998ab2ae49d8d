//! [`OpenAiEmbeddingsClient`]: a model instance behind an OpenAI-compatible `POST /v1/embeddings`
//! (`frontier model-serve`, vLLM, text-embeddings-inference, llama.cpp's server, OpenAI itself).
//!
//! Only what every one of them does the same way is relied on: the request carries `model`,
//! `input` as an array of strings and `encoding_format: "float"`; the answer's `data[].index`
//! says which input a vector belongs to (servers may answer out of order), and a vector is
//! either an array of floats or, from servers that ignore the format asked for, base64 of
//! little-endian f32. Vectors are normalized here, since not every server normalizes.

use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BackendError, Embedded, EmbeddingBackend};

/// A client of one OpenAI-compatible embeddings server; its id is the base URL.
#[derive(Debug, Clone)]
pub struct OpenAiEmbeddingsClient {
    id: String,
    model: String,
    embeddings_url: String,
    health_url: String,
    client: reqwest::Client,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The base URL is not an `http://host[:port][/prefix]` URL.
    #[error("`{url}` is not an http:// base URL")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// reqwest could not build its client (no usable resolver or TLS backend).
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

impl OpenAiEmbeddingsClient {
    /// A client for the server at `base_url` (`http://127.0.0.1:8081`, or with its `/v1`
    /// prefix), asking for `model`. `connect_timeout` bounds each TCP connection,
    /// `request_timeout` each whole request, queueing on the server included.
    pub fn new(
        base_url: &str,
        model: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, HttpClientError> {
        let id = base_url.trim().trim_end_matches('/').to_owned();
        let host = id.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') || id.contains(char::is_whitespace) {
            return Err(HttpClientError::BadUrl { url: base_url.to_owned() });
        }
        // `/v1/embeddings` under the root; a base URL given with its `/v1` names the same server.
        let root = id.strip_suffix("/v1").unwrap_or(&id);
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(HttpClientError::Build)?;
        Ok(OpenAiEmbeddingsClient {
            embeddings_url: format!("{root}/v1/embeddings"),
            health_url: format!("{root}/health"),
            id,
            model: model.to_owned(),
            client,
        })
    }

    /// The model name sent with every request.
    pub fn model(&self) -> &str {
        &self.model
    }

    async fn post_embeddings(&self, texts: Vec<String>) -> Result<Embedded, BackendError> {
        if texts.is_empty() {
            return Ok(Embedded { vectors: Vec::new(), instance: self.id.clone() });
        }
        let expected = texts.len();
        let request = EmbeddingsRequest { model: &self.model, input: texts, encoding_format: "float" };
        let response = self
            .client
            .post(&self.embeddings_url)
            .json(&request)
            .send()
            .await
            .map_err(|error| self.unavailable(describe_request_error(&error)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.unavailable(format!("reading the answer: {}", describe_request_error(&error))))?;
        if !status.is_success() {
            return Err(self.status_error(status, &body));
        }
        let answer: EmbeddingsResponse = serde_json::from_slice(&body)
            .map_err(|error| self.failed(format!("the answer is not an embeddings list: {error}")))?;
        let vectors = self.in_input_order(answer, expected)?;
        Ok(Embedded { vectors, instance: self.id.clone() })
    }

    /// The vectors sorted by `index`, checked to cover every input once, each normalized.
    fn in_input_order(&self, answer: EmbeddingsResponse, expected: usize) -> Result<Vec<Vec<f32>>, BackendError> {
        if answer.data.len() != expected {
            return Err(self.failed(format!("answered {} embeddings for {expected} texts", answer.data.len())));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in answer.data {
            let index = item.index;
            let slot = slots
                .get_mut(index)
                .ok_or_else(|| self.failed(format!("embedding index {index} is out of range for {expected} texts")))?;
            if slot.is_some() {
                return Err(self.failed(format!("embedding index {index} is answered twice")));
            }
            let vector = item.embedding.into_floats().map_err(|reason| self.failed(reason))?;
            *slot = Some(normalized(vector));
        }
        let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
        // Each of the `expected` indices was filled at most once, and there were `expected`
        // items, so every slot is filled; checked anyway rather than trusted.
        if vectors.len() != expected {
            return Err(self.failed("some inputs got no embedding".to_owned()));
        }
        if let Some(first) = vectors.first() {
            let dimension = first.len();
            if dimension == 0 || vectors.iter().any(|vector| vector.len() != dimension) {
                return Err(self.failed("embeddings are empty or differ in length".to_owned()));
            }
        }
        Ok(vectors)
    }

    /// 5xx, 408 and 429 say the instance cannot take the batch now (another one may); any other
    /// 4xx says the batch itself is wrong.
    fn status_error(&self, status: StatusCode, body: &[u8]) -> BackendError {
        let reason = format!("HTTP {status}: {}", error_message(body));
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
        {
            self.unavailable(reason)
        } else if status.is_client_error() {
            BackendError::Refused { instance: self.id.clone(), reason }
        } else {
            // 1xx/3xx: redirects are followed by reqwest, so this is a server that misbehaves.
            self.failed(reason)
        }
    }

    fn unavailable(&self, reason: String) -> BackendError {
        BackendError::Unavailable { instance: self.id.clone(), reason }
    }

    fn failed(&self, reason: String) -> BackendError {
        BackendError::Failed { instance: self.id.clone(), reason }
    }
}

impl EmbeddingBackend for OpenAiEmbeddingsClient {
    fn id(&self) -> &str {
        &self.id
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
        Box::pin(self.post_embeddings(texts))
    }

    /// `GET /health` at the server's root: vLLM, text-embeddings-inference, llama.cpp and
    /// `frontier model-serve` answer 2xx once the model is loaded and 5xx while it loads or
    /// after it failed. A 404 (a server with no such route, like OpenAI's) counts as healthy:
    /// the server answers, and its batches will tell the rest.
    fn health(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let response = self
                .client
                .get(&self.health_url)
                .send()
                .await
                .map_err(|error| self.unavailable(describe_request_error(&error)))?;
            if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(self.unavailable(format!("GET /health answered {}", response.status())))
            }
        })
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: Vec<String>,
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: EmbeddingValue,
}

/// A vector as floats, or as base64 of little-endian f32 from servers that default to it.
#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Floats(Vec<f32>),
    Base64(String),
}

impl EmbeddingValue {
    fn into_floats(self) -> Result<Vec<f32>, String> {
        match self {
            EmbeddingValue::Floats(floats) => Ok(floats),
            EmbeddingValue::Base64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map_err(|error| format!("embedding is neither floats nor base64: {error}"))?;
                if bytes.len() % 4 != 0 {
                    return Err(format!("base64 embedding of {} bytes is not whole f32s", bytes.len()));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
                    .collect())
            }
        }
    }
}

/// `vector` scaled to unit length (left as it is when it is all zeros).
fn normalized(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 1e-12 {
        vector.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    vector
}

/// The message of an error body: OpenAI's and llama.cpp's `{"error": {"message": ...}}`,
/// text-embeddings-inference's `{"error": "..."}`, older vLLM's `{"message": ...}`; else the
/// body's start.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|value| {
        value["error"]["message"].as_str().or_else(|| value["error"].as_str()).or_else(|| value["message"].as_str())
    });
    if let Some(message) = message {
        return message.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let mut start: String = text.chars().take(200).collect();
    if start.len() < text.len() {
        start.push('…');
    }
    start
}

/// A reqwest error with its causes ("error sending request" alone hides "connection refused").
fn describe_request_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { format!("timed out: {error}") } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OpenAiEmbeddingsClient {
        OpenAiEmbeddingsClient::new("http://127.0.0.1:1/v1/", "m", Duration::from_secs(1), Duration::from_secs(1))
            .expect("valid URL")
    }

    #[test]
    fn a_base_url_with_or_without_v1_reaches_the_same_endpoints() {
        let with = client();
        assert_eq!(with.embeddings_url, "http://127.0.0.1:1/v1/embeddings");
        assert_eq!(with.health_url, "http://127.0.0.1:1/health");
        let without = OpenAiEmbeddingsClient::new("http://h:8", "m", Duration::from_secs(1), Duration::from_secs(1))
            .expect("valid URL");
        assert_eq!(without.embeddings_url, "http://h:8/v1/embeddings");
        assert_eq!(without.id(), "http://h:8");
    }

    #[test]
    fn urls_that_are_not_http_are_refused() {
        for url in ["", "h:8", "http://", "https://h:8", "http:///x", "http://h 8"] {
            let built = OpenAiEmbeddingsClient::new(url, "m", Duration::from_secs(1), Duration::from_secs(1));
            assert!(matches!(built, Err(HttpClientError::BadUrl { .. })), "{url}");
        }
    }

    #[test]
    fn answers_are_put_in_input_order_by_index_and_normalized() {
        let answer: EmbeddingsResponse =
            serde_json::from_str(r#"{"data":[{"index":1,"embedding":[0.0,2.0]},{"index":0,"embedding":[3.0,4.0]}]}"#)
                .expect("parses");
        let vectors = client().in_input_order(answer, 2).expect("complete");
        assert_eq!(vectors, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
    }

    #[test]
    fn base64_embeddings_are_decoded() {
        let bytes: Vec<u8> = [1.0f32, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let answer: EmbeddingsResponse =
            serde_json::from_str(&format!(r#"{{"data":[{{"index":0,"embedding":"{text}"}}]}}"#)).expect("parses");
        assert_eq!(client().in_input_order(answer, 1).expect("complete"), vec![vec![1.0, 0.0]]);
    }

    #[test]
    fn incomplete_or_duplicated_answers_are_failures() {
        let cases = [
            r#"{"data":[{"index":0,"embedding":[1.0]}]}"#,
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#,
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":2,"embedding":[1.0]}]}"#,
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":1,"embedding":[1.0,0.0]}]}"#,
        ];
        for case in cases {
            let answer: EmbeddingsResponse = serde_json::from_str(case).expect("parses");
            let result = client().in_input_order(answer, 2);
            assert!(matches!(result, Err(BackendError::Failed { .. })), "{case}");
        }
    }

    #[test]
    fn statuses_map_to_unavailable_or_refused() {
        let client = client();
        let body = br#"{"error":{"message":"bad","type":"invalid_request_error","code":null}}"#;
        for status in [500, 502, 503, 408, 429] {
            let error = client.status_error(StatusCode::from_u16(status).expect("valid"), body);
            assert!(matches!(error, BackendError::Unavailable { .. }), "{status}");
        }
        for status in [400, 404, 413, 422] {
            let error = client.status_error(StatusCode::from_u16(status).expect("valid"), body);
            assert!(matches!(&error, BackendError::Refused { reason, .. } if reason.contains("bad")), "{status}");
        }
    }

    #[test]
    fn error_messages_are_read_from_each_servers_error_body() {
        let bodies = [
            r#"{"error":{"message":"too long","type":"invalid_request_error","code":null}}"#,
            r#"{"error":"too long","error_type":"validation"}"#,
            r#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#,
            "too long",
        ];
        for body in bodies {
            assert_eq!(error_message(body.as_bytes()), "too long", "{body}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let error = client().embed(vec!["a".to_owned()]).await.expect_err("refused connection");
        assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");
        assert!(client().health().await.is_err());
    }
}
