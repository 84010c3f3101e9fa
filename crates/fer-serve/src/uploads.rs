//! The images of an analyze request: the raw body (an image content type) or the file parts
//! of a multipart form, read within the body limit; each refused with a JSON error naming it.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;

use crate::error::ApiError;

/// One uploaded image, still encoded.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The multipart file name (or field name); `upload` for a raw body.
    pub name: String,
    pub bytes: Bytes,
}

/// The name of a raw-body upload in answers.
pub const RAW_UPLOAD_NAME: &str = "upload";

/// Reads the images of `request`: at most `max_body` bytes in all and `max_images` images.
pub async fn read_uploads(
    request: Request,
    max_body: usize,
    max_images: usize,
) -> Result<Vec<Upload>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    if declared_length(request.headers()).is_some_and(|length| length > max_body as u64) {
        return Err(too_large(max_body));
    }
    let uploads = match content_type.as_deref() {
        Some(t) if t.starts_with("multipart/form-data") => {
            read_multipart(request, max_body, max_images).await?
        }
        None => read_raw(request, max_body).await?,
        Some(t) if t.starts_with("image/") || t.starts_with("application/octet-stream") => {
            read_raw(request, max_body).await?
        }
        Some(other) => {
            discard_upload(request, max_body).await;
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type `{other}` is not an image: send the image as the body with \
                     its type (e.g. Content-Type: image/jpeg), or as multipart/form-data"
                ),
            ));
        }
    };
    if uploads.is_empty() {
        return Err(ApiError::bad_request(
            "the request has no image: the body is empty or the form has no file",
        ));
    }
    Ok(uploads)
}

/// Reads the body of a request that is refused before its upload was read, and drops it, so
/// that a client still sending gets the answer rather than a reset connection (hyper closes a
/// connection whose request body was left unread). A body declared or found larger than
/// `max_body` is left where it is: that client is refused at once. Callers bound the time.
pub async fn discard_upload(request: Request, max_body: usize) {
    if declared_length(request.headers()).is_some_and(|length| length > max_body as u64) {
        return;
    }
    let mut body = request.into_body();
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len();
            if read > max_body {
                return;
            }
        }
    }
}

/// The request's `Content-Length`, when it has a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

fn too_large(max_body: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the upload is larger than this server's limit of {} bytes (--max-body)",
            max_body
        ),
    )
}

/// Whether a body error is the size limit (else the client stopped sending, or sent garbage).
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

async fn read_raw(request: Request, max_body: usize) -> Result<Vec<Upload>, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), max_body)
        .await
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large(max_body)
            } else {
                ApiError::bad_request(format!("the upload could not be read: {e}"))
            }
        })?;
    Ok(if bytes.is_empty() {
        Vec::new()
    } else {
        vec![Upload {
            name: RAW_UPLOAD_NAME.into(),
            bytes,
        }]
    })
}

async fn read_multipart(
    request: Request,
    max_body: usize,
    max_images: usize,
) -> Result<Vec<Upload>, ApiError> {
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::bad_request(format!("malformed multipart request: {}", e.body_text()))
    })?;
    let mut uploads = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large(max_body));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "malformed multipart body: {}",
                    e.body_text()
                )));
            }
        };
        let is_file = field.file_name().is_some()
            || field
                .content_type()
                .is_some_and(|t| t.starts_with("image/") || t == "application/octet-stream");
        if !is_file {
            continue; // a text field of the form
        }
        let name = field
            .file_name()
            .or(field.name())
            .unwrap_or("file")
            .to_string();
        if uploads.len() == max_images {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_images",
                format!("more than {max_images} images in one request (--max-images)"),
            ));
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(max_body)
            } else {
                ApiError::bad_request(format!(
                    "{name}: the upload could not be read: {}",
                    e.body_text()
                ))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(format!("{name}: the file is empty")));
        }
        uploads.push(Upload { name, bytes });
    }
    Ok(uploads)
}
