//! The FER networks in candle, their training and evaluation, and the CPU kernels under them.
//!
//! Where things are (`ARCHITECTURE.md` has the whole map):
//! - [`nets`]: [`ModelConfig`] builds a [`Classifier`]: the seed notebook's CNN
//!   ([`nets::seed_cnn`], one description of its geometry and named parameters, read by its
//!   candle forward, its fused CPU training step and its batch-1 path) or the VGG-style
//!   batch-norm network ([`nets::vgg`]), with PyTorch `state_dict` names so weights load in
//!   either framework; test-time augmentation wraps either ([`nets::tta`]); trained networks
//!   classify together as an [`Ensemble`].
//! - [`layers`]: conv, PReLU, pooling with backward (candle 0.11 has none when kernel !=
//!   stride), batch norm + ReLU, dropout and PyTorch's init, as candle ops with fast CPU
//!   kernels; a network built from them gets their speed.
//! - `cpu` (private): the kernels, portable code apart from AVX-512 code, and the portable
//!   code compiled again for AVX2 ([`cpu_kernels`] names the ones that run;
//!   [`PORTABLE_KERNELS_VAR`] forces the portable path; [`IM2COL_ONLY_VAR`] keeps 3x3
//!   convolutions off Winograd).
//! - [`head`] and [`mod@loss`]: the output layer and the losses (label smoothing, class
//!   weights, focal loss, mixed batches).
//! - [`optim`]: Adadelta, SGD and AdamW as PyTorch defines them, one file each.
//! - [`train`](mod@train): the loop, its config, run directories with checkpoint retention,
//!   the weight average; [`checkpoint`]: safetensors and JSON files written atomically.
//! - [`eval`]: evaluation, metrics, ensembles.
//! - [`device`]: where a model runs, as people name it (`cpu`, `cuda:N`).
//! - [`hog_svm`]: the HOG + linear SVM baseline, its own model family.
//!
//! The `cuda` cargo feature builds candle's CUDA backend; everything builds and tests without it.
//! Invariant: this crate reads data through `fer-data` and `fer-augment` and never reaches up
//! into the CLI.

pub mod checkpoint;
mod cpu;
pub mod device;
pub mod eval;
pub mod head;
pub mod hog_svm;
pub mod layers;
pub mod loss;
pub mod nets;
pub mod optim;
pub mod train;

pub use cpu::winograd_conv::IM2COL_ONLY_VAR;
pub use cpu::{PORTABLE_KERNELS_VAR, cpu_kernels};
pub use device::DeviceName;
pub use eval::metrics::{ClassMetrics, Metrics};
pub use head::{Head, NUM_CLASSES};
pub use layers::{BatchNormRelu, Pool2d, PoolKind};
pub use loss::{ClassWeighting, Loss, LossConfig, MixedLabels, SoftTargets, loss};
pub use nets::classifier::Classifier;
pub use nets::config::{Architecture, ModelConfig};
pub use nets::ensemble::Ensemble;
pub use nets::seed_cnn::SeedCnn;
pub use nets::vgg::VggBn;
pub use optim::{
    Adadelta, AdadeltaConfig, AdamW, AdamWConfig, AnyOptimizer, OptimizerConfig, Sgd, SgdConfig,
};
pub use train::run_dir::Retention;
pub use train::{
    DistillationConfig, EmaConfig, EpochRecord, Observer, PlateauConfig, Quiet, Sampling, Schedule,
    TEACHER_FILE, TeacherProbabilities, TrainConfig, TrainError, TrainOutcome, TrainedModel,
    TrainedNetwork, WeightAverage, train, train_with_teacher,
};

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
