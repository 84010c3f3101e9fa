//! `fer train`: train a model on FER2013 with checkpoints every epoch, and resume it.

use std::path::PathBuf;

use anyhow::Context;
use fer_augment::PipelineConfig;
use fer_model::optim::{AdamWConfig, SgdConfig};
use fer_model::{AdadeltaConfig, EpochRecord, Head, Observer, OptimizerConfig, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Train a model; the best epoch on PublicTest is kept as RUN_DIR/best.safetensors.
///
/// Example: fer train --data data/fer2013.csv.gz --out runs/seed --epochs 100
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// cnn, or hog-svm: HOG features + linear SVM, C chosen on PublicTest, PrivateTest
    /// report in RUN_DIR/eval-private-test.json (--config then takes a HOG-SVM config).
    #[arg(long, default_value = "cnn", value_parser = ["cnn", "hog-svm"])]
    pub model: String,
    /// Run directory: config, normalizer, checkpoints, history.
    #[arg(long)]
    pub out: PathBuf,
    /// Full training config (JSON, as saved in a run's config.json); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Train without augmentation (the seed's ablation).
    #[arg(long, conflicts_with = "augment")]
    pub no_augment: bool,
    /// Augmentation profile: none, seed, modern, everything.
    #[arg(long)]
    pub augment: Option<String>,
    /// Network: seed-cnn (the notebook's) or vgg-bn (VGG-style with batch norm, the cpu and
    /// best profiles').
    #[arg(long, value_parser = ["seed-cnn", "vgg-bn"])]
    pub architecture: Option<String>,
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
    /// Class weights of the loss: none, balanced (n / (7 n_c)) or sqrt-balanced.
    #[arg(long, value_parser = ["none", "balanced", "sqrt-balanced"])]
    pub class_weights: Option<String>,
    /// Focal loss exponent gamma (0: cross-entropy).
    #[arg(long)]
    pub focal_gamma: Option<f32>,
    /// Draw each epoch's images class-balanced, with replacement.
    #[arg(long)]
    pub balanced_sampling: bool,
    /// Cosine learning-rate schedule after this many warm-up epochs (replaces any plateau).
    #[arg(long, value_name = "WARMUP_EPOCHS")]
    pub cosine: Option<f64>,
    /// Output head: softmax (NLL, the seed) or svm (squared hinge, Tang 2013).
    #[arg(long, value_parser = ["softmax", "svm"])]
    pub head: Option<String>,
    /// Optimizer: adadelta (the seed), sgd (Nesterov momentum 0.9), adamw.
    #[arg(long, value_parser = ["adadelta", "sgd", "adamw"])]
    pub optimizer: Option<String>,
    /// Learning rate of the chosen optimizer.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on a seeded random subset of this many Training images (quick runs).
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue the run saved in --out (its config.json wins; --epochs may extend it).
    #[arg(long)]
    pub resume: bool,
}

