//! `fer train`: train a CNN (with checkpoints every epoch, and resume) or a HOG-SVM baseline.

mod cnn;
mod flags;
mod hog_svm;

use std::path::PathBuf;

use crate::shared::data::DataArgs;
use crate::shared::device::DeviceArgs;
use crate::shared::values::{AugmentProfile, batch_size};

use flags::{ArchitectureChoice, ClassWeightsChoice, HeadChoice, ModelKind, OptimizerChoice};

/// Train a model; the best epoch on PublicTest is kept as RUN_DIR/best.safetensors.
///
/// Example: fer train --data data/fer2013.csv.gz --out runs/seed --epochs 100
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: DataArgs,
    /// Which kind of model to train.
    #[arg(long, value_enum, default_value_t = ModelKind::Cnn)]
    pub model: ModelKind,
    /// Run directory: config, normalizer, checkpoints, history.
    #[arg(long)]
    pub out: PathBuf,
    /// Full training config (JSON, as saved in a run's config.json); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per training step (at least 1).
    #[arg(long, value_parser = batch_size)]
    pub batch_size: Option<usize>,
    /// Train without augmentation (the seed's ablation).
    #[arg(long, conflicts_with = "augment")]
    pub no_augment: bool,
    /// Augmentation profile.
    #[arg(long, value_enum)]
    pub augment: Option<AugmentProfile>,
    /// Network.
    #[arg(long, value_enum)]
    pub architecture: Option<ArchitectureChoice>,
    /// Channels of vgg-bn's first stage (doubled at each of its 4 stages).
    #[arg(long)]
    pub width: Option<usize>,
    /// Average each image's class probabilities with its mirror image's at inference.
    #[arg(long)]
    pub test_time_flip: bool,
    /// Also average four copies shifted by this many pixels toward the corners at inference
    /// (with --test-time-flip: a full-size ten-crop).
    #[arg(long, value_name = "PIXELS")]
    pub test_time_shift: Option<usize>,
    /// Mixup: blend each batch with a shuffled copy, weight ~ Beta(ALPHA, ALPHA).
    #[arg(long, value_name = "ALPHA")]
    pub mixup: Option<f32>,
    /// CutMix: paste a box of a shuffled copy into each batch, area ~ Beta(ALPHA, ALPHA)
    /// (with --mixup: half the mixed batches each).
    #[arg(long, value_name = "ALPHA")]
    pub cutmix: Option<f32>,
    /// Evaluate, select and save an exponential moving average of the weights, with this
    /// decay per step (e.g. 0.999).
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Label smoothing of the softmax loss, in [0, 1).
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Class weights of the loss.
    #[arg(long, value_enum)]
    pub class_weights: Option<ClassWeightsChoice>,
    /// Focal loss exponent gamma (0: cross-entropy).
    #[arg(long)]
    pub focal_gamma: Option<f32>,
    /// Draw each epoch's images class-balanced, with replacement.
    #[arg(long)]
    pub balanced_sampling: bool,
    /// Knowledge distillation: the loss also follows this model's class probabilities on
    /// each Training image (as `--model` of `fer eval` takes it: builtin:NAME, a run
    /// directory, a weights file; repeat it for an ensemble teacher). They are computed once,
    /// before the first epoch (and again on --resume).
    #[arg(long, value_name = "MODEL")]
    pub teacher: Vec<String>,
    /// The teacher's share of the loss, in [0, 1] (default 0.5).
    #[arg(long, value_name = "WEIGHT")]
    pub distill_weight: Option<f32>,
    /// The temperature softening the teacher's and the student's probabilities, at least 1
    /// (default 2).
    #[arg(long, value_name = "T")]
    pub distill_temperature: Option<f32>,
    /// Cosine learning-rate schedule after this many warm-up epochs (replaces any plateau).
    #[arg(long, value_name = "WARMUP_EPOCHS")]
    pub cosine: Option<f64>,
    /// Output head and its loss.
    #[arg(long, value_enum)]
    pub head: Option<HeadChoice>,
    /// Optimizer, with its default settings (--lr sets the learning rate).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Learning rate of the chosen optimizer.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on a seeded random subset of this many Training images (quick runs).
    #[arg(long)]
    pub train_subset: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Continue the run saved in --out to its own length (its config.json wins); with a larger
    /// --epochs, lengthen it, finished or not (state.json records the extension).
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: &TrainArgs, quiet: bool) -> anyhow::Result<()> {
    match args.model {
        ModelKind::Cnn => cnn::train(args, quiet),
        ModelKind::HogSvm => hog_svm::train(args),
    }
}

/// All PublicTest and PrivateTest images plus `n` Training images chosen with `seed`.
fn subset_training(
    dataset: &fer_data::Dataset,
    n: usize,
    seed: u64,
) -> anyhow::Result<fer_data::Dataset> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut training = dataset.indices_of(fer_data::Split::Training);
    training.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    training.truncate(n);
    training.sort_unstable();
    let mut keep: Vec<usize> = (0..dataset.len())
        .filter(|&i| dataset.splits()[i] != fer_data::Split::Training)
        .chain(training)
        .collect();
    keep.sort_unstable();
    Ok(dataset.subset(&keep)?)
}
