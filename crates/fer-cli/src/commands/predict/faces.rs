//! The faces of one image file: every face the detector finds, cropped square with a margin,
//! or (`--no-detect`) the image's centred square; each as FER-sized pixels with its box.

use std::path::Path;

use fer_data::face_image::{face_pixels, load_image};
use fer_detect::{FaceBox, FaceDetector};

/// How faces are taken from an image.
pub enum FaceSource {
    /// Every face the detector finds, cropped square with a margin.
    Detect { detector: FaceDetector, margin: f32 },
    /// The whole image is one face: its centred square (pre-cropped faces).
    WholeImage,
}

/// How a face was taken from its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceOrigin {
    /// Found by the detector: the box's `score` is the detector's.
    Detected,
    /// The image's centred square (`--no-detect`): the box's `score` means nothing (0).
    WholeImage,
}

/// One face of an image: where it is, how it was found, and its pixels as the model takes them.
pub struct Face {
    pub face_box: FaceBox,
    pub origin: FaceOrigin,
    pub pixels: Vec<u8>,
}

impl FaceSource {
    /// The faces of one image file, or why it cannot be read.
    pub fn faces_of(&self, path: &Path) -> Result<Vec<Face>, String> {
        if path.is_dir() {
            return Err(format!("{}: cannot read this folder", path.display()));
        }
        let image = load_image(path)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?
            .to_luma8();
        match self {
            FaceSource::WholeImage => {
                let (width, height) = image.dimensions();
                let side = width.min(height);
                let face_box = FaceBox {
                    x: (width - side) / 2,
                    y: (height - side) / 2,
                    width: side,
                    height: side,
                    score: 0.0,
                };
                Ok(vec![Face {
                    face_box,
                    origin: FaceOrigin::WholeImage,
                    pixels: face_pixels(&image),
                }])
            }
            FaceSource::Detect { detector, margin } => Ok(detector
                .detect(&image)
                .into_iter()
                .map(|face_box| Face {
                    face_box,
                    origin: FaceOrigin::Detected,
                    pixels: fer_detect::crop_face(&image, &face_box, *margin).into_raw(),
                })
                .collect()),
        }
    }
}
