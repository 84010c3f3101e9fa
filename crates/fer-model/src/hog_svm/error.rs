//! [`HogSvmError`]: what can go wrong training, saving or loading the HOG + SVM baseline.

use fer_data::{IMAGE_PIXELS, Split};

use crate::checkpoint::CheckpointError;

/// Errors of HOG-SVM training, prediction and run directories.
#[derive(Debug, thiserror::Error)]
pub enum HogSvmError {
    #[error("invalid HOG-SVM configuration: {0}")]
    Config(String),
    #[error("no {0} images to {1}")]
    EmptySplit(Split, &'static str),
    #[error("an image must have {IMAGE_PIXELS} pixels (48x48), this one has {0}")]
    ImageSize(usize),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}
