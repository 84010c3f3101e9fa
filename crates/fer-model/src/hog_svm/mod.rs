//! The classical baseline: HOG features and a one-vs-rest linear SVM (squared hinge).
//!
//! Pipeline: [`HogParams`] turn each 48x48 face into a HOG descriptor (imageproc's `hog`,
//! block-wise L2 normalised); a [`Standardizer`] fitted on Training only scales every feature
//! to zero mean and unit variance; seven one-vs-rest L2-regularised squared-hinge linear SVMs
//! are trained on Training with the dual coordinate descent solver of [`train_binary`], one
//! per C of [`HogSvmConfig::c_grid`]; the C with the best PublicTest accuracy is kept.
//! PrivateTest is never read here: callers report on it with [`HogSvm::evaluate`].
//!
//! A run directory holds
//!
//! ```text
//! RUN_DIR/
//!   config.json           {"model": "hog-svm", "hog": {...}, "c_grid": [...], ...}
//!   weights.safetensors   weights (7 x D), bias (7), feature_mean (D), feature_std (D)
//!   selection.json        the chosen C, PublicTest accuracy per C, wall times
//! ```
//!
//! Scores are the seven SVM margins `w_k . x + b_k`; the "probabilities" shown beside them
//! are their softmax, a display convenience and not calibrated (no Platt scaling).

pub mod config;
pub mod error;
pub mod features;
pub mod svm;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use fer_data::{Dataset, Split, View};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use self::config::HogSvmConfig;
pub use self::error::HogSvmError;
use self::features::descriptor;
pub use self::features::{FeatureMatrix, HogParams, Standardizer, extract_features, hog_features};
pub use self::svm::{BinarySvm, DcdOptions, LinearOvr, Scores, train_binary};
use self::svm::{predict_rows, train_ovr};
use crate::checkpoint::{self, CheckpointError, read_json, write_json};
use crate::eval::Prediction;
use crate::eval::metrics::Metrics;
use crate::head::NUM_CLASSES;

/// The `model` tag of a HOG-SVM run's `config.json` (a CNN run's `model` is an object).
pub const MODEL_TAG: &str = "hog-svm";
/// The run's configuration, tagged with [`MODEL_TAG`].
pub const CONFIG: &str = "config.json";
/// Weights, biases and the feature standardisation (safetensors).
pub const WEIGHTS: &str = "weights.safetensors";
/// The chosen C and the PublicTest accuracy of every C.
pub const SELECTION: &str = "selection.json";

/// PublicTest accuracy of one C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub c: f64,
    pub public_test_accuracy: f64,
    /// Most passes over the data any of the seven problems took.
    pub epochs: usize,
    /// Whether all seven problems met the tolerance.
    pub converged: bool,
    pub train_seconds: f64,
}

/// How C was chosen (saved as `selection.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub chosen_c: f64,
    pub candidates: Vec<Candidate>,
    pub training_images: usize,
    pub public_test_images: usize,
    pub feature_len: usize,
    /// HOG extraction of Training and PublicTest, and standardisation.
    pub feature_seconds: f64,
}

/// The evaluation of a HOG-SVM on a set of images.
#[derive(Debug, Clone)]
pub struct HogSvmEvaluation {
    pub metrics: Metrics,
    /// Per image; `probabilities` are the softmax of the margins.
    pub predictions: Vec<Prediction>,
}

/// A trained HOG-SVM: features, standardisation and the seven linear scorers.
#[derive(Debug, Clone, PartialEq)]
pub struct HogSvm {
    pub config: HogSvmConfig,
    /// The C the scorers were trained with.
    pub c: f64,
    pub standardizer: Standardizer,
    pub classifier: LinearOvr,
}

#[derive(Serialize, Deserialize)]
struct TaggedConfig {
    model: String,
    #[serde(flatten)]
    config: HogSvmConfig,
}

