//! [`FaceFinder`]: the faces of an image as the classifier takes them: found by the detector,
//! turned upright by their eyes, cropped with FER2013's margin and resized to 48x48 (or the
//! whole image as one face). A [`crate::Recognizer`] holds one; on its own it crops the faces
//! of a labelled dataset for evaluation.

use fer_data::face_image::face_pixels;
use fer_detect::{DetectorOptions, FaceBox, FaceDetector, FaceLandmarks, LandmarkNet};
use image::GrayImage;

use crate::error::{Error, Result};

/// Below this O-Net probability a box's landmarks do not turn its crop (see
/// [`FaceLandmarks::upright_turn`]).
pub const UPRIGHT_MIN_FACE_PROBABILITY: f32 = 0.5;

/// Tilts beyond this many degrees are not undone: the detector finds faces within about 20
/// degrees of upright, so a larger estimate is more likely O-Net's error than the face's tilt.
pub const UPRIGHT_MAX_ROLL_DEGREES: f32 = 30.0;

/// Faces leaning less than this many degrees are cropped as boxed, and those leaning more are
/// turned back to it: FER2013's faces lean a few degrees either way too (O-Net measures a
/// median of 4.5 degrees on them), and the classifier learned them so. `cargo xtask bench
/// crops` measured 0, 5 and 10 on FER2013 faces pasted upright and at 10 and 20 degrees:
/// within a point of each other and of uncorrected crops on the first two, 3 to 4 points
/// better than uncorrected at 20 degrees; 10 leaves upright faces as they were.
pub const UPRIGHT_DEAD_ZONE_DEGREES: f32 = 10.0;

/// How the faces of an image are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceSource {
    /// Every face the detector finds, cropped square with the margin.
    Detect,
    /// The image is one face already cropped: its centred square (FER2013's framing).
    WholeImage,
}

/// The faces of one image before classification: where each is and its pixels as the model
/// takes them (48x48 each, back to back).
#[derive(Debug, Clone, PartialEq)]
pub struct Faces {
    pub boxes: Vec<FaceBox>,
    /// Each box's landmarks, when the recognizer turns faces upright (else empty).
    pub landmarks: Vec<FaceLandmarks>,
    pub source: FaceSource,
    pub pixels: Vec<u8>,
}

/// The face detector, MTCNN's O-Net when faces are turned upright, and the crop margin.
pub struct FaceFinder {
    detector: FaceDetector,
    /// O-Net, when faces are turned upright.
    landmarks: Option<LandmarkNet>,
    margin: f32,
}

impl std::fmt::Debug for FaceFinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceFinder")
            .field("detector", self.detector.options())
            .field("upright", &self.landmarks.is_some())
            .field("margin", &self.margin)
            .finish()
    }
}

impl FaceFinder {
    /// A detector with `detector`'s options, cropping with `margin` (a share of the box's side,
    /// at most [`fer_detect::MAX_MARGIN`]), turning tilted faces upright when `upright` is set
    /// (see [`crate::RecognizerOptions`]).
    pub fn new(detector: DetectorOptions, margin: f32, upright: bool) -> Result<Self> {
        if !(0.0..=fer_detect::MAX_MARGIN).contains(&margin) {
            return Err(Error::InvalidInput(format!(
                "margin must be between 0 and {}, not {margin}",
                fer_detect::MAX_MARGIN,
            )));
        }
        Ok(FaceFinder {
            detector: FaceDetector::new(detector)?,
            landmarks: upright.then(LandmarkNet::new).transpose()?,
            margin,
        })
    }

    /// The face detector; derive one with other options (no re-parsing) by
    /// [`FaceDetector::with_options`].
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// The faces in a grey photo, left to right (see [`FaceDetector::detect`]).
    pub fn detect_faces(&self, image: &GrayImage) -> Vec<FaceBox> {
        self.detector.detect(image)
    }

