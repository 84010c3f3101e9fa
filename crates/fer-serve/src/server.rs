//! [`Server`]: the routes, their layers (tracing, metrics, JSON errors, CORS, token, body
//! limit) and the shared state, served until a shutdown signal lets in-flight requests finish.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use fer::{ModelSource, Recognizer};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::analyze::analyze;
use crate::auth::{RequiredToken, TokenGuard, require_token};
use crate::error::{ApiError, ServeError, json_errors};
use crate::metrics::{Metrics, track};
use crate::options::ServeOptions;
use crate::page::page;
use crate::pool::InferencePool;
use crate::state::AppState;

/// The HTTP server: a recognizer behind the routes of this crate.
pub struct Server {
    state: Arc<AppState>,
}

/// How answers name a model: `builtin:NAME`, or the run directory's or file's own name
/// (clients do not learn the server's paths).
pub fn public_model_name(source: &ModelSource) -> String {
    match source {
        ModelSource::Path(path) => path
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
        builtin => builtin.to_string(),
    }
}

impl Server {
    /// A server for `recognizer` with `options` (checked) and its worker threads started.
    pub fn new(recognizer: Arc<Recognizer>, options: ServeOptions) -> Result<Self, ServeError> {
        options.validate()?;
        let metrics = Arc::new(Metrics::default());
        let pool = InferencePool::new(
            options.workers,
            options.queue_capacity,
            metrics.queue_depth.clone(),
        );
        let model_name = public_model_name(recognizer.source());
        let models = json!({"serving": model_name, "models": fer::json::builtin_models()?});
        Ok(Server {
            state: Arc::new(AppState {
                recognizer,
                options,
                pool,
                metrics,
                model_name,
                models,
            }),
        })
    }

    /// The routes with their layers, to serve or to mount in another axum application.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.state);
        let token = TokenGuard {
            token: RequiredToken(state.options.token.as_deref().map(Arc::from)),
            max_body_bytes: state.options.max_body_bytes,
            drain_time: state.options.request_timeout,
        };
        let api = Router::new()
            .route("/v1/analyze", post(analyze))
            .route("/v1/models", get(models))
            .route("/metrics", get(metrics))
            .route_layer(middleware::from_fn_with_state(token, require_token))
            .with_state(Arc::clone(&state));
        let mut router = Router::new()
            .route("/", get(page))
            .route("/healthz", get(healthz))
            .merge(api)
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(state.options.max_body_bytes));
        if let Some(origin) = &state.options.cors_origin {
            let origin = HeaderValue::from_str(origin).expect("checked by ServeOptions::validate");
            router = router.layer(
                CorsLayer::new()
                    .allow_origin(origin)
                    .allow_methods([Method::GET, Method::POST])
                    .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                    .expose_headers([header::RETRY_AFTER]),
            );
        }
        router
            .layer(middleware::map_response(json_errors))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state.metrics),
                track,
            ))
            .layer(TraceLayer::new_for_http())
    }

    /// Serves on `listener` until `shutdown` completes; requests in flight then finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(app): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(app.models.clone())
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such route: see GET /v1/models, POST /v1/analyze, GET /healthz, GET /metrics, GET /",
    )
}
