//! Training, apart from the networks: the loop ([`train()`]: seeded shuffling, augmentation
//! prepared beside the step, evaluation on PublicTest after every epoch, exact resume, the
//! seed's plateau policy), its [`config`], the [`run_dir`] with its checkpoints and their
//! retention, the weight average ([`ema`]), a distilled run's [`teacher`] and the errors
//! ([`error`]).

pub mod config;
pub mod ema;
pub mod error;
pub mod run_dir;
pub mod teacher;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use fer_augment::Pipeline;
use fer_data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE, Normalizer, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use self::config::{DistillationConfig, PlateauConfig, Sampling, Schedule, TrainConfig};
pub use self::ema::{EmaConfig, WeightAverage};
pub use self::error::TrainError;
use self::run_dir::{
    CONFIG, NORMALIZER, RunState, STATE, epoch_dir, extend, load_epoch, save_epoch,
};
pub use self::run_dir::{EpochRecord, TrainedModel, TrainedNetwork, epoch_checkpoints};
pub use self::teacher::{TEACHER_FILE, TeacherProbabilities};
use crate::checkpoint::{CheckpointError, read_json, write_json};
use crate::eval::evaluate;
use crate::head::NUM_CLASSES;
use crate::layers::batch_norm::is_running_statistic;
use crate::loss::{Loss, SoftTargets};
use crate::nets::classifier::Classifier;
use crate::optim::AnyOptimizer;

/// Receives progress; the CLI draws bars with it, tests ignore it.
pub trait Observer {
    fn batch(&mut self, _epoch: usize, _done: usize, _total: usize, _loss: f32) {}
    fn epoch(&mut self, _record: &EpochRecord) {}
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// The result of a finished (or stopped) run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
}

