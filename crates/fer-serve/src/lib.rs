//! `fer serve`: emotions of the faces in images over HTTP, and a web page (photo upload and a
//! live camera view) that uses the same API.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fer_serve::{ServeOptions, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let recognizer = Arc::new(fer::Recognizer::builtin()?);
//! let server = Server::new(recognizer, ServeOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, fer_serve::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Routes ([`Server::router`] mounts them in any axum application):
//! - `POST /v1/analyze`: an image as the raw body, or several as multipart form-data; answers
//!   the JSON of `fer predict --json` ([`fer::json`]).
//! - `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus text), `GET /` (the page).
//!
//! Inference runs on a bounded pool of threads outside the async runtime ([`pool`]): when its
//! queue is full the server answers 503 with `Retry-After` rather than queueing without bound.
//! Every error is a JSON body `{"error": {"code", "message"}}` ([`error`]).

pub mod analyze;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod options;
pub mod page;
pub mod pool;
pub mod server;
pub mod state;
pub mod uploads;

pub use error::{ApiError, ServeError};
pub use options::ServeOptions;
pub use server::{Server, shutdown_signal};

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
