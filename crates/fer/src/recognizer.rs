//! [`Recognizer`]: a model and a face detector together, from a photo to each face's
//! emotions in one call.

use candle_core::Device;
use fer_data::Emotion;
use fer_data::face_image::face_pixels;
use fer_detect::{DetectorOptions, FaceBox, FaceDetector, FaceLandmarks};
use fer_model::TrainedModel;
use fer_model::eval::predict_faces;
use image::{DynamicImage, GrayImage};

use crate::error::{Error, Result};
use crate::face_finder::{FaceFinder, FaceSource, Faces};
use crate::source::ModelSource;

/// The longer side of the copy of a photo that faces are searched on by default (crops come
/// from the full photo): see [`DetectorOptions::max_image_side`] for the trade.
pub const DEFAULT_DETECTION_SIDE: u32 = 640;

/// How a [`Recognizer`] finds and crops faces and batches them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizerOptions {
    /// How faces are searched for. Its `max_image_side` ([`DEFAULT_DETECTION_SIDE`] by
    /// default) is what makes large photos fast: detection runs on a copy scaled down to it.
    pub detector: DetectorOptions,
    /// The margin added around a detected box before cropping, as a share of its side
    /// (FER2013's framing, measured: [`fer_detect::DEFAULT_MARGIN`]).
    pub margin: f32,
    /// Turn each detected face that leans more than [`crate::UPRIGHT_DEAD_ZONE_DEGREES`] back to
    /// that lean before cropping, by the tilt of its eyes as MTCNN's O-Net places them
    /// (FER2013's faces are near upright). On by default.
    pub upright: bool,
    /// Faces per forward pass (at least 1).
    pub batch_size: usize,
}

impl Default for RecognizerOptions {
    fn default() -> Self {
        RecognizerOptions {
            detector: DetectorOptions {
                max_image_side: Some(DEFAULT_DETECTION_SIDE),
                ..DetectorOptions::default()
            },
            margin: fer_detect::DEFAULT_MARGIN,
            upright: true,
            batch_size: 64,
        }
    }
}

/// The seven emotion probabilities of one face (they sum to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Emotions {
    /// In [`Emotion`] order: Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
    pub probabilities: [f32; 7],
}

impl Emotions {
    /// The probability of `emotion`.
    pub fn get(&self, emotion: Emotion) -> f32 {
        self.probabilities[usize::from(emotion.label())]
    }

    /// The most likely emotion and its probability (the first on ties).
    pub fn top(&self) -> (Emotion, f32) {
        self.ranked()[0]
    }

    /// Every emotion with its probability, most likely first (ties keep the class order).
    pub fn ranked(&self) -> [(Emotion, f32); 7] {
        let mut ranked = Emotion::ALL.map(|e| (e, self.get(e)));
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

/// One face found in a photo and its emotions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceEmotions {
    /// Where the face is, in the photo's pixels; `score` is the detector's when `source` is
    /// [`FaceSource::Detect`], else 0.
    pub face_box: FaceBox,
    /// Eyes, nose and mouth corners, for a detected face when the recognizer turns faces
    /// upright.
    pub landmarks: Option<FaceLandmarks>,
    pub source: FaceSource,
    pub emotions: Emotions,
}

impl FaceEmotions {
    /// The detector's score (SeetaFace's, not a probability); `None` for a whole image.
    pub fn detection_score(&self) -> Option<f32> {
        (self.source == FaceSource::Detect).then_some(self.face_box.score)
    }
}

/// A model and a face detector: emotions of the faces in photos, or of faces already cropped.
///
/// `Send + Sync`: share one (in an `Arc`) between threads; every call takes `&self`.
/// Faces are classified in batches of [`RecognizerOptions::batch_size`] through the inference
/// path `fer eval` measures (the model's test-time augmentation, the fast CPU kernels).
pub struct Recognizer {
    model: TrainedModel,
    finder: FaceFinder,
    options: RecognizerOptions,
    source: ModelSource,
    device: Device,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("source", &self.source)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Recognizer {
    /// The default built-in model with the default options, on the CPU.
    pub fn builtin() -> Result<Self> {
        Self::open(&ModelSource::default(), RecognizerOptions::default())
    }

    /// The model `source` with `options`, on the CPU.
    pub fn open(source: &ModelSource, options: RecognizerOptions) -> Result<Self> {
        Self::open_on(source, options, Device::Cpu)
    }

    /// The model `source` with `options`, on `device` (e.g. a CUDA device in `cuda` builds).
    pub fn open_on(
        source: &ModelSource,
        options: RecognizerOptions,
        device: Device,
    ) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        let finder = FaceFinder::new(options.detector.clone(), options.margin, options.upright)?;
        let model = source.load(&device)?;
        Ok(Recognizer {
            model,
            finder,
            options,
            source: source.clone(),
            device,
        })
    }