/// The run's parameters as vars in name order (optimizer state is saved by this position).
/// The trained parameters in name order (batch-norm running statistics are state, not trained).
fn sorted_vars(vars: &VarMap) -> Vec<Var> {
    let data = vars.data().lock().expect("var map lock");
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(name, _)| !is_running_statistic(name))
        .collect();
    named.sort_by_key(|(name, _)| *name);
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Trains per `config` on `dataset`'s Training split, choosing the best epoch on PublicTest,
/// writing everything to `run_dir`. With `resume`, continues the run saved there (its saved
/// config wins) and reaches what an uninterrupted run would have. A config with
/// `distillation` needs [`train_with_teacher`].
pub fn train(
    dataset: &Dataset,
    config: &TrainConfig,
    run_dir: &Path,
    device: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, TrainError> {
    train_with_teacher(dataset, config, None, run_dir, device, resume, observer)
}

/// [`train()`] with a teacher's probabilities on `dataset`'s Training images, for a config
/// (or, resuming, a saved config) with `distillation`; `None` for one without.
pub fn train_with_teacher(
    dataset: &Dataset,
    config: &TrainConfig,
    teacher: Option<&TeacherProbabilities>,
    run_dir: &Path,
    device: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, TrainError> {
    let state_path = run_dir.join(STATE);
    let resuming = resume && state_path.is_file();
    if config.batch_size == 0 {
        return Err(TrainError::Setup(
            "batch_size is 0; it must be at least 1".into(),
        ));
    }
    if !resume && state_path.is_file() {
        return Err(TrainError::Setup(format!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            run_dir.display()
        )));
    }
    let (config, normalizer, mut state) = if resuming {
        let saved: TrainConfig = read_json(&run_dir.join(CONFIG))?;
        if saved.batch_size == 0 {
            return Err(TrainError::Setup(format!(
                "{}: batch_size is 0; it must be at least 1",
                run_dir.join(CONFIG).display()
            )));
        }
        let extended_to = (config.epochs > saved.epochs).then_some(config.epochs);
        if saved
            != (TrainConfig {
                epochs: saved.epochs,
                ..config.clone()
            })
        {
            observer.message(
                "resuming with the run's saved config.json (command-line settings other than the number of epochs ignored)",
            );
        }
        let normalizer = Normalizer::load(run_dir.join(NORMALIZER))?;
        let mut state: RunState = read_json(&state_path)?;
        let mut saved_config = saved;
        if let Some(epochs) = extended_to {
            if state.stopped {
                return Err(TrainError::Setup(format!(
                    "{}: the run was stopped by its plateau policy after epoch {}; it cannot be lengthened to {epochs} epochs",
                    run_dir.display(),
                    state.epoch
                )));
            }
            let from = saved_config.epochs;
            extend(run_dir, &mut saved_config, &mut state, epochs)?;
            observer.message(&format!(
                "extending the run from {from} to {epochs} epochs after epoch {} (recorded in config.json and state.json; a schedule spans the new length from here on)",
                state.epoch
            ));
        }
        (saved_config, normalizer, state)
    } else {
        let train_view = dataset.view(Split::Training);
        if train_view.is_empty() {
            return Err(TrainError::Setup("the data has no Training images".into()));
        }
        let normalizer = Normalizer::fit(&train_view, config.normalizer)?;
        std::fs::create_dir_all(run_dir).map_err(|source| CheckpointError::Io {
            path: run_dir.to_path_buf(),
            source,
        })?;
        write_json(&run_dir.join(CONFIG), config)?;
        normalizer.save(run_dir.join(NORMALIZER))?;
        let lr = config.optimizer.lr();
        let state = RunState {
            epoch: 0,
            lr,
            best_epoch: 0,
            best_accuracy: -1.0,
            stale_epochs: 0,
            stopped: false,
            history: Vec::new(),
            extensions: Vec::new(),
        };
        (config.clone(), normalizer, state)
    };
    config
        .loss
        .validate(config.model.head)
        .map_err(TrainError::Setup)?;
    if let Some(mixing) = &config.mixing {
        mixing.validate()?;
    }
    if let Some(ema) = &config.ema {
        ema.validate().map_err(TrainError::Setup)?;
    }
    let distillation = match (&config.distillation, teacher) {
        (Some(distillation), Some(teacher)) => {
            distillation
                .validate(config.model.head)
                .map_err(TrainError::Setup)?;
            teacher.check_covers(dataset).map_err(TrainError::Setup)?;
            Some((distillation, teacher))
        }
        (Some(_), None) => {
            return Err(TrainError::Setup(
                "the config asks for distillation, but no teacher probabilities were given (`fer train` computes them from distillation.teacher)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(TrainError::Setup(
                "teacher probabilities were given, but the config has no distillation".into(),
            ));
        }
        (None, None) => None,
    };
    if config.schedule.is_some() && config.plateau.is_some() {
        return Err(TrainError::Setup(
            "choose either a learning-rate schedule or the plateau policy, not both".into(),
        ));
    }
    if dataset.view(Split::PublicTest).is_empty() {
        return Err(TrainError::Setup(
            "the data has no PublicTest images to choose checkpoints on (train.csv layouts hold Training only)".into(),
        ));
    }
    let (vars, model) = config.model.init(device, config.seed)?;
    let mut optimizer = AnyOptimizer::new(config.optimizer, sorted_vars(&vars))?;
    let average = config
        .ema
        .map(|ema| WeightAverage::new(ema, &config.model, &vars, device))
        .transpose()?;
    if resuming {
        let dir = epoch_dir(run_dir, state.epoch);
        load_epoch(&dir, &vars, &mut optimizer, average.as_ref(), device)?;
        observer.message(&format!("resuming after epoch {}", state.epoch));
    }
    // What is evaluated, selected and saved as best/last: the average when there is one.
    let evaluated: &dyn crate::Classifier = match &average {
        Some(average) => average.model.as_ref(),
        None => model.as_ref(),
    };
    optimizer.set_learning_rate(state.lr);
    let pipeline = Pipeline::new(config.augmentation.clone(), config.seed)?;
    let train_indices = dataset.indices_of(Split::Training);
    let loss = Loss::new(config.loss, &dataset.view(Split::Training).class_counts());
    let public = dataset.view(Split::PublicTest);
    // A fixed, seeded sample of Training images for the training-accuracy curve.
    let train_sample = {
        let mut order = train_indices.clone();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            config.seed ^ 0x7472_6169_6e5f_6163,
        ));
        let size = config.train_accuracy_sample.unwrap_or(public.len().max(1));
        order.truncate(size.min(order.len()));
        order.sort_unstable();
        dataset
            .view_of(order)
            .map_err(|e| TrainError::Setup(e.to_string()))?
    };

    let save = |state: &RunState, optimizer: &AnyOptimizer| {
        save_epoch(
            run_dir,
            &vars,
            optimizer,
            average.as_ref(),
            state,
            config.keep_last,
        )
    };
    while state.epoch < config.epochs && !state.stopped {
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let train_loss = run_epoch(
            dataset,
            &train_indices,
            &config,
            &pipeline,
            &normalizer,
            model.as_ref(),
            (&loss, distillation),
            &mut optimizer,
            (&vars, average.as_ref()),
            device,
            (epoch, state.lr),
            observer,
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        let eval_started = Instant::now();
        let evaluation = evaluate(evaluated, &public, &normalizer, device, 128)?;
        let train_accuracy = if train_sample.is_empty() {
            None
        } else {
            let sample = evaluate(evaluated, &train_sample, &normalizer, device, 128)?;
            Some(sample.metrics.accuracy)
        };
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let accuracy = evaluation.metrics.accuracy;
        if accuracy > state.best_accuracy {
            state.best_accuracy = accuracy;
            state.best_epoch = epoch;
            state.stale_epochs = 0;
        } else {
            state.stale_epochs += 1;
        }
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss: evaluation.loss_sum,
            val_accuracy: accuracy,
            train_accuracy,
            val_macro_f1: evaluation.metrics.macro_f1,
            best_epoch: state.best_epoch,
            lr: optimizer.learning_rate(),
            train_seconds,
            eval_seconds,
            train_images_per_second: train_indices.len() as f64 / train_seconds,
        };
        state.history.push(record.clone());
        state.epoch = epoch;
        save(&state, &optimizer)?;
        observer.epoch(&record);
        if let Some(plateau) = config.plateau
            && state.stale_epochs >= plateau.patience
        {
            let lr = state.lr / plateau.factor;
            if lr < plateau.min_lr {
                observer.message(&format!(
                    "plateau: learning rate {lr:.3e} is below {:.1e}; stopping",
                    plateau.min_lr
                ));
                state.stopped = true;
            } else {
                let best = epoch_dir(run_dir, state.best_epoch);
                load_epoch(&best, &vars, &mut optimizer, average.as_ref(), device)?;
                optimizer.set_learning_rate(lr);
                observer.message(&format!(
                    "plateau: restarting from epoch {} with learning rate {lr:.3e}",
                    state.best_epoch
                ));
                state.lr = lr;
                state.stale_epochs = 0;
            }
            // Record the new learning rate (or the stop) so a resume continues from here.
            save(&state, &optimizer)?;
        }
    }

    Ok(TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        best_epoch: state.best_epoch,
        history: state.history,
    })
}