impl TrainArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a training config", path.display()))?
            }
            None => TrainConfig::default(),
        };
        if let Some(epochs) = self.epochs {
            config.epochs = epochs;
        }
        if let Some(batch_size) = self.batch_size {
            anyhow::ensure!(batch_size > 0, "--batch-size must be at least 1");
            config.batch_size = batch_size;
        }
        if self.no_augment {
            config.augmentation = PipelineConfig::none();
        }
        if let Some(name) = &self.augment {
            config.augmentation = PipelineConfig::named(name).with_context(|| {
                format!("unknown augmentation '{name}' (none, seed, modern, everything)")
            })?;
        }
        if let Some(head) = &self.head {
            config.model.head = if head == "svm" {
                Head::Svm
            } else {
                Head::Softmax
            };
        }
        if let Some(architecture) = &self.architecture {
            config.model.architecture = serde_json::from_value(architecture.as_str().into())
                .with_context(|| format!("unknown architecture {architecture}"))?;
        }
        if let Some(width) = self.width {
            anyhow::ensure!(width > 0, "--width must be at least 1");
            config.model.width = width;
        }
        if self.test_time_flip {
            config.model.test_time_flip = true;
        }
        if let Some(shift) = self.test_time_shift {
            config.model.test_time_shift = shift;
        }
        if self.mixup.is_some() || self.cutmix.is_some() {
            let mut mixing = config.mixing.unwrap_or_default();
            if let Some(alpha) = self.mixup {
                mixing.mixup_alpha = alpha;
            }
            if let Some(alpha) = self.cutmix {
                mixing.cutmix_alpha = alpha;
            }
            config.mixing = Some(mixing);
        }
        if let Some(decay) = self.ema {
            config.ema = Some(fer_model::EmaConfig { decay });
        }
        if let Some(e) = self.label_smoothing {
            config.loss.label_smoothing = e;
        }
        if let Some(gamma) = self.focal_gamma {
            config.loss.focal_gamma = gamma;
        }
        if let Some(weights) = &self.class_weights {
            config.loss.class_weighting = serde_json::from_value(weights.replace('-', "_").into())
                .with_context(|| format!("unknown class weighting {weights}"))?;
        }
        if self.balanced_sampling {
            config.sampling = fer_model::Sampling::Balanced;
        }
        if let Some(warmup_epochs) = self.cosine {
            anyhow::ensure!(warmup_epochs >= 0.0, "--cosine takes warm-up epochs >= 0");
            config.schedule = Some(fer_model::Schedule::Cosine {
                warmup_epochs,
                min_lr: 0.0,
            });
            config.plateau = None;
        }
        if let Some(optimizer) = &self.optimizer {
            config.optimizer = match optimizer.as_str() {
                "sgd" => OptimizerConfig::Sgd(SgdConfig {
                    lr: 0.01,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 5e-4,
                }),
                "adamw" => OptimizerConfig::AdamW(AdamWConfig {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                }),
                _ => OptimizerConfig::Adadelta(AdadeltaConfig::default()),
            };
        }
        if let Some(lr) = self.lr {
            config.optimizer.set_lr(lr);
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        Ok(config)
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        _ => {
            let ordinal = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("invalid device '{name}' (cpu, cuda or cuda:N)"))?,
                None => anyhow::bail!("invalid device '{name}' (cpu, cuda or cuda:N)"),
            };
            candle_core::Device::new_cuda(ordinal)
                .with_context(|| format!("cannot use {name} (is fer built with --features cuda?)"))
        }
    }
}

/// Progress bars per epoch (log lines every tenth of an epoch when stderr is not a
/// terminal) and the seed notebook's table on stdout.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    epoch_started: Option<std::time::Instant>,
}

impl Observer for Progress {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        if self.quiet {
            return;
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let started = *self
                .epoch_started
                .get_or_insert_with(std::time::Instant::now);
            if done == total || done.is_multiple_of((total / 10).max(1)) {
                tracing::info!(
                    "epoch {epoch}: batch {done}/{total}, loss {loss:.4}, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} batches, loss {msg} ({per_sec}, ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(epoch.to_string());
            bar
        });
        bar.set_position(done as u64);
        bar.set_message(format!("{loss:.4}"));
    }

    fn epoch(&mut self, r: &EpochRecord) {
        self.epoch_started = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "{}\t{:.5}\t{:.5}\t{:.3}\t\t{}\t{:.1} img/s\t{:.0} s",
            r.epoch,
            r.train_loss,
            r.val_loss,
            100.0 * r.val_accuracy,
            r.best_epoch,
            r.train_images_per_second,
            r.train_seconds + r.eval_seconds
        );
    }

    fn message(&mut self, text: &str) {
        tracing::info!("{text}");
    }
}

pub fn run(args: &TrainArgs, quiet: bool) -> anyhow::Result<()> {
    if args.model == "hog-svm" {
        return super::hog_svm::train(args);
    }
    let config = args.config()?;
    let device = device(&args.device)?;
    let mut dataset = args.input.open()?;
    if let Some(n) = args.train_subset {
        dataset = subset_training(&dataset, n, config.seed)?;
    }
    tracing::info!(
        "training {} images, validating on {} PublicTest images, run directory {}",
        dataset.view(fer_data::Split::Training).len(),
        dataset.view(fer_data::Split::PublicTest).len(),
        args.out.display()
    );
    println!("Epoch\tTrain Loss\tValidation Loss\tValidation Acc\tBest Model\tSpeed\tTime");
    let mut progress = Progress {
        bar: None,
        quiet,
        epoch_started: None,
    };
    let outcome = fer_model::train(
        &dataset,
        &config,
        &args.out,
        &device,
        args.resume,
        &mut progress,
    )?;
    let best = &outcome.history[outcome
        .best_epoch
        .saturating_sub(1)
        .min(outcome.history.len().saturating_sub(1))];
    println!(
        "best epoch {} (PublicTest accuracy {:.3}%); model in {}",
        outcome.best_epoch,
        100.0 * best.val_accuracy,
        outcome.run_dir.join("best.safetensors").display()
    );
    Ok(())
}

/// All PublicTest and PrivateTest images plus `n` Training images chosen with `seed`.
pub(super) fn subset_training(
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
