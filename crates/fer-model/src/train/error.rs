//! [`TrainError`]: why training stopped early or could not run.

use crate::checkpoint::CheckpointError;

/// Why training stopped early or could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("model")]
    Model(#[from] candle_core::Error),
    #[error(transparent)]
    Data(#[from] fer_data::Error),
    #[error(transparent)]
    Augment(#[from] fer_augment::Error),
    #[error(
        "epoch {epoch}, batch {batch}: the loss is {value}; stopping (the last good checkpoint is kept)"
    )]
    NonFiniteLoss {
        epoch: usize,
        batch: usize,
        value: f32,
    },
    #[error("{0}")]
    Setup(String),
}