/// One pass over the shuffled Training split; returns the sum of batch mean losses.
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    dataset: &Dataset,
    train_indices: &[usize],
    config: &TrainConfig,
    pipeline: &Pipeline,
    normalizer: &Normalizer,
    model: &dyn Classifier,
    (loss, distillation): (&Loss, Option<(&DistillationConfig, &TeacherProbabilities)>),
    optimizer: &mut AnyOptimizer,
    (vars, average): (&VarMap, Option<&WeightAverage>),
    device: &Device,
    (epoch, base_lr): (usize, f64),
    observer: &mut dyn Observer,
) -> Result<f64, TrainError> {
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed);
    shuffle_rng.set_stream(epoch as u64);
    let order = match config.sampling {
        Sampling::Shuffle => {
            let mut order = train_indices.to_vec();
            order.shuffle(&mut shuffle_rng);
            order
        }
        Sampling::Balanced => balanced_sample(dataset, train_indices, &mut shuffle_rng),
    };
    let batches: Vec<&[usize]> = order.chunks(config.batch_size.max(1)).collect();
    let total = batches.len();
    let mut loss_sum = 0f64;
    std::thread::scope(|scope| -> Result<(), TrainError> {
        // The next batches are augmented and normalised on rayon's pool while the step runs.
        let (sender, receiver) = mpsc::sync_channel::<(Vec<f32>, Vec<u32>, Option<Loss>)>(2);
        let batches_for_producer = batches.clone();
        scope.spawn(move || {
            for (b, batch) in batches_for_producer.into_iter().enumerate() {
                let augmented = pipeline.augment_from(dataset, batch, epoch as u64);
                let mut inputs = vec![0f32; augmented.len()];
                for (image, out) in augmented
                    .chunks(IMAGE_PIXELS)
                    .zip(inputs.chunks_mut(IMAGE_PIXELS))
                {
                    normalizer.apply(image, out);
                }
                let labels: Vec<u32> = batch
                    .iter()
                    .map(|&i| u32::from(dataset.labels()[i].label()))
                    .collect();
                // Mixed or distilled batches carry their own loss (own and partner labels,
                // the teacher's probabilities mixed as the images are).
                let mixed = config.mixing.and_then(|mixing| {
                    let mut mix_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x006D_6978_7570);
                    mix_rng.set_stream(((epoch as u64) << 32) | b as u64);
                    mixing.mix(&mut inputs, IMAGE_SIDE, &mut mix_rng)
                });
                let mut batch_loss = mixed.as_ref().map(|mixed| {
                    let partners = mixed.partner.iter().map(|&p| labels[p]).collect();
                    loss.mixed(partners, mixed.weight)
                });
                if let Some((distillation, teacher)) = distillation {
                    let row = |i: usize| {
                        *teacher
                            .get(batch[i])
                            .expect("check_covers before the first epoch")
                    };
                    let mut probabilities = Vec::with_capacity(batch.len() * NUM_CLASSES);
                    for i in 0..batch.len() {
                        let own = row(i);
                        match &mixed {
                            None => probabilities.extend_from_slice(&own),
                            Some(mixed) => {
                                let partner = row(mixed.partner[i]);
                                let w = mixed.weight;
                                probabilities.extend(
                                    own.iter().zip(&partner).map(|(o, p)| w * o + (1.0 - w) * p),
                                );
                            }
                        }
                    }
                    let soft = SoftTargets {
                        probabilities,
                        weight: distillation.weight,
                        temperature: distillation.temperature,
                    };
                    batch_loss = Some(batch_loss.as_ref().unwrap_or(loss).distilled(soft));
                }
                if sender.send((inputs, labels, batch_loss)).is_err() {
                    return; // the consumer stopped (error): stop producing
                }
            }
        });
        for (b, (inputs, labels, mixed_loss)) in receiver.iter().enumerate() {
            let n = labels.len();
            let x = Tensor::from_vec(inputs, (n, 1, IMAGE_SIDE, IMAGE_SIDE), device)?;
            let y = Tensor::from_vec(labels, n, device)?;
            let mut dropout_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xD50F_0A7E);
            dropout_rng.set_stream(((epoch as u64) << 32) | b as u64);
            if let Some(schedule) = &config.schedule {
                let progress = (epoch - 1) as f64 + b as f64 / total as f64;
                optimizer.set_learning_rate(schedule.learning_rate(
                    base_lr,
                    progress,
                    config.epochs,
                ));
            }
            let batch_loss = mixed_loss.as_ref().unwrap_or(loss);
            let (value, grads) =
                model.loss_and_grads(&x, &y, batch_loss, Some(&mut dropout_rng))?;
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    batch: b + 1,
                    value,
                });
            }
            optimizer.step(&grads)?;
            if let Some(average) = average {
                average.update(vars, ((epoch - 1) * total + b) as u64)?;
            }
            loss_sum += f64::from(value);
            observer.batch(epoch, b + 1, total, value);
        }
        Ok(())
    })?;
    Ok(loss_sum)
}

