//! [`TrainConfig`], saved as a run's `config.json`: model, optimizer, augmentation, loss,
//! schedule, sampling, weight average, distillation and the seed's plateau policy. Later
//! fields have serde defaults, so older runs still load.

use fer_augment::{MixConfig, PipelineConfig};
use fer_data::NormalizerConfig;
use serde::{Deserialize, Serialize};

use super::ema::EmaConfig;
use crate::head::Head;
use crate::loss::LossConfig;
use crate::nets::config::ModelConfig;
use crate::optim::OptimizerConfig;

/// The seed's plateau policy: after `patience` epochs without a better PublicTest accuracy,
/// reload the best checkpoint and divide the learning rate by `factor`; stop below `min_lr`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauConfig {
    pub patience: usize,
    pub factor: f64,
    pub min_lr: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            patience: 5,
            factor: 4.0,
            min_lr: 1e-7,
        }
    }
}

/// A learning-rate schedule followed batch by batch (instead of a constant rate or the
/// plateau policy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Linear warm-up from 0 over `warmup_epochs`, then cosine annealing from the optimizer's
    /// rate down to `min_lr` at the end of the last epoch (`OneCycle`-like, SGDR without restarts).
    Cosine {
        #[serde(default)]
        warmup_epochs: f64,
        #[serde(default)]
        min_lr: f64,
    },
}

impl Schedule {
    /// The rate for the batch that starts after `progress` epochs (fractional) of `epochs`.
    pub fn learning_rate(&self, base: f64, progress: f64, epochs: usize) -> f64 {
        match *self {
            Schedule::Cosine {
                warmup_epochs,
                min_lr,
            } => {
                if progress < warmup_epochs {
                    return base * (progress / warmup_epochs).max(1e-3);
                }
                let span = (epochs as f64 - warmup_epochs).max(1e-9);
                let t = ((progress - warmup_epochs) / span).clamp(0.0, 1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// How each epoch's Training images are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every image once, in a seeded random order (the seed).
    #[default]
    Shuffle,
    /// As many images as the split has, drawn with replacement so that each class is equally
    /// likely (a uniform class, then a uniform image of it).
    Balanced,
}

/// Everything that defines a training run; saved as `config.json` in the run directory.
/// Unknown fields are refused, so a misspelt option fails instead of being ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub augmentation: PipelineConfig,
    pub normalizer: NormalizerConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// `None` trains at a constant learning rate (the seed notebook commented its policy out).
    pub plateau: Option<PlateauConfig>,
    /// Epoch checkpoints kept besides the best one.
    pub keep_last: usize,
    /// The training loss's options (label smoothing, class weights, focal loss).
    #[serde(default)]
    pub loss: LossConfig,
    /// A per-batch learning-rate schedule; exclusive with `plateau`.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub sampling: Sampling,
    /// Training images evaluated after each epoch for the training-accuracy curve; `None`
    /// takes as many as PublicTest has, 0 skips the curve.
    #[serde(default)]
    pub train_accuracy_sample: Option<usize>,
    /// Mixup / CutMix of the normalised batches; `None` mixes nothing.
    #[serde(default)]
    pub mixing: Option<MixConfig>,
    /// Evaluate, select and save an exponential moving average of the weights instead of
    /// the weights themselves.
    #[serde(default)]
    pub ema: Option<EmaConfig>,
    /// Knowledge distillation: the loss also follows a teacher's probabilities on each
    /// Training image; `None` trains on the labels alone.
    #[serde(default)]
    pub distillation: Option<DistillationConfig>,
}

/// A teacher for the training loss (Hinton et al. 2015). The teacher's class probabilities on
/// the Training images are computed once, before the first epoch, by the program that trains
/// (`fer train` evaluates the models named here, with their own test-time augmentation) and
/// given to [`train_with_teacher`](super::train_with_teacher); an augmented image keeps its
/// original's probabilities, a mixed one mixes its two originals'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillationConfig {
    /// The teacher as `fer eval --model` takes it (`builtin:NAME`, a run directory or a
    /// weights file); several are an ensemble, the mean of their probabilities.
    pub teacher: Vec<String>,
    /// The soft term's share of the loss, in [0, 1] (the labels' term gets the rest).
    pub weight: f32,
    /// Softens both distributions (at least 1; Hinton et al. use 2 to 20).
    pub temperature: f32,
}

impl DistillationConfig {
    /// The soft term's share when none is given.
    pub const DEFAULT_WEIGHT: f32 = 0.5;
    /// The temperature when none is given.
    pub const DEFAULT_TEMPERATURE: f32 = 2.0;

    /// `teacher` at the default weight and temperature.
    pub fn new(teacher: Vec<String>) -> Self {
        DistillationConfig {
            teacher,
            weight: Self::DEFAULT_WEIGHT,
            temperature: Self::DEFAULT_TEMPERATURE,
        }
    }

    /// Checks the ranges and that the options fit `head`.
    pub fn validate(&self, head: Head) -> Result<(), String> {
        if self.teacher.is_empty() {
            return Err("distillation.teacher names no model".into());
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(format!(
                "distillation.weight must be in [0, 1], got {}",
                self.weight
            ));
        }
        if !(1.0..=100.0).contains(&self.temperature) {
            return Err(format!(
                "distillation.temperature must be in [1, 100], got {}",
                self.temperature
            ));
        }
        if head != Head::Softmax {
            return Err("distillation needs the softmax head".into());
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    /// The seed notebook's recipe: seed CNN, Adadelta(0.1, 0.95, 1e-8), batch 128, 100 epochs,
    /// flip + rotation 6, mean-centring.
    fn default() -> Self {
        TrainConfig {
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            augmentation: PipelineConfig::seed(),
            normalizer: NormalizerConfig::default(),
            epochs: 100,
            batch_size: 128,
            seed: 0,
            plateau: None,
            keep_last: 2,
            loss: LossConfig::default(),
            schedule: None,
            sampling: Sampling::Shuffle,
            train_accuracy_sample: None,
            mixing: None,
            ema: None,
            distillation: None,
        }
    }
}
