//! What `fer predict` finds in each file: its faces with their boxes and class probabilities,
//! or why the file could not be read.

use std::path::PathBuf;

use fer_data::Emotion;
use fer_detect::FaceBox;

use super::faces::FaceOrigin;

/// One face of one image and the model's probabilities for it.
#[derive(Debug, Clone)]
pub struct FacePrediction {
    /// Where in the image the face was taken from, in the image's pixels.
    pub face_box: FaceBox,
    pub origin: FaceOrigin,
    pub probabilities: [f32; 7],
}

impl FacePrediction {
    /// The detector's score (SeetaFace's, not a probability); `None` with --no-detect.
    pub fn detection_score(&self) -> Option<f32> {
        (self.origin == FaceOrigin::Detected).then_some(self.face_box.score)
    }
}

/// What became of one input file.
#[derive(Debug, Clone)]
pub struct ImagePrediction {
    pub file: PathBuf,
    /// The file's faces (none when no face was found), or why it could not be read.
    pub result: Result<Vec<FacePrediction>, String>,
}

/// Classes sorted by probability, most likely first (ties keep the class order).
pub fn ranked(probabilities: &[f32; 7]) -> Vec<(Emotion, f32)> {
    fer::Emotions {
        probabilities: *probabilities,
    }
    .ranked()
    .to_vec()
}

#[cfg(test)]
pub mod fixtures {
    //! Predictions for the output formats' tests.

    use super::*;

    /// `result` for the file `dir/a,b.png` (a comma, for CSV quoting).
    pub fn prediction(result: Result<Vec<FacePrediction>, String>) -> ImagePrediction {
        ImagePrediction {
            file: PathBuf::from("dir/a,b.png"),
            result,
        }
    }

    /// A detected face, most likely Happy, then Neutral, then Sad.
    pub fn face() -> FacePrediction {
        FacePrediction {
            face_box: FaceBox {
                x: 1,
                y: 2,
                width: 30,
                height: 30,
                score: 12.5,
            },
            origin: FaceOrigin::Detected,
            probabilities: [0.05, 0.0, 0.05, 0.6, 0.1, 0.05, 0.15],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::face;
    use super::*;

    #[test]
    fn ranking_puts_the_most_likely_first() {
        let ranked = ranked(&face().probabilities);
        assert_eq!(ranked[0].0, Emotion::Happy);
        assert_eq!(ranked[1].0, Emotion::Neutral);
        assert_eq!(ranked[2].0, Emotion::Sad);
    }

    #[test]
    fn only_detected_faces_have_a_detection_score() {
        let detected = face();
        assert_eq!(detected.detection_score(), Some(12.5));
        let whole = FacePrediction {
            origin: FaceOrigin::WholeImage,
            ..detected
        };
        assert_eq!(whole.detection_score(), None);
    }
}
