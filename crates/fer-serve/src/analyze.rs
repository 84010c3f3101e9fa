//! `POST /v1/analyze`: the faces in the uploaded images and their emotions, as the JSON of
//! `fer predict --json`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use fer::{DetectorOptions, FaceDetector, FaceSource, Faces, ImageLimits, Recognizer};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::pool::PoolError;
use crate::state::AppState;
use crate::uploads::{Upload, discard_upload, read_uploads};

/// The query options of an analyze request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeQuery {
    /// Find faces (the default); `false` takes each image as one cropped face.
    pub detect: Option<bool>,
    /// How many emotions each face lists, most likely first: 1 to 7, default 3.
    pub top: Option<u8>,
    /// The smallest face to find, in pixels (at least 20; default the server's).
    pub min_face: Option<u32>,
}

/// The smallest image side analysed: the detector's smallest face.
pub const MIN_IMAGE_SIDE: u32 = 20;

/// What one request asks for, checked.
pub struct Settings {
    source: FaceSource,
    detector: FaceDetector,
    top: usize,
}

impl AnalyzeQuery {
    fn settings(&self, recognizer: &Recognizer) -> Result<Settings, ApiError> {
        let top = self.top.unwrap_or(3);
        if !(1..=7).contains(&top) {
            return Err(ApiError::bad_request(format!(
                "top must be between 1 and 7, not {top}"
            )));
        }
        let base = recognizer.detector();
        let detector = match self.min_face {
            None => base.clone(),
            Some(min_face) => base
                .with_options(DetectorOptions {
                    min_face_size: min_face,
                    ..base.options().clone()
                })
                .map_err(|e| ApiError::bad_request(format!("min_face: {e}")))?,
        };
        Ok(Settings {
            source: if self.detect.unwrap_or(true) {
                FaceSource::Detect
            } else {
                FaceSource::WholeImage
            },
            detector,
            top: usize::from(top),
        })
    }
}

/// The handler: reads the uploads, then decodes, detects and classifies them on the pool.
pub async fn analyze(
    State(app): State<Arc<AppState>>,
    query: Result<Query<AnalyzeQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let options = &app.options;
    let deadline = tokio::time::Instant::now() + options.request_timeout;
    let settings = query
        .map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))
        .and_then(|Query(query)| query.settings(&app.recognizer));
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            let drain = discard_upload(request, options.max_body_bytes);
            let _ = tokio::time::timeout_at(deadline, drain).await;
            return Err(error);
        }
    };
    let seconds = options.request_timeout.as_secs_f64();
    let uploads = tokio::time::timeout_at(
        deadline,
        read_uploads(request, options.max_body_bytes, options.max_images),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the upload took longer than this server's limit of {seconds} s"),
        )
    })??;
    let worker_app = Arc::clone(&app);
    let work = app
        .pool
        .run(move || analyze_uploads(&worker_app, uploads, &settings));
    let answer = tokio::time::timeout_at(deadline, work).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the analysis took longer than this server's limit of {seconds} s"),
        )
    })?;
    match answer {
        Ok(result) => result.map(Json),
        Err(PoolError::Busy) => Err(ApiError::busy(app.options.retry_after_seconds)),
        Err(error) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )),
    }
}

/// One upload decoded and its faces found, or the error it is answered with.
fn find_faces(app: &AppState, upload: &Upload, settings: &Settings) -> Result<Faces, ApiError> {
    let limits = ImageLimits {
        max_pixels: app.options.max_image_pixels,
        // Room for 16-bit RGBA at the pixel limit, and the decoder's own buffers.
        max_alloc: app.options.max_image_pixels * 8 + (64 << 20),
    };
    let grey = fer::decode_grey_image(&upload.bytes, Path::new(&upload.name), &limits).map_err(
        |error| match error {
            fer_data::Error::ImageTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                error.to_string(),
            ),
            error => ApiError::new(StatusCode::BAD_REQUEST, "bad_image", error.to_string()),
        },
    )?;
    if grey.width().min(grey.height()) < MIN_IMAGE_SIDE {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_small",
            format!(
                "{}: a {}x{} image is too small to hold a face (at least {MIN_IMAGE_SIDE} pixels \
                 on each side)",
                upload.name,
                grey.width(),
                grey.height()
            ),
        ));
    }
    let faces = match settings.source {
        FaceSource::Detect => app.recognizer.find_faces_with(&grey, &settings.detector),
        FaceSource::WholeImage => app.recognizer.find_faces(&grey, FaceSource::WholeImage),
    }
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{}: {error}", upload.name),
        )
    })?;
    if faces.boxes.len() > app.options.max_faces {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_faces",
            format!(
                "{}: {} faces found, more than this server's limit of {} (--max-faces)",
                upload.name,
                faces.boxes.len(),
                app.options.max_faces
            ),
        ));
    }
    Ok(faces)
}

/// The answer for all uploads of a request: every image's entry (its faces, or its error);
/// an error answer when no image could be read.
fn analyze_uploads(
    app: &AppState,
    uploads: Vec<Upload>,
    settings: &Settings,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let found: Vec<Result<Faces, ApiError>> = uploads
        .iter()
        .map(|upload| find_faces(app, upload, settings))
        .collect();
    if let Some(Err(first)) = found.first()
        && found.iter().all(Result::is_err)
    {
        return Err(first.clone());
    }
    let readable: Vec<&Faces> = found.iter().flatten().collect();
    let classified = app.recognizer.classify_found(&readable).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("inference failed: {e}"),
        )
    })?;
    let mut classified = classified.into_iter();
    let entries: Vec<Value> = uploads
        .iter()
        .zip(&found)
        .map(|(upload, faces)| match faces {
            Ok(_) => {
                let faces = classified.next().expect("one entry per readable image");
                app.metrics.faces.inc_by(faces.len() as u64);
                fer::json::image_entry(&upload.name, Ok(&faces), settings.top)
            }
            Err(error) => fer::json::image_entry(&upload.name, Err(&error.message), settings.top),
        })
        .collect();
    app.metrics.images.inc_by(readable.len() as u64);
    app.metrics
        .inference_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(fer::json::prediction_document(&app.model_name, entries))
}