/// Trains on Training for every C of the grid (ascending, each warm-started from the previous)
/// and keeps the C with the best PublicTest accuracy. `on_candidate` hears each C's result.
pub fn train(
    dataset: &Dataset,
    config: &HogSvmConfig,
    mut on_candidate: impl FnMut(&Candidate),
) -> Result<(HogSvm, Selection), HogSvmError> {
    let dim = config.validate()?;
    let training = dataset.view(Split::Training);
    let public = dataset.view(Split::PublicTest);
    if training.is_empty() {
        return Err(HogSvmError::EmptySplit(Split::Training, "train on"));
    }
    if public.is_empty() {
        return Err(HogSvmError::EmptySplit(Split::PublicTest, "choose C on"));
    }
    let started = Instant::now();
    let mut x_train = extract_features(&training, &config.hog)?;
    let standardizer = Standardizer::fit(&x_train);
    standardizer.apply_all(&mut x_train);
    let mut x_public = extract_features(&public, &config.hog)?;
    standardizer.apply_all(&mut x_public);
    let feature_seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "HOG features: {} x {dim} (Training), {} (PublicTest), {feature_seconds:.1} s",
        training.len(),
        public.len()
    );
    let labels: Vec<usize> = training.labels().iter().map(|e| e.index()).collect();
    let public_labels: Vec<usize> = public.labels().iter().map(|e| e.index()).collect();
    let mut grid = config.c_grid.clone();
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    let mut alphas: [Option<Vec<f64>>; NUM_CLASSES] = Default::default();
    let mut candidates = Vec::with_capacity(grid.len());
    let mut best: Option<(f64, f64, LinearOvr)> = None;
    for (step, &c) in grid.iter().enumerate() {
        let options = DcdOptions {
            c,
            tolerance: config.tolerance,
            max_epochs: config.max_epochs,
            seed: config.seed.wrapping_add(step as u64),
        };
        let started = Instant::now();
        let (classifier, epochs, converged) = train_ovr(&x_train, &labels, &options, &mut alphas);
        let train_seconds = started.elapsed().as_secs_f64();
        let predicted = predict_rows(&classifier, &x_public);
        let accuracy = Metrics::from_predictions(&public_labels, &predicted).accuracy;
        if !converged {
            tracing::warn!("C = {c}: stopped after {epochs} passes before the tolerance");
        }
        let candidate = Candidate {
            c,
            public_test_accuracy: accuracy,
            epochs,
            converged,
            train_seconds,
        };
        on_candidate(&candidate);
        candidates.push(candidate);
        if best.as_ref().is_none_or(|(_, acc, _)| accuracy > *acc) {
            best = Some((c, accuracy, classifier));
        }
    }
    let (c, _, classifier) = best.expect("the grid is not empty");
    let selection = Selection {
        chosen_c: c,
        candidates,
        training_images: training.len(),
        public_test_images: public.len(),
        feature_len: dim,
        feature_seconds,
    };
    let model = HogSvm {
        config: config.clone(),
        c,
        standardizer,
        classifier,
    };
    Ok((model, selection))
}

impl HogSvm {
    /// Margins and their softmax for one 48x48 image (2304 grey values, row-major).
    pub fn predict(&self, pixels: &[u8]) -> Result<Scores, HogSvmError> {
        let mut x = descriptor(pixels, &self.config.hog)?;
        self.standardizer.apply(&mut x);
        Ok(Scores::from_margins(self.classifier.margins(&x)))
    }

    /// Metrics and per-image predictions on `view`.
    pub fn evaluate(&self, view: &View<'_>) -> Result<HogSvmEvaluation, HogSvmError> {
        let mut x = extract_features(view, &self.config.hog)?;
        self.standardizer.apply_all(&mut x);
        let dataset = view.dataset();
        let predictions: Vec<Prediction> = (0..x.rows)
            .into_par_iter()
            .map(|k| {
                let scores = Scores::from_margins(self.classifier.margins(x.row(k)));
                Prediction {
                    row: dataset.rows()[view.indices()[k]],
                    label: view.label(k).index(),
                    predicted: scores.predicted.index(),
                    probabilities: scores.probabilities,
                }
            })
            .collect();
        let truth: Vec<usize> = predictions.iter().map(|p| p.label).collect();
        let predicted: Vec<usize> = predictions.iter().map(|p| p.predicted).collect();
        Ok(HogSvmEvaluation {
            metrics: Metrics::from_predictions(&truth, &predicted),
            predictions,
        })
    }

