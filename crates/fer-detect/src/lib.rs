//! Face detection for emotion recognition on photos: find faces, crop them square to FER2013's
//! 48x48, and draw the results.
//!
//! The detector is SeetaFace's frontal cascade (the `rustface` port) with its model embedded in
//! the binary ([`SEETA_MODEL`]); MTCNN's O-Net ([`LandmarkNet`], weights in [`ONET_MODEL`])
//! places eyes, nose and mouth corners in each box, and the eyes' tilt turns the crop upright
//! ([`crop_face_upright`]). Nothing is downloaded or read at run time.
//!
//! ```no_run
//! use fer_detect::{
//!     Annotation, DEFAULT_MARGIN, DetectorOptions, FER_SIZE, FaceDetector, annotate, crop_face,
//! };
//!
//! let photo = image::open("photo.jpg").expect("a photo");
//! let detector = FaceDetector::new(DetectorOptions::default())?;
//! let grey = photo.to_luma8();
//! let faces = detector.detect(&grey);
//! let mut annotations = Vec::new();
//! for face in &faces {
//!     let input = crop_face(&grey, face, DEFAULT_MARGIN); // 48x48, for the classifier
//!     assert_eq!(input.dimensions(), (FER_SIZE, FER_SIZE));
//!     annotations.push(Annotation::new(*face, "face", face.score));
//! }
//! annotate(&photo.to_rgb8(), &annotations).save("annotated.png").unwrap();
//! # Ok::<(), fer_detect::Error>(())
//! ```
//!
//! Invariants: returned boxes lie inside the image and are never empty; detection, cropping and
//! drawing never panic on any image (empty, tiny, huge boxes, boxes at borders); the crate
//! depends on candle only for O-Net and never on polars or another fer crate.

mod annotate;
mod crop;
mod detector;
mod error;
mod landmarks;

pub use annotate::{Annotation, DEFAULT_COLOR, LABEL_FONT, PALETTE, annotate, label_font};
pub use crop::{
    DEFAULT_MARGIN, FER_SIZE, MAX_MARGIN, SquareRegion, crop_face, crop_face_upright, crop_square,
    crop_square_upright,
};
pub use detector::{DetectorOptions, FaceBox, FaceDetector, SEETA_MODEL};
pub use error::{Error, Result};
pub use landmarks::{FaceLandmarks, LandmarkNet, ONET_MODEL, Point};

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