    /// Where the model came from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The options in use.
    pub fn options(&self) -> &RecognizerOptions {
        &self.options
    }

    /// The model (configuration, normalizer, network).
    pub fn model(&self) -> &TrainedModel {
        &self.model
    }

    /// How this recognizer finds and crops faces (usable without it, e.g. to crop the faces
    /// of a labelled dataset).
    pub fn face_finder(&self) -> &FaceFinder {
        &self.finder
    }

    /// The face detector, with the options this recognizer was opened with; derive one with
    /// other options (no re-parsing) by [`FaceDetector::with_options`].
    pub fn detector(&self) -> &FaceDetector {
        self.finder.detector()
    }

    /// The faces in a grey photo, left to right (see [`FaceDetector::detect`]).
    pub fn detect_faces(&self, image: &GrayImage) -> Vec<FaceBox> {
        self.finder.detect_faces(image)
    }

    /// The faces of `image` taken as `source` says, ready for [`Recognizer::classify_found`]
    /// ([`FaceFinder::find_faces`]).
    pub fn find_faces(&self, image: &GrayImage, source: FaceSource) -> Result<Faces> {
        self.finder.find_faces(image, source)
    }

    /// The faces `detector` finds in `image` ([`FaceFinder::find_faces_with`]).
    pub fn find_faces_with(&self, image: &GrayImage, detector: &FaceDetector) -> Result<Faces> {
        self.finder.find_faces_with(image, detector)
    }

    /// O-Net's landmarks for each box when this recognizer turns faces upright, else none.
    pub fn locate_landmarks(
        &self,
        image: &GrayImage,
        boxes: &[FaceBox],
    ) -> Result<Vec<FaceLandmarks>> {
        self.finder.locate_landmarks(image, boxes)
    }

    /// Classifies the faces of several images together (in batches across images) and
    /// returns each image's faces with their emotions, in the same order.
    pub fn classify_found(&self, images: &[&Faces]) -> Result<Vec<Vec<FaceEmotions>>> {
        if let Some(faces) = images
            .iter()
            .find(|faces| faces.pixels.len() != faces.boxes.len() * fer_data::IMAGE_PIXELS)
        {
            return Err(Error::InvalidInput(format!(
                "{} face boxes but {} bytes of pixels ({} per face)",
                faces.boxes.len(),
                faces.pixels.len(),
                fer_data::IMAGE_PIXELS
            )));
        }
        let pixels: Vec<u8> = images
            .iter()
            .flat_map(|faces| faces.pixels.iter().copied())
            .collect();
        let mut emotions = self.classify_pixels(&pixels)?.into_iter();
        Ok(images
            .iter()
            .map(|faces| {
                faces
                    .boxes
                    .iter()
                    .enumerate()
                    .map(|(k, &face_box)| FaceEmotions {
                        face_box,
                        landmarks: faces.landmarks.get(k).copied(),
                        source: faces.source,
                        emotions: emotions.next().expect("one row per face"),
                    })
                    .collect()
            })
            .collect())
    }

    /// Each box of `boxes` cut from `image` with the margin and resized to 48x48, back to back
    /// ([`FaceFinder::crop_faces`]).
    pub fn crop_faces(
        &self,
        image: &GrayImage,
        boxes: &[FaceBox],
        landmarks: &[FaceLandmarks],
    ) -> Vec<u8> {
        self.finder.crop_faces(image, boxes, landmarks)
    }

    /// Every face in `image` with its emotions, left to right; none when no face is found.
    pub fn detect_emotions(&self, image: &DynamicImage) -> Result<Vec<FaceEmotions>> {
        let faces = self.find_faces(&fer_data::face_image::to_grey(image), FaceSource::Detect)?;
        Ok(self.classify_found(&[&faces])?.remove(0))
    }

    /// The emotions of faces that are already cropped, like FER2013's: each image's centred
    /// square, resized to 48x48, is one face.
    pub fn classify_faces(&self, faces: &[GrayImage]) -> Result<Vec<Emotions>> {
        let pixels: Vec<u8> = faces.iter().flat_map(face_pixels).collect();
        self.classify_pixels(&pixels)
    }