    /// Writes `config.json`, `weights.safetensors` and `selection.json` into `dir` (created if
    /// needed), each atomically.
    pub fn save(&self, dir: &Path, selection: &Selection) -> Result<(), HogSvmError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let tensor = |path: &Path, data: &[f32], shape: &[usize]| {
            Tensor::from_slice(data, shape, &Device::Cpu)
                .map_err(|e| CheckpointError::invalid(path, e))
        };
        let weights_path = dir.join(WEIGHTS);
        let dim = self.classifier.dim;
        let mut tensors = HashMap::new();
        tensors.insert(
            "weights".to_string(),
            tensor(&weights_path, &self.classifier.weights, &[NUM_CLASSES, dim])?,
        );
        tensors.insert(
            "bias".to_string(),
            tensor(&weights_path, &self.classifier.bias, &[NUM_CLASSES])?,
        );
        tensors.insert(
            "feature_mean".to_string(),
            tensor(&weights_path, &self.standardizer.mean, &[dim])?,
        );
        tensors.insert(
            "feature_std".to_string(),
            tensor(&weights_path, &self.standardizer.std, &[dim])?,
        );
        checkpoint::save_tensors(&weights_path, &tensors)?;
        write_json(&dir.join(SELECTION), selection)?;
        let tagged = TaggedConfig {
            model: MODEL_TAG.to_string(),
            config: self.config.clone(),
        };
        write_json(&dir.join(CONFIG), &tagged)?;
        Ok(())
    }

    /// Loads a run directory written by [`HogSvm::save`]; errors name the offending file.
    pub fn open(dir: &Path) -> Result<(Self, Selection), HogSvmError> {
        let config_path = dir.join(CONFIG);
        let tagged: TaggedConfig = read_json(&config_path)?;
        if tagged.model != MODEL_TAG {
            return Err(CheckpointError::invalid(
                &config_path,
                format!("model '{}' is not '{MODEL_TAG}'", tagged.model),
            )
            .into());
        }
        let config = tagged.config;
        let dim = config
            .validate()
            .map_err(|e| CheckpointError::invalid(&config_path, e))?;
        let selection: Selection = read_json(&dir.join(SELECTION))?;
        let path = dir.join(WEIGHTS);
        let mut tensors = checkpoint::load_tensors(&path, &Device::Cpu)?;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, HogSvmError> {
            let t = tensors.remove(name).ok_or_else(|| {
                CheckpointError::invalid(&path, format!("missing tensor '{name}'"))
            })?;
            if t.dims() != shape {
                return Err(CheckpointError::invalid(
                    &path,
                    format!(
                        "tensor '{name}' has shape {:?}, the config needs {shape:?}",
                        t.dims()
                    ),
                )
                .into());
            }
            let values = t
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| CheckpointError::invalid(&path, e))?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(CheckpointError::invalid(
                    &path,
                    format!("tensor '{name}' has non-finite values"),
                )
                .into());
            }
            Ok(values)
        };
        let weights = take("weights", &[NUM_CLASSES, dim])?;
        let bias_values = take("bias", &[NUM_CLASSES])?;
        let mean = take("feature_mean", &[dim])?;
        let std = take("feature_std", &[dim])?;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(CheckpointError::invalid(&path, "feature_std must be positive").into());
        }
        let mut bias = [0f32; NUM_CLASSES];
        bias.copy_from_slice(&bias_values);
        let model = HogSvm {
            config,
            c: selection.chosen_c,
            standardizer: Standardizer { mean, std },
            classifier: LinearOvr { dim, weights, bias },
        };
        Ok((model, selection))
    }
}

