//! A run directory: its files (`config.json`, `normalizer.json`, `state.json`,
//! `history.json`, `best`/`last.safetensors`, `checkpoints/epoch-NNNN/`), the epoch
//! checkpoints written and restored atomically, the retention policy that prunes them, and
//! [`TrainedModel`], a finished run opened for inference.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use fer_data::Normalizer;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::ema::WeightAverage;
use super::error::TrainError;
use crate::checkpoint::{self, CheckpointError, read_json, write_json};
use crate::nets::classifier::Classifier;
use crate::nets::ensemble::Ensemble;
use crate::optim::AnyOptimizer;

pub(super) const CONFIG: &str = "config.json";
pub(super) const NORMALIZER: &str = "normalizer.json";
pub(super) const STATE: &str = "state.json";
pub(super) const HISTORY: &str = "history.json";
/// An epoch checkpoint's weight average (runs with `ema`), beside its `model.safetensors`.
pub(super) const AVERAGE: &str = "ema.safetensors";

/// The run directory of an epoch checkpoint's folder (`RUN/checkpoints/epoch-NNNN`), when
/// `dir` is one and has no `config.json` of its own.
fn run_dir_of_checkpoint(dir: &Path) -> Option<PathBuf> {
    let name = dir.file_name()?.to_str()?;
    let checkpoints = dir.parent()?;
    let is_epoch = name
        .strip_prefix("epoch-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (is_epoch && checkpoints.file_name()? == "checkpoints" && !dir.join(CONFIG).is_file())
        .then(|| checkpoints.parent().map(Path::to_path_buf))
        .flatten()
}

pub(super) fn epoch_dir(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir
        .join("checkpoints")
        .join(format!("epoch-{epoch:04}"))
}

/// One line of the seed's per-epoch table, and more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Sum over batches of the batch mean loss (the seed's "Train Loss").
    pub train_loss: f64,
    /// Sum over PublicTest batches of 128 of the batch mean loss (the seed's "Validation Loss").
    pub val_loss: f64,
    /// PublicTest accuracy in 0..1.
    pub val_accuracy: f64,
    /// Accuracy in 0..1 on a fixed sample of Training images (as many as PublicTest has),
    /// evaluated like PublicTest after the epoch: no augmentation, no dropout. `None` in
    /// histories written before it was recorded.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    pub val_macro_f1: f64,
    /// Best epoch so far on PublicTest accuracy.
    pub best_epoch: usize,
    pub lr: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub train_images_per_second: f64,
}

/// What a run directory's `state.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunState {
    /// Finished epochs.
    pub epoch: usize,
    pub lr: f64,
    pub best_epoch: usize,
    pub best_accuracy: f64,
    pub stale_epochs: usize,
    pub stopped: bool,
    pub history: Vec<EpochRecord>,
    /// Each resume that lengthened the run, in order (absent from runs never lengthened).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
}

/// A resume that lengthened the run. A learning-rate schedule followed `from_epochs` up to
/// `after_epoch` and `to_epochs` from there (for a cosine: a warm restart at the rate the new
/// length gives), so the run is not the one a config of `to_epochs` trains from the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Extension {
    /// Epochs finished before the resume.
    pub after_epoch: usize,
    pub from_epochs: usize,
    pub to_epochs: usize,
}

/// Lengthens a resumed run to `epochs`: the extension goes into `state.json` first, then the
/// new length into `config.json`, so that an interruption between the two keeps the record and
/// the same resume repeated does not record it twice.
pub(super) fn extend(
    run_dir: &Path,
    config: &mut TrainConfig,
    state: &mut RunState,
    epochs: usize,
) -> Result<(), TrainError> {
    let extension = Extension {
        after_epoch: state.epoch,
        from_epochs: config.epochs,
        to_epochs: epochs,
    };
    let recorded = state
        .extensions
        .last()
        .is_some_and(|e| (e.after_epoch, e.to_epochs) == (extension.after_epoch, epochs));
    if !recorded {
        state.extensions.push(extension);
        write_json(&run_dir.join(STATE), state)?;
    }
    config.epochs = epochs;
    write_json(&run_dir.join(CONFIG), config)?;
    Ok(())
}

