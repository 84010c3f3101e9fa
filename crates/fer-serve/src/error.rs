//! Errors: [`ApiError`], what a client is answered (a status and a JSON body), and
//! [`ServeError`], why the server could not start.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the server could not be set up or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An option is out of range.
    #[error("invalid server option {name}: {message}")]
    InvalidOption { name: &'static str, message: String },
    /// The built-in models' recorded figures could not be read (a corrupt build).
    #[error(transparent)]
    Model(#[from] fer::Error),
    /// Listening or serving failed (the address in use, say).
    #[error("server I/O failed")]
    Io(#[from] std::io::Error),
}

/// An error answer: `{"error": {"code": CODE, "message": MESSAGE}}` with its status, and
/// `Retry-After` for a busy server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name (`bad_image`, `too_large`, `busy`, ...).
    pub code: &'static str,
    /// What went wrong, for people; names the upload or field it is about.
    pub message: String,
    /// Seconds to wait before trying again (503 answers).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed (a bad query, a broken multipart body, no image).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 503: every worker is busy and the queue is full.
    pub fn busy(retry_after: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is busy: try again shortly",
            )
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Middleware: gives the answers the framework makes itself (404 for an unknown route, 405
/// for a wrong method, ...) the same JSON error body as the API's own.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_string();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    Response::from_parts(parts, Body::from(body))
}
