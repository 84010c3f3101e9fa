//! Facial expression recognition in one call: faces found in a photo, each with the
//! probabilities of seven emotions, from a model built into the library.
//!
//! ```
//! use fer::{Emotion, Recognizer};
//!
//! let recognizer = Recognizer::builtin()?;
//! # let photo = image::DynamicImage::new_luma8(320, 240);
//! // let photo = image::open("photo.jpg")?;
//! for face in recognizer.detect_emotions(&photo)? {
//!     let (emotion, probability) = face.emotions.top();
//!     let b = face.face_box;
//!     println!("face at ({}, {}) {}x{}: {emotion} {:.0}%", b.x, b.y, b.width, b.height, 100.0 * probability);
//! }
//!
//! // Faces that are already cropped (any size: the centred square is taken):
//! # let face = image::GrayImage::new(48, 48);
//! let emotions = recognizer.classify_faces(&[face])?;
//! let total: f32 = emotions[0].probabilities.iter().sum();
//! assert!((total - 1.0).abs() < 1e-4);
//! println!("{:?}", emotions[0].ranked()[..3].to_vec());
//! # Ok::<(), fer::Error>(())
//! ```
//!
//! The built-in models are listed in [`BUILTIN_MODELS`] (`fer models` on the command line);
//! their model card is `models/README.md` in this crate. A model trained with `fer train` or
//! `cargo xtask pipeline` opens with [`Recognizer::open`] and [`ModelSource::Path`].
//!
//! The README's example, compiled as a doc-test:
#![doc = include_str!("../README.md")]
//!
//! This crate joins the pipeline's stages for users: `fer-detect` finds and crops faces,
//! `fer-model` classifies them through the same inference path `fer eval` measures.

mod builtin;
mod error;
mod face_finder;
pub mod json;
mod recognizer;
mod source;

pub use builtin::{BUILTIN_MODELS, BuiltinModel, BuiltinNetwork, DEFAULT_BUILTIN};
pub use error::{Error, Result};
pub use face_finder::{
    FaceFinder, FaceSource, Faces, UPRIGHT_DEAD_ZONE_DEGREES, UPRIGHT_MAX_ROLL_DEGREES,
    UPRIGHT_MIN_FACE_PROBABILITY,
};
pub use fer_data::Emotion;
pub use fer_detect::{DetectorOptions, FaceBox, FaceDetector, FaceLandmarks, Point};
/// The `image` crate this one decodes with (`fer::image::open`), re-exported so that versions match.
pub use image;
pub use recognizer::{
    DEFAULT_DETECTION_SIDE, Emotions, FaceEmotions, Recognizer, RecognizerOptions,
};
pub use source::ModelSource;

pub use fer_data::face_image::{ImageLimits, decode_grey_image, decode_image, to_grey};

/// Decodes an image file (any format this build reads, by content) within the default
/// [`ImageLimits`], and turns it upright as its Exif orientation says; errors name the file.
pub fn open_image(path: impl AsRef<std::path::Path>) -> Result<image::DynamicImage> {
    Ok(fer_data::face_image::load_image(path.as_ref())?)
}

/// [`open_image`] as grey, the form faces are found and classified in (a JPEG's luma is
/// decoded directly, without its colour; other images are converted by [`to_grey`]).
pub fn open_grey_image(path: impl AsRef<std::path::Path>) -> Result<image::GrayImage> {
    Ok(fer_data::face_image::load_grey_image(path.as_ref())?)
}