/// `train_indices.len()` draws with replacement: a uniform class (among those present), then a
/// uniform image of that class.
fn balanced_sample(dataset: &Dataset, train_indices: &[usize], rng: &mut ChaCha8Rng) -> Vec<usize> {
    use rand::Rng;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
    for &i in train_indices {
        by_class[dataset.labels()[i].index()].push(i);
    }
    by_class.retain(|images| !images.is_empty());
    (0..train_indices.len())
        .map(|_| {
            let class = &by_class[rng.random_range(0..by_class.len())];
            class[rng.random_range(0..class.len())]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_data::synthetic::{SyntheticConfig, generate};

    #[test]
    fn cosine_schedule_warms_up_then_anneals_to_its_floor() {
        let schedule = Schedule::Cosine {
            warmup_epochs: 2.0,
            min_lr: 0.001,
        };
        let lr = |progress| schedule.learning_rate(0.1, progress, 12);
        assert!((lr(1.0) - 0.05).abs() < 1e-12); // half-way through the warm-up
        assert!((lr(2.0) - 0.1).abs() < 1e-12); // peak
        assert!((lr(7.0) - (0.001 + 0.099 * 0.5)).abs() < 1e-12); // half-way: the mean
        assert!((lr(12.0) - 0.001).abs() < 1e-12); // floor at the end
        assert!(lr(0.0) > 0.0, "the first batch moves");
        let mut previous = f64::INFINITY;
        for step in 20..=120 {
            let value = lr(f64::from(step) / 10.0);
            assert!(value <= previous);
            previous = value;
        }
    }

    #[test]
    fn balanced_sampling_draws_every_class_about_equally() {
        let mut config = SyntheticConfig::small(4);
        config.per_split = [2100, 7, 7];
        config.class_weights = [8.0, 1.0, 8.0, 14.0, 10.0, 6.0, 10.0]; // FER2013's shares
        let data = generate(&config);
        let train = data.indices_of(Split::Training);
        let counts = data.view(Split::Training).class_counts();
        assert!(
            counts[3] > 8 * counts[1],
            "the data is imbalanced: {counts:?}"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sample = balanced_sample(&data, &train, &mut rng);
        assert_eq!(sample.len(), train.len());
        let mut drawn = [0usize; 7];
        for &i in &sample {
            assert!(train.contains(&i));
            drawn[data.labels()[i].index()] += 1;
        }
        for (class, &n) in drawn.iter().enumerate() {
            // 300 expected per class; 5 standard deviations is about 80.
            assert!((220..=380).contains(&n), "class {class}: {n} of {drawn:?}");
        }
        // Seeded: the same stream draws the same sample.
        let again = balanced_sample(&data, &train, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(sample, again);
    }
}
