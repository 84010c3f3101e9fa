//! `fer train --model cnn`: the training config from the flags, the per-epoch table on stdout
//! and progress on stderr.

use std::path::Path;

use anyhow::Context;
use candle_core::Device;
use fer::ModelSource;
use fer_augment::PipelineConfig;
use fer_data::{Dataset, Split};
use fer_model::{
    DistillationConfig, EpochRecord, Observer, TEACHER_FILE, TeacherProbabilities, TrainConfig,
};
use indicatif::ProgressBar;

use super::TrainArgs;
use crate::shared::evaluation::evaluate_trained;
use crate::shared::progress::epoch_bar;
use crate::shared::run_data::DataRecord;

/// A training config file (`--config`, or a run's own `config.json`).
fn read_config(path: &Path) -> anyhow::Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: TrainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a training config", path.display()))?;
    anyhow::ensure!(
        config.batch_size > 0,
        "{}: batch_size must be at least 1",
        path.display()
    );
    Ok(config)
}

/// The training config: `--config` (or, resuming, the run's own config; or the defaults, the
/// seed's recipe) with the flags on top. A resume keeps the run's length unless `--epochs`
/// lengthens it.
fn config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let run_config = args.out.join("config.json");
    let saved = if args.resume && run_config.is_file() {
        Some(read_config(&run_config)?)
    } else {
        None
    };
    let mut config = match (&args.config, &saved) {
        (Some(path), _) => read_config(path)?,
        (None, Some(saved)) => saved.clone(),
        (None, None) => TrainConfig::default(),
    };
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }
    if args.no_augment {
        config.augmentation = PipelineConfig::none();
    }
    if let Some(profile) = args.augment {
        config.augmentation = profile.config();
    }
    if let Some(head) = args.head {
        config.model.head = head.into();
    }
    if let Some(architecture) = args.architecture {
        config.model.architecture = architecture.into();
    }
    if let Some(width) = args.width {
        anyhow::ensure!(width > 0, "--width must be at least 1");
        config.model.width = width;
    }
    if args.test_time_flip {
        config.model.test_time_flip = true;
    }
    if let Some(shift) = args.test_time_shift {
        config.model.test_time_shift = shift;
    }
    if args.mixup.is_some() || args.cutmix.is_some() {
        let mut mixing = config.mixing.unwrap_or_default();
        if let Some(alpha) = args.mixup {
            mixing.mixup_alpha = alpha;
        }
        if let Some(alpha) = args.cutmix {
            mixing.cutmix_alpha = alpha;
        }
        config.mixing = Some(mixing);
    }
    if let Some(decay) = args.ema {
        config.ema = Some(fer_model::EmaConfig { decay });
    }
    if let Some(e) = args.label_smoothing {
        config.loss.label_smoothing = e;
    }
    if let Some(gamma) = args.focal_gamma {
        config.loss.focal_gamma = gamma;
    }
    if let Some(weights) = args.class_weights {
        config.loss.class_weighting = weights.into();
    }
    if args.balanced_sampling {
        config.sampling = fer_model::Sampling::Balanced;
    }
    if !args.teacher.is_empty() {
        // A config's weight and temperature stay; the library's defaults otherwise.
        config
            .distillation
            .get_or_insert_with(|| DistillationConfig::new(Vec::new()))
            .teacher = args.teacher.clone();
    }
    if args.distill_weight.is_some() || args.distill_temperature.is_some() {
        let distillation = config.distillation.as_mut().context(
            "--distill-weight and --distill-temperature need a teacher (--teacher, or distillation in --config)",
        )?;
        if let Some(weight) = args.distill_weight {
            distillation.weight = weight;
        }
        if let Some(temperature) = args.distill_temperature {
            distillation.temperature = temperature;
        }
    }
    if let Some(warmup_epochs) = args.cosine {
        anyhow::ensure!(warmup_epochs >= 0.0, "--cosine takes warm-up epochs >= 0");
        config.schedule = Some(fer_model::Schedule::Cosine {
            warmup_epochs,
            min_lr: 0.0,
        });
        config.plateau = None;
    }
    if let Some(optimizer) = args.optimizer {
        config.optimizer = optimizer.into();
    }
    if let Some(lr) = args.lr {
        config.optimizer.set_lr(lr);
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let (Some(saved), None) = (&saved, args.epochs) {
        config.epochs = saved.epochs;
    }
    Ok(config)
}

