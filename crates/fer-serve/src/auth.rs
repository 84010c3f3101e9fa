//! The optional bearer token: when the server has one, API requests must carry
//! `Authorization: Bearer TOKEN` (compared in constant time).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::uploads::discard_upload;

/// The token requests must present; `None` lets every request through.
#[derive(Clone)]
pub struct RequiredToken(pub Option<Arc<str>>);

impl RequiredToken {
    /// Whether `authorization` (the header's value) carries the token.
    pub fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = &self.0 else {
            return true;
        };
        let presented = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        presented.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// The token middleware's state: the token, and how much of a refused request's upload it
/// reads and discards before answering.
#[derive(Clone)]
pub struct TokenGuard {
    pub token: RequiredToken,
    /// A refused upload up to this size is read to its end (and dropped), so that the client
    /// gets the 401 instead of a connection reset while it is still sending.
    pub max_body_bytes: usize,
    /// The longest that reading a refused upload may take.
    pub drain_time: Duration,
}

/// Middleware: 401 with a JSON error and `WWW-Authenticate: Bearer` for a request without
/// the token.
pub async fn require_token(
    State(guard): State<TokenGuard>,
    request: Request,
    next: Next,
) -> Response {
    if guard
        .token
        .accepts(request.headers().get(header::AUTHORIZATION))
    {
        return next.run(request).await;
    }
    let drain = discard_upload(request, guard.max_body_bytes);
    let _ = tokio::time::timeout(guard.drain_time, drain).await;
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this server needs a token: send `Authorization: Bearer TOKEN`",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let open = RequiredToken(None);
        assert!(open.accepts(None));
        let token = RequiredToken(Some("s3cret-token".into()));
        assert!(token.accepts(Some(&HeaderValue::from_static("Bearer s3cret-token"))));
        assert!(!token.accepts(None));
        assert!(!token.accepts(Some(&HeaderValue::from_static("Bearer s3cret-toke"))));
        assert!(!token.accepts(Some(&HeaderValue::from_static("Bearer s3cret-token2"))));
        assert!(!token.accepts(Some(&HeaderValue::from_static("s3cret-token"))));
        assert!(!token.accepts(Some(&HeaderValue::from_static("Basic s3cret-token"))));
    }
}
