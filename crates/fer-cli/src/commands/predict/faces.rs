//! The faces of one image file: every face the recognizer's detector finds, cropped square
//! with a margin, or (`--no-detect`) the image's centred square; each as FER-sized pixels with
//! its box.

use std::path::Path;

use fer::Recognizer;
use fer_data::face_image::{face_pixels, load_image};
use fer_detect::FaceBox;

/// How faces are taken from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceSource {
    /// Every face the detector finds, cropped square with a margin.
    Detect,
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

/// The faces of one image: where each is, how it was found, and their pixels as the model
/// takes them (48x48 each, back to back).
pub struct Faces {
    pub boxes: Vec<FaceBox>,
    pub origin: FaceOrigin,
    pub pixels: Vec<u8>,
}

impl FaceSource {
    /// The faces of one image file, or why it cannot be read. The file is decoded within the
    /// default image limits (a decompression bomb is refused before it is allocated).
    pub fn faces_of(self, path: &Path, recognizer: &Recognizer) -> Result<Faces, String> {
        if path.is_dir() {
            return Err(format!("{}: cannot read this folder", path.display()));
        }
        let image = load_image(path)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?
            .to_luma8();
        Ok(match self {
            FaceSource::WholeImage => {
                let (width, height) = image.dimensions();
                let side = width.min(height);
                Faces {
                    boxes: vec![FaceBox {
                        x: (width - side) / 2,
                        y: (height - side) / 2,
                        width: side,
                        height: side,
                        score: 0.0,
                    }],
                    origin: FaceOrigin::WholeImage,
                    pixels: face_pixels(&image),
                }
            }
            FaceSource::Detect => {
                let boxes = recognizer.detect_faces(&image);
                let pixels = recognizer.crop_faces(&image, &boxes);
                Faces {
                    boxes,
                    origin: FaceOrigin::Detected,
                    pixels,
                }
            }
        })
    }
}