/// Whether `path` (a run directory, or a file inside one) is a HOG-SVM run: its `config.json`
/// has `"model": "hog-svm"`.
pub fn is_hog_svm_run(path: &Path) -> bool {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    std::fs::read(dir.join(CONFIG))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|json| json.get("model").and_then(|m| m.as_str()) == Some(MODEL_TAG))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_data::synthetic::{SyntheticConfig, generate};
    use rand::Rng;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn hog_features_have_the_documented_length_and_are_deterministic() {
        let data = generate(&SyntheticConfig::small(3));
        let eight = HogParams {
            cell_side: 8,
            signed: false,
            ..HogParams::default()
        };
        // 6x6 cells, 5x5 blocks of 2x2 cells, 9 bins: 5 * 5 * 4 * 9 = 900.
        assert_eq!(eight.feature_len().unwrap(), 900);
        // 12x12 cells, 11x11 blocks: 11 * 11 * 4 * 9 = 4356.
        assert_eq!(HogParams::default().feature_len().unwrap(), 4356);
        let first = hog_features(data.image(0), &eight).unwrap();
        assert_eq!(first.len(), 900);
        assert_eq!(first, hog_features(data.image(0), &eight).unwrap());
        assert!(first.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(first.iter().any(|v| *v > 0.0));
        // Every block is L2-normalised: each 36-value block has norm 1 (the image has texture).
        let norm: f32 = first[..36].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "block norm {norm}");
        // The parallel extraction gives the same rows as one at a time, in view order.
        let view = data.view(Split::PublicTest);
        let x = extract_features(&view, &eight).unwrap();
        assert_eq!((x.rows, x.dim), (view.len(), 900));
        for k in [0, 7, view.len() - 1] {
            assert_eq!(x.row(k), hog_features(view.image(k), &eight).unwrap());
        }
        assert_eq!(x, extract_features(&view, &eight).unwrap());
        // Signed gradients differ from unsigned ones.
        let signed = HogParams {
            signed: true,
            ..eight
        };
        assert_ne!(hog_features(data.image(0), &signed).unwrap(), first);
    }

    #[test]
    fn bad_hog_parameters_and_image_sizes_are_errors() {
        let five = HogParams {
            cell_side: 5,
            ..HogParams::default()
        };
        assert!(matches!(five.feature_len(), Err(HogSvmError::Config(m)) if m.contains("5")));
        let zero = HogParams {
            orientations: 0,
            ..HogParams::default()
        };
        assert!(zero.feature_len().is_err());
        let err = hog_features(&[0u8; 100], &HogParams::default()).unwrap_err();
        assert!(matches!(err, HogSvmError::ImageSize(100)), "{err}");
        let config = HogSvmConfig {
            c_grid: vec![1.0, -1.0],
            ..HogSvmConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("c_grid")
        );
    }

    /// Two Gaussian blobs in 5 dimensions, separated by a margin along a random direction.
    fn separable(n: usize, seed: u64) -> (FeatureMatrix, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = 5;
        let direction: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let norm = direction.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut data = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        while y.len() < n {
            let x: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let projection = x.iter().zip(&direction).map(|(a, b)| a * b).sum::<f32>() / norm;
            if projection.abs() < 0.3 {
                continue; // keep a gap of 0.6 around the plane through 0.5 * direction
            }
            y.push(if projection > 0.0 { 1.0 } else { -1.0 });
            data.extend(x.iter().zip(&direction).map(|(a, d)| a + 0.5 * d / norm));
        }
        (FeatureMatrix::new(n, dim, data), y)
    }

    #[test]
    fn dcd_separates_separable_data_and_reaches_the_optimum() {
        let (x, y) = separable(200, 1);
        let options = DcdOptions {
            c: 10.0,
            tolerance: 1e-6,
            max_epochs: 10_000,
            seed: 7,
        };
        let svm = train_binary(&x, &y, &options, None);
        assert!(svm.converged, "{} epochs", svm.epochs);
        let errors = (0..x.rows)
            .filter(|&i| svm.margin(x.row(i)) * y[i] <= 0.0)
            .count();
        assert_eq!(errors, 0);
        // Weak duality: dual <= primal optimum <= primal(w); a gap near 0 proves optimality.
        let primal = svm.primal_objective(&x, &y, options.c);
        let dual = svm.dual_objective(options.c);
        assert!(primal >= dual - 1e-9, "primal {primal} < dual {dual}");
        assert!(
            (primal - dual) / primal < 1e-5,
            "duality gap {primal} - {dual}"
        );
        // No random perturbation of (w, b) lowers the primal objective.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let mut other = svm.clone();
            for w in &mut other.weights {
                *w += rng.random_range(-1e-3..1e-3);
            }
            other.bias += rng.random_range(-1e-3..1e-3);
            assert!(other.primal_objective(&x, &y, options.c) >= primal - 1e-9);
        }
        // Same seed, same solution; a warm start from it stops within a few passes.
        assert_eq!(train_binary(&x, &y, &options, None), svm);
        let warm = train_binary(&x, &y, &options, Some(svm.alpha.clone()));
        assert!(
            warm.epochs <= 5 && warm.epochs < svm.epochs,
            "{} passes warm, {} cold",
            warm.epochs,
            svm.epochs
        );
    }

    #[test]
    fn dcd_matches_the_closed_form_of_a_symmetric_pair() {
        // x = +a (y = +1) and x = -a (y = -1): by symmetry b = 0 and
        // w minimises ½w² + 2C(1 − aw)², so w = 4Ca / (1 + 4Ca²).
        let (a, c) = (0.5f64, 2.0f64);
        let x = FeatureMatrix::new(2, 1, vec![a as f32, -a as f32]);
        let y = [1.0, -1.0];
        let options = DcdOptions {
            c,
            tolerance: 1e-10,
            max_epochs: 100_000,
            seed: 0,
        };
        let svm = train_binary(&x, &y, &options, None);
        let expected = 4.0 * c * a / (1.0 + 4.0 * c * a * a);
        assert!((svm.weights[0] - expected).abs() < 1e-6, "{svm:?}");
        assert!(svm.bias.abs() < 1e-6, "{svm:?}");
    }

    fn quick_config() -> HogSvmConfig {
        HogSvmConfig {
            hog: HogParams {
                cell_side: 8,
                ..HogParams::default()
            },
            c_grid: vec![0.01, 0.1],
            ..HogSvmConfig::default()
        }
    }

    #[test]
    fn hog_svm_learns_synthetic_faces_and_round_trips() {
        let data = generate(&SyntheticConfig::small(5));
        let mut heard = Vec::new();
        let (model, selection) = train(&data, &quick_config(), |c| heard.push(c.clone())).unwrap();
        assert_eq!(heard, selection.candidates);
        assert_eq!(selection.candidates.len(), 2);
        assert_eq!(selection.feature_len, 900);
        let best = selection
            .candidates
            .iter()
            .map(|c| c.public_test_accuracy)
            .fold(0.0, f64::max);
        let chosen = selection
            .candidates
            .iter()
            .find(|c| c.c == selection.chosen_c)
            .unwrap();
        assert_eq!(chosen.public_test_accuracy, best);
        // Chance is 1/7; the gratings are easy for HOG.
        let private = data.view(Split::PrivateTest);
        let evaluation = model.evaluate(&private).unwrap();
        assert_eq!(evaluation.metrics.n, private.len());
        assert!(
            evaluation.metrics.accuracy > 0.8,
            "PrivateTest accuracy {}",
            evaluation.metrics.accuracy
        );
        // predict agrees with evaluate; probabilities are a softmax of the margins.
        let p = &evaluation.predictions[3];
        let scores = model.predict(private.image(3)).unwrap();
        assert_eq!(scores.predicted.index(), p.predicted);
        assert_eq!(scores.probabilities, p.probabilities);
        assert!((scores.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(matches!(
            model.predict(&[1, 2, 3]),
            Err(HogSvmError::ImageSize(3))
        ));

        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path(), &selection).unwrap();
        assert!(is_hog_svm_run(dir.path()));
        assert!(is_hog_svm_run(&dir.path().join(WEIGHTS)));
        let (loaded, loaded_selection) = HogSvm::open(dir.path()).unwrap();
        assert_eq!(loaded, model);
        assert_eq!(loaded_selection, selection);
        let again = loaded.evaluate(&private).unwrap();
        assert_eq!(again.predictions, evaluation.predictions);
    }

    #[test]
    fn missing_or_corrupt_files_are_errors_naming_the_file() {
        let data = generate(&SyntheticConfig::small(6));
        let config = HogSvmConfig {
            c_grid: vec![0.1],
            ..quick_config()
        };
        let (model, selection) = train(&data, &config, |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path(), &selection).unwrap();
        let weights = dir.path().join(WEIGHTS);

        std::fs::write(&weights, b"not safetensors").unwrap();
        let err = HogSvm::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&weights.display().to_string()), "{err}");

        std::fs::remove_file(&weights).unwrap();
        let err = HogSvm::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&weights.display().to_string()), "{err}");

        // Weights of another HOG setting: the shapes disagree with the config.
        let other = HogSvm {
            config: HogSvmConfig::default(),
            ..model.clone()
        };
        let other_dir = tempfile::tempdir().unwrap();
        other.save(other_dir.path(), &selection).unwrap();
        std::fs::copy(other_dir.path().join(CONFIG), dir.path().join(CONFIG)).unwrap();
        model.save(&dir.path().join("x"), &selection).unwrap();
        std::fs::copy(dir.path().join("x").join(WEIGHTS), &weights).unwrap();
        let err = HogSvm::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&weights.display().to_string()) && err.contains("shape"),
            "{err}"
        );

        // A CNN run's config is not a HOG-SVM run.
        std::fs::write(
            dir.path().join(CONFIG),
            br#"{"model": {"architecture": "seed"}}"#,
        )
        .unwrap();
        assert!(!is_hog_svm_run(dir.path()));
        let err = HogSvm::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CONFIG), "{err}");
    }

    #[test]
    fn training_needs_training_and_public_test_images() {
        let data = generate(&SyntheticConfig {
            per_split: [30, 0, 10],
            ..SyntheticConfig::small(1)
        });
        let err = train(&data, &quick_config(), |_| {}).unwrap_err();
        assert!(
            matches!(err, HogSvmError::EmptySplit(Split::PublicTest, _)),
            "{err}"
        );
    }
}
