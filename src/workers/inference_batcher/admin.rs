//! The admin endpoint of the inference batcher: the batch settings in force on this instance.
//!
//! - `GET /admin/batching`: every model's current settings, as JSON (durations as `"10ms"`).
//!
//! `curl 127.0.0.1:9480/admin/batching`
//!
//! It is read-only and listens on loopback only (`workers.inference.admin_listen`): it has no
//! authentication. Settings change through the gateway (`PUT /v1/admin/batching/{model}`,
//! operator role, audited), which every batcher follows ([`super::overrides`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::batching_snapshot;
use crate::inference::batcher::InferenceBatcher;

/// The router, for serving or for tests.
pub fn router(batcher: Arc<InferenceBatcher>) -> Router {
    Router::new().route("/admin/batching", get(current)).with_state(batcher)
}

/// Serves the admin endpoint on `listen` until `token` is cancelled.
pub async fn serve(
    listen: SocketAddr,
    batcher: Arc<InferenceBatcher>,
    token: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "batch settings admin endpoint: GET /admin/batching");
    axum::serve(listener, router(batcher)).with_graceful_shutdown(token.cancelled_owned()).await
}

async fn current(State(batcher): State<Arc<InferenceBatcher>>) -> Response {
    axum::Json(batching_snapshot(&batcher)).into_response()
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::BoxFuture;
    use tokio_util::sync::CancellationToken;

    use crate::inference::backend::{BackendError, Embedded, EmbeddingBackend};
    use crate::inference::batcher::{BatchingSettings, InferenceBatcher, ModelQueue};

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

    /// A batcher of one model, `m`, with the default settings.
    pub(in crate::workers::inference_batcher) fn batcher() -> InferenceBatcher {
        let queue = ModelQueue { name: "m".into(), backend: Arc::new(Idle), settings: BatchingSettings::default() };
        InferenceBatcher::start(vec![queue], CancellationToken::new()).expect("valid")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_admin_batching_shows_the_settings_and_nothing_else_is_served() {
        let batcher = Arc::new(batcher());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let token = CancellationToken::new();
        let server = tokio::spawn(super::serve(listen, batcher.clone(), token.clone()));
        let url = format!("http://{listen}/admin/batching");
        let (get, put) = tokio::task::spawn_blocking(move || {
            // The server may need a moment to bind.
            let mut last_error = String::new();
            for _ in 0..50 {
                match ureq::get(&url).call() {
                    Ok(mut response) => {
                        let get = response.body_mut().read_to_string().unwrap();
                        let put = ureq::put(&url)
                            .config()
                            .http_status_as_error(false)
                            .build()
                            .send(r#"{"m": {"max_batch_size": 8}}"#)
                            .unwrap()
                            .status()
                            .as_u16();
                        return (get, put);
                    }
                    Err(error) => {
                        last_error = error.to_string();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            panic!("the admin endpoint does not answer: {last_error}")
        })
        .await
        .unwrap();
        let shown: serde_json::Value = serde_json::from_str(&get).unwrap();
        assert_eq!(shown["m"]["max_queue_delay"], "10ms");
        assert_eq!(put, 405, "changes go through the gateway, with a role and an audit event");
        assert_eq!(batcher.settings("m").unwrap(), BatchingSettings::default());
        token.cancel();
        server.await.unwrap().unwrap();
    }
}
