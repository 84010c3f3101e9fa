//! Seeded, parallel image augmentation for 48x48 grey FER faces, built on imageproc.
//!
//! A [`Pipeline`] is a list of [`Transform`]s described by a serde [`PipelineConfig`], so a
//! training run saves its augmentation beside its weights. Every random draw comes from a
//! ChaCha8 stream selected by `(seed, epoch, sample index)`, so a batch is augmented the same
//! way whatever the number of threads and whatever order rayon runs it in.
//!
//! Profiles:
//! - [`PipelineConfig::seed`]: the notebook's `RandomHorizontalFlip()`, `RandomRotation(6)`,
//!   `ColorJitter()`. torchvision's `ColorJitter()` without arguments has every factor at 0
//!   and changes nothing; the seed profile keeps that faithfully (jitter with factors 0).
//! - [`PipelineConfig::modern`]: what the best FER2013 results use: random crop with padding,
//!   flip, affine (rotation, scale, translation), brightness/contrast jitter, random erasing.
//!
//! Fixed degradations for evaluation (darker, blurred, noisy, low-resolution, rotated,
//! JPEG: [`Corruption`]) measure how a model holds up on faces unlike FER2013's.
//!
//! Batch mixing for training (mixup, CutMix: [`MixConfig`]) lives in [`mix`]. Test-time
//! augmentation (flip, shifted views) is not here: `fer-model` does it on tensors.

mod corruption;
pub mod mix;
mod pipeline;
mod transform;

pub use corruption::Corruption;
pub use mix::{MixConfig, MixedBatch};
pub use pipeline::{Pipeline, PipelineConfig};
pub use transform::{Erase, Fill, Transform, adjust_brightness, adjust_contrast, rotate};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read augmentation config: {message}", path.display())]
    Config {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("invalid transform {transform}: {message}")]
    Invalid {
        transform: &'static str,
        message: String,
    },
    #[error("expected {expected} bytes per 48x48 image, found {found}")]
    ImageSize { expected: usize, found: usize },
}

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