    /// The emotions of 48x48 grey faces stored back to back (row-major, 2,304 bytes each, as
    /// in FER2013's `pixels` column).
    pub fn classify_pixels(&self, faces: &[u8]) -> Result<Vec<Emotions>> {
        if !faces.len().is_multiple_of(fer_data::IMAGE_PIXELS) {
            return Err(Error::InvalidInput(format!(
                "{} bytes is not a whole number of 48x48 faces ({} bytes each)",
                faces.len(),
                fer_data::IMAGE_PIXELS
            )));
        }
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let probabilities = predict_faces(
            self.model.model.as_ref(),
            &self.model.normalizer,
            faces,
            &self.device,
            self.options.batch_size,
        )
        .map_err(Error::Inference)?;
        Ok(probabilities
            .into_iter()
            .map(|probabilities| Emotions { probabilities })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UPRIGHT_DEAD_ZONE_DEGREES;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn a_recognizer_can_be_shared_between_threads() {
        assert_send_sync::<Recognizer>();
    }

    #[test]
    fn emotions_rank_and_pick_the_most_likely() {
        let emotions = Emotions {
            probabilities: [0.05, 0.0, 0.05, 0.6, 0.1, 0.05, 0.15],
        };
        assert_eq!(emotions.top(), (Emotion::Happy, 0.6));
        assert_eq!(emotions.get(Emotion::Neutral), 0.15);
        let ranked = emotions.ranked();
        assert_eq!(ranked[1].0, Emotion::Neutral);
        assert_eq!(ranked[2].0, Emotion::Sad);
        assert_eq!(ranked[6].0, Emotion::Disgust);
    }

    #[test]
    fn bad_options_and_inputs_are_errors() {
        let options = RecognizerOptions {
            batch_size: 0,
            ..RecognizerOptions::default()
        };
        let error = Recognizer::open(&ModelSource::default(), options).unwrap_err();
        assert!(error.to_string().contains("batch_size"), "{error}");
        let recognizer = Recognizer::builtin().unwrap();
        let error = recognizer.classify_pixels(&[0u8; 100]).unwrap_err();
        assert!(error.to_string().contains("100 bytes"), "{error}");
        assert!(recognizer.classify_pixels(&[]).unwrap().is_empty());
    }

    /// The public-domain portrait `fer-detect` tests with, as grey pixels.
    fn astronaut() -> GrayImage {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fer-detect/tests/data/astronaut.png"
        );
        image::open(path).unwrap().to_luma8()
    }

    #[test]
    fn a_tilted_face_is_cropped_upright_unless_told_not_to() {
        use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
        let photo = astronaut();
        let upright = Recognizer::builtin().unwrap();
        let as_boxed = Recognizer::open(
            &ModelSource::default(),
            RecognizerOptions {
                upright: false,
                ..RecognizerOptions::default()
            },
        )
        .unwrap();
        let reference = upright.find_faces(&photo, FaceSource::Detect).unwrap();
        assert_eq!(reference.landmarks.len(), 1);
        let own_roll = reference.landmarks[0].roll_degrees();
        assert!(own_roll.abs() < UPRIGHT_DEAD_ZONE_DEGREES, "{own_roll}");

        let turned = rotate_about_center(
            &photo,
            25f32.to_radians(),
            Interpolation::Bilinear,
            Border::Replicate,
        );
        let faces = upright.find_faces(&turned, FaceSource::Detect).unwrap();
        let plain = as_boxed.find_faces(&turned, FaceSource::Detect).unwrap();
        assert_eq!((faces.boxes.len(), plain.boxes.len()), (1, 1));
        assert!(plain.landmarks.is_empty());
        let roll = faces.landmarks[0].roll_degrees();
        assert!((roll - 25.0).abs() < 5.0, "measured roll {roll}");
        // The upright crop is the as-boxed crop turned back to the dead zone's edge.
        let expected = fer_detect::crop_face_upright(
            &turned,
            &faces.boxes[0],
            upright.options().margin,
            roll - UPRIGHT_DEAD_ZONE_DEGREES,
        );
        assert_eq!(faces.pixels, expected.into_raw());
        assert_eq!(
            plain.pixels,
            fer_detect::crop_face(&turned, &plain.boxes[0], as_boxed.options().margin).into_raw()
        );
        assert_ne!(faces.pixels, plain.pixels);
        // And the faces come back with their landmarks.
        let emotions = upright.classify_found(&[&faces, &plain]).unwrap();
        assert_eq!(emotions[0][0].landmarks, Some(faces.landmarks[0]));
        assert_eq!(emotions[1][0].landmarks, None);
    }

    #[test]
    fn a_blank_photo_has_no_faces_and_a_face_has_probabilities() {
        let recognizer = Recognizer::builtin().unwrap();
        let blank = DynamicImage::new_luma8(320, 240);
        assert!(recognizer.detect_emotions(&blank).unwrap().is_empty());
        let face = GrayImage::from_fn(48, 48, |x, y| image::Luma([((x * 5 + y * 3) % 256) as u8]));
        let emotions = recognizer.classify_faces(&[face.clone(), face]).unwrap();
        assert_eq!(emotions.len(), 2);
        assert_eq!(emotions[0], emotions[1]);
        let sum: f32 = emotions[0].probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    }
}
