//! The admin endpoint of the inference batcher: batch settings while it runs.
//!
//! - `GET /admin/batching`: every model's current settings, as JSON (durations as `"10ms"`).
//! - `PUT /admin/batching`: a JSON object `{"<model>": {<fields to change>}}`; each named
//!   model's current settings are patched with the given fields (omitted fields keep their
//!   values), validated, and published on the model's `watch` channel, so the next batch uses
//!   them. Answers the new settings, 400 with the reason for invalid ones, 404 for an unknown
//!   model; nothing is changed unless every model's patch is valid.
//!
//! `curl -X PUT 127.0.0.1:9480/admin/batching -d '{"all-minilm-l6-v2": {"max_batch_size": 32}}'`
//!
//! The endpoint listens on loopback by default (`workers.inference.admin_listen`) and has no
//! authentication: expose it only where operators are trusted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::batching_snapshot;
use crate::inference::batcher::{BatchingSettings, InferenceBatcher};

/// The router, for serving or for tests.
pub fn router(batcher: Arc<InferenceBatcher>) -> Router {
    Router::new().route("/admin/batching", get(current).put(update)).with_state(batcher)
}

/// Serves the admin endpoint on `listen` until `token` is cancelled.
pub async fn serve(
    listen: SocketAddr,
    batcher: Arc<InferenceBatcher>,
    token: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "batch settings admin endpoint: GET/PUT /admin/batching");
    axum::serve(listener, router(batcher)).with_graceful_shutdown(token.cancelled_owned()).await
}

async fn current(State(batcher): State<Arc<InferenceBatcher>>) -> Response {
    axum::Json(batching_snapshot(&batcher)).into_response()
}

async fn update(State(batcher): State<Arc<InferenceBatcher>>, body: String) -> Response {
    match patch(&batcher, &body) {
        Ok(()) => axum::Json(batching_snapshot(&batcher)).into_response(),
        Err((status, reason)) => (status, reason + "\n").into_response(),
    }
}

/// Applies `body` (model -> partial settings) to `batcher`, all models or none.
pub fn patch(batcher: &InferenceBatcher, body: &str) -> Result<(), (StatusCode, String)> {
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason);
    let patches: HashMap<String, Value> =
        serde_json::from_str(body).map_err(|e| bad(format!("expected {{\"<model>\": {{settings}}}}: {e}")))?;
    let mut updated = Vec::with_capacity(patches.len());
    for (model, fields) in patches {
        let current =
            batcher.settings(&model).ok_or_else(|| (StatusCode::NOT_FOUND, format!("unknown model `{model}`")))?;
        let mut merged = serde_json::to_value(&current).map_err(|e| bad(e.to_string()))?;
        merge(&mut merged, fields);
        let settings: BatchingSettings =
            serde_json::from_value(merged).map_err(|e| bad(format!("model `{model}`: {e}")))?;
        settings.validate().map_err(|e| bad(format!("model `{model}`: {e}")))?;
        updated.push((model, settings));
    }
    for (model, settings) in updated {
        tracing::info!(%model, ?settings, "batch settings changed through the admin endpoint");
        batcher.update_settings(&model, settings).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// JSON merge patch (RFC 7386): objects merge key by key, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::BoxFuture;
    use tokio_util::sync::CancellationToken;

    use super::patch;
    use crate::inference::backend::{BackendError, Embedded, EmbeddingBackend};
    use crate::inference::batcher::{BatchingSettings, InferenceBatcher, ModelQueue, TimeoutAction};

    /// A backend that is never called: these tests only change settings.
    struct Idle;

    impl EmbeddingBackend for Idle {
        fn id(&self) -> &str {
            "idle"
        }
        fn embed(&self, _texts: Vec<String>) -> BoxFuture<'_, Result<Embedded, BackendError>> {
            Box::pin(async { Err(BackendError::Failed { instance: "idle".into(), reason: "not in this test".into() }) })
        }
    }

    fn batcher() -> InferenceBatcher {
        let queue = ModelQueue { name: "m".into(), backend: Arc::new(Idle), settings: BatchingSettings::default() };
        InferenceBatcher::start(vec![queue], CancellationToken::new()).expect("valid")
    }

    #[tokio::test]
    async fn a_patch_changes_only_the_fields_it_names() {
        let batcher = batcher();
        patch(
            &batcher,
            r#"{"m": {"max_batch_size": 16, "preferred_batch_sizes": [8, 16], "max_queue_delay": "25ms",
                            "policies": {"low": {"timeout_action": "reject"}}}}"#,
        )
        .expect("valid patch");
        let settings = batcher.settings("m").unwrap();
        assert_eq!((settings.max_batch_size, settings.preferred_batch_sizes.as_slice()), (16, &[8, 16][..]));
        assert_eq!(settings.max_queue_delay, Duration::from_millis(25));
        assert_eq!(settings.policies.low.timeout_action, TimeoutAction::Reject);
        assert_eq!(settings.policies.low.max_queue_size, BatchingSettings::default().policies.low.max_queue_size);
        assert_eq!(settings.aging_interval, BatchingSettings::default().aging_interval);
    }

    #[tokio::test]
    async fn an_invalid_patch_or_unknown_model_changes_nothing() {
        let batcher = batcher();
        let (status, reason) =
            patch(&batcher, r#"{"m": {"max_batch_size": 8, "preferred_batch_sizes": [32]}}"#).unwrap_err();
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
        assert!(reason.contains("preferred_batch_sizes"), "{reason}");
        assert_eq!(patch(&batcher, r#"{"other": {}}"#).unwrap_err().0, axum::http::StatusCode::NOT_FOUND);
        assert_eq!(
            patch(&batcher, r#"{"m": {"max_batch_sise": 8}}"#).unwrap_err().0,
            axum::http::StatusCode::BAD_REQUEST
        );
        assert_eq!(batcher.settings("m").unwrap(), BatchingSettings::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_admin_batching_over_http_changes_the_running_settings() {
        let batcher = Arc::new(batcher());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let token = CancellationToken::new();
        let server = tokio::spawn(super::serve(listen, batcher.clone(), token.clone()));
        let mut watched = batcher.watch_settings("m").unwrap();
        let url = format!("http://{listen}/admin/batching");
        let (put, get) = tokio::task::spawn_blocking(move || {
            // The server may need a moment to bind.
            let mut put = None;
            let mut last_error = String::new();
            for _ in 0..50 {
                match ureq::put(&url)
                    .config()
                    .http_status_as_error(false)
                    .build()
                    .header("content-type", "application/json")
                    .send(r#"{"m": {"max_batch_size": 8, "preferred_batch_sizes": [8]}}"#)
                {
                    Ok(mut response) => {
                        put = Some((response.status().as_u16(), response.body_mut().read_to_string().unwrap()));
                        break;
                    }
                    Err(error) => {
                        last_error = error.to_string();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            let get = ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap();
            (put.unwrap_or_else(|| panic!("the admin endpoint does not answer: {last_error}")), get)
        })
        .await
        .unwrap();
        assert_eq!(put.0, 200, "{}", put.1);
        let shown: serde_json::Value = serde_json::from_str(&get).unwrap();
        assert_eq!(shown["m"]["max_batch_size"], 8);
        assert_eq!(shown["m"]["max_queue_delay"], "10ms");
        assert!(watched.has_changed().unwrap(), "the watch channel saw the change");
        assert_eq!(watched.borrow_and_update().max_batch_size, 8);
        token.cancel();
        server.await.unwrap().unwrap();
    }
}