/// Restores an epoch checkpoint: weights, optimizer state and the weight average if any.
pub(super) fn load_epoch(
    dir: &Path,
    vars: &VarMap,
    optimizer: &mut AnyOptimizer,
    average: Option<&WeightAverage>,
    device: &Device,
) -> Result<(), TrainError> {
    checkpoint::load_parameters(&dir.join("model.safetensors"), vars)?;
    let saved = checkpoint::load_tensors(&dir.join("optimizer.safetensors"), device)?;
    optimizer
        .load_state(saved)
        .map_err(|e| CheckpointError::invalid(&dir.join("optimizer.safetensors"), e))?;
    if let Some(average) = average {
        checkpoint::load_parameters(&dir.join(AVERAGE), &average.vars)?;
    }
    Ok(())
}

/// Writes the epoch's checkpoint, then commits it in `state.json`, then refreshes
/// `last.safetensors`, `best.safetensors` (the weight average in runs that keep one) and
/// `history.json`, then prunes old epochs.
pub(super) fn save_epoch(
    run_dir: &Path,
    vars: &VarMap,
    optimizer: &AnyOptimizer,
    average: Option<&WeightAverage>,
    state: &RunState,
    keep_last: usize,
) -> Result<(), TrainError> {
    let dir = epoch_dir(run_dir, state.epoch);
    checkpoint::save_parameters(&dir.join("model.safetensors"), vars)?;
    let optimizer_state = optimizer.state()?.into_iter().collect();
    checkpoint::save_tensors(&dir.join("optimizer.safetensors"), &optimizer_state)?;
    if let Some(average) = average {
        checkpoint::save_parameters(&dir.join(AVERAGE), &average.vars)?;
    }
    write_json(&dir.join(STATE), state)?;
    write_json(&run_dir.join(STATE), state)?; // the commit point
    let served = average.map_or(vars, |a| &a.vars);
    checkpoint::save_parameters(&run_dir.join("last.safetensors"), served)?;
    if state.best_epoch == state.epoch {
        checkpoint::save_parameters(&run_dir.join("best.safetensors"), served)?;
    }
    write_json(&run_dir.join(HISTORY), &state.history)?;
    Retention { keep_last }.prune(run_dir, state.epoch, state.best_epoch);
    Ok(())
}

/// The epoch checkpoints `run_dir` holds, as (epoch, its `model.safetensors`), in epoch
/// order; none when it has no `checkpoints/` folder.
pub fn epoch_checkpoints(run_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            let weights = entry.path().join("model.safetensors");
            weights.is_file().then_some((epoch, weights))
        })
        .collect();
    found.sort();
    found
}

/// Which epoch checkpoints a run keeps: the best epoch and the last `keep_last` (at least
/// one); the others are deleted after each epoch is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: usize,
}

impl Retention {
    /// Whether epoch `epoch`'s checkpoint stays once epoch `latest` is saved and `best` is the
    /// best epoch so far.
    pub fn keeps(&self, epoch: usize, latest: usize, best: usize) -> bool {
        epoch == best || epoch + self.keep_last.max(1) > latest
    }

