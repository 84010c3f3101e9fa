//! The FER CNNs in candle: architectures, pooling ops with backward, optimizers.
//!
//! - [`model`]: [`ModelConfig`] (architecture, head, dropout, width, test-time flip) builds a
//!   [`Classifier`]: the seed CNN or [`vgg`]'s batch-norm network, with PyTorch `state_dict`
//!   names so weights load in either framework; [`batch_norm`] is their fused BN + ReLU op.
//! - [`mod@loss`]: label smoothing, class weights and focal loss for training, and the
//!   two-label loss of mixed (mixup, CutMix) batches.
//! - [`ema`]: an exponential moving average of the weights, evaluated and saved in their place.
//! - [`pool`]: max/avg pooling with any kernel and stride, with backward (candle 0.11 has none
//!   when kernel != stride).
//! - [`ops`]: fast CNN layers (`conv2d` with fused padding, `prelu`) as candle custom ops with
//!   CPU forward and backward on im2col + gemm kernels, candle's ops on other devices; the seed
//!   CNN's training step and inference also run fused on the CPU
//!   ([`Classifier::loss_and_grads`], [`Classifier::predict`]); one image runs as stages on
//!   every thread with Winograd convolutions (batch-1 latency).
//! - [`optim`]: Adadelta, SGD (momentum, Nesterov) and AdamW as PyTorch defines them, with
//!   checkpointable state.
//! - [`train`](mod@train): the training loop, checkpoints ([`checkpoint`]) and resume; [`eval`] and
//!   [`metrics`] for accuracy, confusion matrix, per-class and macro F1.
//! - [`hog_svm`]: the HOG + linear SVM baseline (dual coordinate descent), C chosen on
//!   PublicTest, with its own tagged run directory.
//!
//! The `cuda` cargo feature builds candle's CUDA backend; everything builds and tests without it.
//! Invariant: this crate reads data through `fer-data` and `fer-augment` and never reaches up
//! into the CLI.

pub mod batch_norm;
pub mod checkpoint;
pub mod ema;
pub mod eval;
pub mod hog_svm;
mod kernels;
pub mod loss;
pub mod metrics;
pub mod model;
mod one_image;
pub mod ops;
pub mod optim;
pub mod pool;
mod seed_step;
mod stages;
pub mod train;
pub mod vgg;
mod winograd;

pub use ema::{EmaConfig, WeightAverage};
pub use loss::{ClassWeighting, Loss, LossConfig, MixedLabels};
pub use metrics::{ClassMetrics, Metrics};
pub use model::{Architecture, Classifier, Head, ModelConfig, SeedCnn, loss};
pub use optim::{
    Adadelta, AdadeltaConfig, AdamW, AdamWConfig, AnyOptimizer, OptimizerConfig, Sgd, SgdConfig,
};
pub use pool::Pool2d;
pub use train::{
    EpochRecord, Observer, PlateauConfig, Quiet, Sampling, Schedule, TrainConfig, TrainError,
    TrainOutcome, TrainedModel, train,
};
pub use vgg::VggBn;