/// Progress bars per epoch (log lines every tenth of an epoch when stderr is not a
/// terminal) and the seed notebook's table on stdout.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    epoch_started: Option<std::time::Instant>,
    /// The table's header goes out with its first line, so that a run that fails to start
    /// prints no table.
    header_printed: bool,
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
        let bar = self.bar.get_or_insert_with(|| epoch_bar(epoch, total));
        bar.set_position(done as u64);
        bar.set_message(format!("{loss:.4}"));
    }

    fn epoch(&mut self, r: &EpochRecord) {
        self.epoch_started = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // A closed stdout must not stop the training.
        if !self.header_printed {
            self.header_printed = true;
            let _ = outln!(
                "Epoch\tTrain Loss\tValidation Loss\tValidation Acc\tBest Model\tSpeed\tTime"
            );
        }
        let _ = outln!(
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

/// The teacher's class probabilities on `dataset`'s Training images: each model of
/// `distillation.teacher` evaluated with its own test-time augmentation, the ensemble's mean.
fn teacher_probabilities(
    dataset: &Dataset,
    distillation: &DistillationConfig,
    device: &Device,
    quiet: bool,
) -> anyhow::Result<TeacherProbabilities> {
    let view = dataset.view(Split::Training);
    let mut members = Vec::with_capacity(distillation.teacher.len());
    for name in &distillation.teacher {
        let source: ModelSource = name
            .parse()
            .with_context(|| format!("distillation.teacher: {name}"))?;
        let trained = source
            .load(device)
            .with_context(|| format!("distillation.teacher: cannot load {name}"))?;
        let started = std::time::Instant::now();
        let evaluation = evaluate_trained(&trained, &view, device, quiet)?;
        tracing::info!(
            "teacher {name}: {} Training images in {:.0} s, accuracy {:.2}% on them",
            view.len(),
            started.elapsed().as_secs_f64(),
            100.0 * evaluation.metrics.accuracy
        );
        members.push(evaluation);
    }
    let evaluation = fer_model::eval::average_evaluations(&members)?;
    let probabilities: Vec<_> = evaluation
        .predictions
        .iter()
        .map(|p| p.probabilities)
        .collect();
    TeacherProbabilities::for_training(dataset, &probabilities).map_err(anyhow::Error::msg)
}

/// A distilled run's teacher probabilities: resuming, those its directory kept since it
/// started ([`TEACHER_FILE`]); else (or for a run started before the file existed) computed
/// by [`teacher_probabilities`] and written there before the first epoch.
fn teacher_for_run(
    dataset: &Dataset,
    distillation: &DistillationConfig,
    run_dir: &Path,
    resuming: bool,
    device: &Device,
    quiet: bool,
) -> anyhow::Result<TeacherProbabilities> {
    let file = run_dir.join(TEACHER_FILE);
    if resuming && file.is_file() {
        let teacher = TeacherProbabilities::load(dataset, &file)?;
        tracing::info!(
            "teacher: the probabilities kept since the run started, {} (delete it to evaluate the teacher again)",
            file.display()
        );
        return Ok(teacher);
    }
    let teacher = teacher_probabilities(dataset, distillation, device, quiet)?;
    teacher.save(dataset, &file)?;
    Ok(teacher)
}

/// Trains the CNN, validating on PublicTest after every epoch.
pub fn train(args: &TrainArgs, quiet: bool) -> anyhow::Result<()> {
    let config = config(args)?;
    let device = args.device.open()?;
    let mut dataset = args.input.open_for_training()?;
    // A finished run's directory without --resume is refused by training itself, untouched.
    if args.resume || !args.out.join("state.json").is_file() {
        DataRecord::of(&dataset, &args.input.data).check_and_write(&args.out)?;
    }
    if let Some(n) = args.train_subset {
        dataset = super::subset_training(&dataset, n, config.seed)?;
    }
    tracing::info!(
        "training {} images, validating on {} PublicTest images, run directory {}",
        dataset.view(fer_data::Split::Training).len(),
        dataset.view(fer_data::Split::PublicTest).len(),
        args.out.display()
    );
    let mut progress = Progress {
        bar: None,
        quiet,
        epoch_started: None,
        header_printed: false,
    };
    // Resuming a started run, its saved config decides whether it has a teacher (checked
    // before the teacher's pass over the Training images).
    let started = args.out.join("state.json").is_file();
    let resuming = args.resume && started;
    let run_config = if resuming {
        read_config(&args.out.join("config.json"))?
    } else {
        config.clone()
    };
    let teacher = match &run_config.distillation {
        // Training refuses a started run's directory without --resume: no teacher pass first.
        Some(_) if started && !args.resume => None,
        Some(distillation) => {
            distillation
                .validate(run_config.model.head)
                .map_err(anyhow::Error::msg)?;
            Some(teacher_for_run(
                &dataset,
                distillation,
                &args.out,
                resuming,
                &device,
                quiet,
            )?)
        }
        None => None,
    };
    let outcome = fer_model::train_with_teacher(
        &dataset,
        &config,
        teacher.as_ref(),
        &args.out,
        &device,
        args.resume,
        &mut progress,
    )?;
    let best = &outcome.history[outcome
        .best_epoch
        .saturating_sub(1)
        .min(outcome.history.len().saturating_sub(1))];
    outln!(
        "best epoch {} (PublicTest accuracy {:.3}%); model in {}",
        outcome.best_epoch,
        100.0 * best.val_accuracy,
        outcome.run_dir.join("best.safetensors").display()
    )?;
    Ok(())
}