    /// Deletes the epoch checkpoints of `run_dir` that [`Retention::keeps`] does not keep.
    /// A checkpoint that cannot be deleted stays (it costs disk, never a result).
    fn prune(&self, run_dir: &Path, latest: usize, best: usize) {
        let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(number) = name
                .strip_prefix("epoch-")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if !self.keeps(number, latest, best) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// One trained network of a [`TrainedModel`]: its run's training config and its parameters.
pub struct TrainedNetwork {
    pub config: TrainConfig,
    pub vars: VarMap,
}

/// A trained model ready for inference: one network of a run, or several networks as an
/// [`Ensemble`] ([`TrainedModel::ensemble`]), with the normalizer their inputs share.
pub struct TrainedModel {
    pub normalizer: Normalizer,
    /// The network, or the ensemble's members in order (never empty).
    pub networks: Vec<TrainedNetwork>,
    /// What classifies: the network, or the ensemble of the members (the mean of their class
    /// probabilities).
    pub model: Box<dyn Classifier>,
}

impl TrainedModel {
    /// Opens a run directory (its `best.safetensors`) or a `.safetensors` file with
    /// `config.json` and `normalizer.json` beside it, or in the run directory above an epoch
    /// checkpoint (`RUN/checkpoints/epoch-NNNN/model.safetensors`).
    pub fn open(path: &Path, device: &Device) -> Result<Self, TrainError> {
        // A path that is not there is named itself, not the config.json beside it.
        std::fs::metadata(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (dir, weights) = if path.is_dir() {
            (path.to_path_buf(), path.join("best.safetensors"))
        } else {
            let dir = path
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            (
                run_dir_of_checkpoint(&dir).unwrap_or(dir),
                path.to_path_buf(),
            )
        };
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        // A run's file missing beside a model file is named as such, not as a bare I/O error.
        let read_beside = |file: &'static str| {
            let path = dir.join(file);
            let bytes = read(&path).map_err(|e| match e {
                CheckpointError::Io { path, source }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    CheckpointError::MissingBeside {
                        file,
                        missing: path,
                    }
                }
                e => e,
            })?;
            Ok::<_, CheckpointError>((path, bytes))
        };
        let (config_path, config) = read_beside(CONFIG)?;
        let (normalizer_path, normalizer) = read_beside(NORMALIZER)?;
        Self::from_files(
            (&config_path, &config),
            (&normalizer_path, &normalizer),
            (&weights, &read(&weights)?),
            device,
        )
    }

    /// A model from the bytes of a run's `config.json`, `normalizer.json` and a
    /// `.safetensors` file (f32, or f16/bf16 converted to f32), e.g. compiled into a binary.
    pub fn from_bytes(
        config_json: &[u8],
        normalizer_json: &[u8],
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, TrainError> {
        Self::from_files(
            (Path::new(CONFIG), config_json),
            (Path::new(NORMALIZER), normalizer_json),
            (Path::new("model.safetensors"), weights),
            device,
        )
    }

    /// The one place a model is assembled: each part with the path its errors name.
    fn from_files(
        (config_path, config_json): (&Path, &[u8]),
        (normalizer_path, normalizer_json): (&Path, &[u8]),
        (weights_path, weights): (&Path, &[u8]),
        device: &Device,
    ) -> Result<Self, TrainError> {
        let config: TrainConfig = serde_json::from_slice(config_json)
            .map_err(|e| CheckpointError::invalid(config_path, e))?;
        let normalizer = Normalizer::from_json(normalizer_json, normalizer_path)?;
        let (vars, model) = config.model.for_checkpoint(device)?;
        checkpoint::load_parameters_from_buffer(weights, weights_path, &vars)?;
        Ok(TrainedModel {
            normalizer,
            networks: vec![TrainedNetwork { config, vars }],
            model,
        })
    }

    /// The ensemble of `members` (each one network or itself an ensemble, whose networks
    /// join as they are): every network classifies each image and their class probabilities
    /// are averaged. The members must share their normalizer (all fitted on the same
    /// Training data), since one normalised input goes to every network.
    pub fn ensemble(members: Vec<TrainedModel>, device: &Device) -> Result<Self, TrainError> {
        let mut members = members.into_iter();
        let first = members
            .next()
            .ok_or_else(|| TrainError::Setup("an ensemble needs at least one member".into()))?;
        if members.len() == 0 {
            // One member is its own ensemble: its classifier is already built.
            return Ok(first);
        }
        let normalizer = first.normalizer;
        let mut networks = first.networks;
        for (k, member) in members.enumerate() {
            if member.normalizer != normalizer {
                return Err(TrainError::Setup(format!(
                    "ensemble member {} normalises its inputs differently from member 1: the \
                     networks of an ensemble must share their normalizer (fitted on the same \
                     Training data)",
                    k + 2
                )));
            }
            networks.extend(member.networks);
        }
        let model = assemble(&networks, device)?;
        Ok(TrainedModel {
            normalizer,
            networks,
            model,
        })
    }

    /// The first network's training config (for an ensemble, see [`TrainedModel::networks`]).
    pub fn config(&self) -> &TrainConfig {
        &self.networks[0].config
    }

    /// The same weights with other test-time augmentation: flip averaging on or off, and
    /// the shift of the four shifted views (0: none); `None` keeps the run's setting.
    pub fn with_test_time_augmentation(
        mut self,
        flip: Option<bool>,
        shift: Option<usize>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if flip.is_none() && shift.is_none() {
            return Ok(self);
        }
        for network in &mut self.networks {
            if let Some(flip) = flip {
                network.config.model.test_time_flip = flip;
            }
            if let Some(shift) = shift {
                network.config.model.test_time_shift = shift;
            }
        }
        self.model = assemble(&self.networks, device)?;
        Ok(self)
    }

    /// The training history saved with the run, if any.
    pub fn history(run_dir: &Path) -> Result<Vec<EpochRecord>, CheckpointError> {
        read_json(&run_dir.join(HISTORY))
    }
}

/// The classifier of `networks` (as their configs say, on their parameters): the one
/// network, or the [`Ensemble`] of several.
fn assemble(
    networks: &[TrainedNetwork],
    device: &Device,
) -> Result<Box<dyn Classifier>, TrainError> {
    let mut built = networks
        .iter()
        .map(|network| {
            let vb = candle_nn::VarBuilder::from_varmap(&network.vars, DType::F32, device);
            network.config.model.build(vb)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(if built.len() == 1 {
        built.pop().expect("one network")
    } else {
        Box::new(Ensemble::new(built)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model file alone, or a run directory without its normaliser, is refused with the
    /// missing file named as one that belongs beside the weights.
    #[test]
    fn a_model_file_without_its_run_files_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.safetensors");
        std::fs::write(&weights, b"not read before the run files").unwrap();
        let err = TrainedModel::open(&weights, &Device::Cpu).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not there: a model file needs its run's config.json beside it",
                dir.path().join("config.json").display()
            )
        );
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("best.safetensors"), b"").unwrap();
        let err = TrainedModel::open(dir.path(), &Device::Cpu).err().unwrap();
        assert!(
            err.to_string().starts_with(&format!(
                "{} is not there: a model file needs its run's normalizer.json",
                dir.path().join("normalizer.json").display()
            )),
            "{err}"
        );
    }

    /// The best epoch and the last `keep_last` stay; `keep_last` 0 still keeps the latest.
    #[test]
    fn retention_keeps_the_best_and_the_last_epochs() {
        let two = Retention { keep_last: 2 };
        let kept: Vec<usize> = (1..=10).filter(|&e| two.keeps(e, 10, 3)).collect();
        assert_eq!(kept, [3, 9, 10]);
        let none = Retention { keep_last: 0 };
        let kept: Vec<usize> = (1..=5).filter(|&e| none.keeps(e, 5, 5)).collect();
        assert_eq!(kept, [5]);
        let kept: Vec<usize> = (1..=2).filter(|&e| two.keeps(e, 2, 1)).collect();
        assert_eq!(kept, [1, 2]);
    }

    /// Lengthening a run records it once in `state.json` and the new length in `config.json`,
    /// even when the same resume is repeated after an interruption between the two writes.
    #[test]
    fn an_extension_is_recorded_once_with_the_new_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = RunState {
            epoch: 40,
            lr: 0.0,
            best_epoch: 37,
            best_accuracy: 0.6,
            stale_epochs: 3,
            stopped: false,
            history: Vec::new(),
            extensions: Vec::new(),
        };
        let mut config = TrainConfig {
            epochs: 40,
            ..TrainConfig::default()
        };
        extend(dir.path(), &mut config, &mut state, 80).unwrap();
        // As if config.json had not been written: the same resume again.
        config.epochs = 40;
        extend(dir.path(), &mut config, &mut state, 80).unwrap();
        let expected = [Extension {
            after_epoch: 40,
            from_epochs: 40,
            to_epochs: 80,
        }];
        assert_eq!(state.extensions, expected);
        let saved: RunState = read_json(&dir.path().join(STATE)).unwrap();
        assert_eq!(saved.extensions, expected);
        let saved: TrainConfig = read_json(&dir.path().join(CONFIG)).unwrap();
        assert_eq!(saved.epochs, 80);
        // A state.json of a run never lengthened has no extensions field, and reads back.
        state.extensions.clear();
        let text = serde_json::to_string(&state).unwrap();
        assert!(!text.contains("extensions"), "{text}");
        assert_eq!(serde_json::from_str::<RunState>(&text).unwrap(), state);
    }

    /// A network of `config` with weights drawn from `seed`, and `normalizer`.
    fn network(config: &TrainConfig, seed: u64, normalizer: &Normalizer) -> TrainedModel {
        let (vars, model) = config.model.init(&Device::Cpu, seed).unwrap();
        TrainedModel {
            normalizer: normalizer.clone(),
            networks: vec![TrainedNetwork {
                config: config.clone(),
                vars,
            }],
            model,
        }
    }

    /// An ensemble classifies as its members evaluated one by one and averaged
    /// (`eval::average_evaluations`, what `fer eval --model A --model B` reports); an ensemble
    /// joined to a third network counts all three equally; a member with another normaliser
    /// is refused by number.
    #[test]
    fn an_ensemble_scores_as_its_members_averaged_and_needs_one_normalizer() {
        use crate::eval::{average_evaluations, evaluate};
        use fer_data::{Dataset, Emotion, Split};
        let n = 6;
        let pixels: Vec<u8> = (0..n * 48 * 48).map(|i| (i * 7 % 251) as u8).collect();
        let labels = (0..n).map(|i| Emotion::ALL[i % 7]).collect();
        let data = Dataset::from_parts(
            pixels,
            labels,
            vec![Split::PublicTest; n],
            (0..n as u32).collect(),
        )
        .unwrap();
        let view = data.view(Split::PublicTest);
        let normalizer = Normalizer {
            mean: vec![128.0; 48 * 48],
            scale: 1.0 / 64.0,
            fitted_on: 1,
        };
        let mut config = TrainConfig::default();
        config.model.test_time_flip = true;
        let members: Vec<TrainedModel> = (1..=3)
            .map(|seed| network(&config, seed, &normalizer))
            .collect();
        let each: Vec<_> = members
            .iter()
            .map(|m| evaluate(m.model.as_ref(), &view, &normalizer, &Device::Cpu, 4).unwrap())
            .collect();
        let expected = average_evaluations(&each).unwrap();
        let mut members = members.into_iter();
        let pair = TrainedModel::ensemble(
            vec![members.next().unwrap(), members.next().unwrap()],
            &Device::Cpu,
        )
        .unwrap();
        let all =
            TrainedModel::ensemble(vec![pair, members.next().unwrap()], &Device::Cpu).unwrap();
        assert_eq!(all.networks.len(), 3);
        let measured = evaluate(all.model.as_ref(), &view, &normalizer, &Device::Cpu, 4).unwrap();
        for (m, e) in measured.predictions.iter().zip(&expected.predictions) {
            assert_eq!(m.predicted, e.predicted);
            for (a, b) in m.probabilities.iter().zip(&e.probabilities) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
        // The members disagree, so the average is not any one of them.
        assert_ne!(
            each[0].predictions[0].probabilities,
            each[1].predictions[0].probabilities
        );
        // Other test-time augmentation reaches every member.
        let unflipped = all
            .with_test_time_augmentation(Some(false), None, &Device::Cpu)
            .unwrap();
        assert!(
            unflipped
                .networks
                .iter()
                .all(|n| !n.config.model.test_time_flip)
        );

        let other = Normalizer {
            scale: 1.0,
            ..normalizer.clone()
        };
        let error = TrainedModel::ensemble(
            vec![
                network(&config, 1, &normalizer),
                network(&config, 2, &other),
            ],
            &Device::Cpu,
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("member 2 normalises"), "{error}");
        assert!(TrainedModel::ensemble(Vec::new(), &Device::Cpu).is_err());
    }
}
