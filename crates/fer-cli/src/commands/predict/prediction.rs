//! What `fer predict` finds in each file: its faces with their boxes and emotions, or why the
//! file could not be read.

use std::path::PathBuf;

use fer::FaceEmotions;

/// What became of one input file.
#[derive(Debug, Clone)]
pub struct ImagePrediction {
    pub file: PathBuf,
    /// The file's faces (none when no face was found), or why it could not be read.
    pub result: Result<Vec<FaceEmotions>, String>,
}

#[cfg(test)]
pub mod fixtures {
    //! Predictions for the output formats' tests.

    use super::*;
    use fer::{Emotions, FaceBox, FaceSource};

    /// `result` for the file `dir/a,b.png` (a comma, for CSV quoting).
    pub fn prediction(result: Result<Vec<FaceEmotions>, String>) -> ImagePrediction {
        ImagePrediction {
            file: PathBuf::from("dir/a,b.png"),
            result,
        }
    }

    /// A detected face, most likely Happy, then Neutral, then Sad.
    pub fn face() -> FaceEmotions {
        FaceEmotions {
            face_box: FaceBox {
                x: 1,
                y: 2,
                width: 30,
                height: 30,
                score: 12.5,
            },
            landmarks: None,
            source: FaceSource::Detect,
            emotions: Emotions {
                probabilities: [0.05, 0.0, 0.05, 0.6, 0.1, 0.05, 0.15],
            },
        }
    }
}
