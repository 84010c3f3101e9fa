//! [`ServeOptions`]: the server's limits and switches, with defaults for a server on loopback.

use std::time::Duration;

use crate::error::ServeError;

/// How the server limits and protects itself. [`Default`] suits a local server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Largest request body in bytes (all images of a request together). Default 20 MiB.
    pub max_body_bytes: usize,
    /// Largest image in pixels (width x height), checked from its header before decoding, so
    /// that a decompression bomb is refused without being allocated. Default 40 megapixels.
    pub max_image_pixels: u64,
    /// Most images in one multipart request. Default 16.
    pub max_images: usize,
    /// Most faces in one image; an image with more is answered with an error naming the
    /// count. Default 64.
    pub max_faces: usize,
    /// Time limit for a whole request: reading the upload, waiting in the queue, inference.
    /// Default 30 s.
    pub request_timeout: Duration,
    /// Threads that decode, detect and classify (each request on one). Default: the number
    /// of CPUs.
    pub workers: usize,
    /// Requests that may wait for a worker; one more is refused with 503. Default 32.
    pub queue_capacity: usize,
    /// When set, `/v1/*` and `/metrics` need `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// When set, browsers on this origin (e.g. `https://example.org`) may call the API
    /// (CORS); otherwise no cross-origin access is granted.
    pub cors_origin: Option<String>,
    /// The seconds a 503 answer tells the client to wait (`Retry-After`). Default 1.
    pub retry_after_seconds: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body_bytes: 20 << 20,
            max_image_pixels: 40_000_000,
            max_images: 16,
            max_faces: 64,
            request_timeout: Duration::from_secs(30),
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            queue_capacity: 32,
            token: None,
            cors_origin: None,
            retry_after_seconds: 1,
        }
    }
}

impl ServeOptions {
    /// Checks every limit is usable; the error names the option.
    pub fn validate(&self) -> Result<(), ServeError> {
        let invalid =
            |name: &'static str, message: String| ServeError::InvalidOption { name, message };
        if self.max_body_bytes < 1024 {
            return Err(invalid(
                "max_body_bytes",
                format!("{} bytes is too small (at least 1024)", self.max_body_bytes),
            ));
        }
        if self.max_image_pixels < 48 * 48 {
            return Err(invalid(
                "max_image_pixels",
                format!("{} is below one 48x48 face", self.max_image_pixels),
            ));
        }
        for (name, value) in [
            ("max_images", self.max_images),
            ("max_faces", self.max_faces),
            ("workers", self.workers),
            ("queue_capacity", self.queue_capacity),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1".into()));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request_timeout", "must be more than 0".into()));
        }
        if let Some(token) = &self.token
            && (token.len() < 8 || token.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(invalid(
                "token",
                "must be at least 8 characters, without spaces or control characters".into(),
            ));
        }
        if let Some(origin) = &self.cors_origin
            && (!(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
                || axum::http::HeaderValue::from_str(origin).is_err())
        {
            return Err(invalid(
                "cors_origin",
                format!("`{origin}` is not an origin such as https://example.org"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_option() {
        ServeOptions::default().validate().unwrap();
        let bad = |options: ServeOptions| options.validate().unwrap_err().to_string();
        let error = bad(ServeOptions {
            workers: 0,
            ..ServeOptions::default()
        });
        assert!(error.contains("workers"), "{error}");
        let error = bad(ServeOptions {
            token: Some("short".into()),
            ..ServeOptions::default()
        });
        assert!(error.contains("token"), "{error}");
        let error = bad(ServeOptions {
            cors_origin: Some("example.org".into()),
            ..ServeOptions::default()
        });
        assert!(error.contains("cors_origin"), "{error}");
    }
}