    /// The faces of `image` taken as `source` says.
    pub fn find_faces(&self, image: &GrayImage, source: FaceSource) -> Result<Faces> {
        match source {
            FaceSource::Detect => self.find_faces_with(image, &self.detector),
            FaceSource::WholeImage => {
                let (width, height) = image.dimensions();
                let side = width.min(height);
                Ok(Faces {
                    landmarks: Vec::new(),
                    boxes: vec![FaceBox {
                        x: (width - side) / 2,
                        y: (height - side) / 2,
                        width: side,
                        height: side,
                        score: 0.0,
                    }],
                    source,
                    pixels: face_pixels(image),
                })
            }
        }
    }

    /// The faces `detector` finds in `image` (a detector with other options than this
    /// finder's, e.g. another minimum face size), cropped with this finder's margin and turned
    /// upright when it does that.
    pub fn find_faces_with(&self, image: &GrayImage, detector: &FaceDetector) -> Result<Faces> {
        let boxes = detector.detect(image);
        let landmarks = self.locate_landmarks(image, &boxes)?;
        let pixels = self.crop_faces(image, &boxes, &landmarks);
        Ok(Faces {
            boxes,
            landmarks,
            source: FaceSource::Detect,
            pixels,
        })
    }

    /// The largest face the detector finds in `image`, cropped (48x48, 2,304 bytes), or `None`
    /// when it finds none: the one face of a labelled photo.
    pub fn largest_face(&self, image: &GrayImage) -> Result<Option<Vec<u8>>> {
        let boxes = self.detector.detect(image);
        let Some(largest) = boxes
            .iter()
            .max_by_key(|b| u64::from(b.width) * u64::from(b.height))
        else {
            return Ok(None);
        };
        let one = std::slice::from_ref(largest);
        let landmarks = self.locate_landmarks(image, one)?;
        Ok(Some(self.crop_faces(image, one, &landmarks)))
    }

    /// O-Net's landmarks for each box when this finder turns faces upright, else none.
    pub fn locate_landmarks(
        &self,
        image: &GrayImage,
        boxes: &[FaceBox],
    ) -> Result<Vec<FaceLandmarks>> {
        match &self.landmarks {
            Some(net) if !boxes.is_empty() => Ok(net.locate(image, boxes)?),
            _ => Ok(Vec::new()),
        }
    }

    /// Each box of `boxes` cut from `image` with the margin and resized to 48x48, back to back
    /// (the input of [`crate::Recognizer::classify_pixels`]). A box with trusted `landmarks`
    /// (one per box, or none at all) is turned upright by its eyes' tilt.
    pub fn crop_faces(
        &self,
        image: &GrayImage,
        boxes: &[FaceBox],
        landmarks: &[FaceLandmarks],
    ) -> Vec<u8> {
        boxes
            .iter()
            .enumerate()
            .flat_map(|(k, face)| {
                let roll = landmarks.get(k).and_then(|marks| {
                    marks.upright_turn(
                        UPRIGHT_MIN_FACE_PROBABILITY,
                        UPRIGHT_MAX_ROLL_DEGREES,
                        UPRIGHT_DEAD_ZONE_DEGREES,
                    )
                });
                fer_detect::crop_face_upright(image, face, self.margin, roll.unwrap_or(0.0))
                    .into_raw()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_finder_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FaceFinder>();
    }

    #[test]
    fn margins_out_of_range_are_refused_by_value() {
        let err = FaceFinder::new(DetectorOptions::default(), -0.1, false).unwrap_err();
        assert!(
            err.to_string().contains("margin must be between 0 and"),
            "{err}"
        );
    }

    #[test]
    fn an_image_without_a_face_has_no_largest_face() {
        let finder = FaceFinder::new(DetectorOptions::default(), 0.05, true).unwrap();
        let flat = GrayImage::from_pixel(120, 120, image::Luma([128]));
        assert_eq!(finder.largest_face(&flat).unwrap(), None);
    }
}
