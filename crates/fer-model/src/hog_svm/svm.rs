//! The one-vs-rest L2-regularised squared-hinge linear SVM, trained by dual coordinate descent
//! (Hsieh et al. 2008, LIBLINEAR's solver), and its scores.

use fer_data::Emotion;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::features::FeatureMatrix;
use crate::eval::argmax;
use crate::head::NUM_CLASSES;

/// One binary L2-regularised squared-hinge SVM: `min_w ½‖w‖² + C Σ max(0, 1 − yᵢ(w·xᵢ + b))²`,
/// with the bias `b` regularised like a weight (a constant feature 1, LIBLINEAR's `-B 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct BinarySvm {
    pub weights: Vec<f64>,
    pub bias: f64,
    /// The dual variables at the solution (`w = Σ αᵢ yᵢ xᵢ`).
    pub alpha: Vec<f64>,
    /// Passes over the data made.
    pub epochs: usize,
    /// Whether the stopping rule was met before `max_epochs`.
    pub converged: bool,
}

impl BinarySvm {
    /// `w·x + b`.
    pub fn margin(&self, x: &[f32]) -> f64 {
        dot(&self.weights, x) + self.bias
    }

    /// The primal objective `½(‖w‖² + b²) + C Σ max(0, 1 − yᵢ(w·xᵢ + b))²`.
    pub fn primal_objective(&self, x: &FeatureMatrix, y: &[f64], c: f64) -> f64 {
        let norm = self.weights.iter().map(|w| w * w).sum::<f64>() + self.bias * self.bias;
        let loss: f64 = (0..x.rows)
            .map(|i| (1.0 - y[i] * self.margin(x.row(i))).max(0.0).powi(2))
            .sum();
        0.5 * norm + c * loss
    }

    /// The dual objective `Σαᵢ − ½‖w‖² − Σαᵢ²/(4C)` (a lower bound of the primal optimum,
    /// equal to it at the solution).
    pub fn dual_objective(&self, c: f64) -> f64 {
        let norm = self.weights.iter().map(|w| w * w).sum::<f64>() + self.bias * self.bias;
        let sum: f64 = self.alpha.iter().sum();
        let sq: f64 = self.alpha.iter().map(|a| a * a).sum();
        sum - 0.5 * norm - sq / (4.0 * c)
    }
}

/// Solver settings of [`train_binary`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcdOptions {
    pub c: f64,
    pub tolerance: f64,
    pub max_epochs: usize,
    pub seed: u64,
}

fn dot(w: &[f64], x: &[f32]) -> f64 {
    w.iter().zip(x).map(|(w, &x)| w * f64::from(x)).sum()
}

/// `(w, b) += a * (x, 1)`.
fn axpy(w: &mut [f64], b: &mut f64, a: f64, x: &[f32]) {
    for (w, &x) in w.iter_mut().zip(x) {
        *w += a * f64::from(x);
    }
    *b += a;
}

/// Trains one binary squared-hinge SVM (`y` is +1/−1) by dual coordinate descent.
///
/// We write the solver rather than use linfa-svm: linfa's SMO works on a kernel matrix and is
/// far too slow for a 28k x 4k linear problem, while coordinate descent on the dual is a few
/// dozen lines, touches one row per step and converges in tens of passes. This is Algorithm 1
/// with shrinking of C.-J. Hsieh, K.-W. Chang, C.-J. Lin, S. S. Keerthi, S. Sundararajan, "A
/// Dual Coordinate Descent Method for Large-scale Linear SVM", ICML 2008 — LIBLINEAR's
/// `solve_l2r_l1l2_svc` for the L2 loss (`U = ∞`, `Dᵢᵢ = 1/(2C)`). The visiting order is a
/// ChaCha8 permutation from `options.seed`, so results are reproducible. `alpha`, if given, is
/// a warm start (e.g. the solution for a smaller C).
pub fn train_binary(
    x: &FeatureMatrix,
    y: &[f64],
    options: &DcdOptions,
    alpha: Option<Vec<f64>>,
) -> BinarySvm {
    assert_eq!(x.rows, y.len(), "one label per row");
    let n = x.rows;
    let diag = 0.5 / options.c;
    let mut alpha = alpha
        .filter(|a| a.len() == n)
        .unwrap_or_else(|| vec![0.0; n]);
    let mut w = vec![0f64; x.dim];
    let mut b = 0f64;
    for i in 0..n {
        if alpha[i] != 0.0 {
            axpy(&mut w, &mut b, alpha[i] * y[i], x.row(i));
        }
    }
    let qd: Vec<f64> = (0..n)
        .map(|i| diag + 1.0 + x.row(i).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut index: Vec<usize> = (0..n).collect();
    let mut active = n;
    // Shrinking threshold (LIBLINEAR's PGmax_old; its PGmin_old only shrinks variables at the
    // upper bound, which the squared hinge does not have).
    let mut pg_max_old = f64::INFINITY;
    let mut epochs = 0;
    let mut converged = false;
    while epochs < options.max_epochs {
        index[..active].shuffle(&mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut s = 0;
        while s < active {
            let i = index[s];
            let row = x.row(i);
            let g = y[i] * (dot(&w, row) + b) - 1.0 + alpha[i] * diag;
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrink: at the bound and likely to stay there.
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                axpy(&mut w, &mut b, (alpha[i] - old) * y[i], row);
            }
            s += 1;
        }
        epochs += 1;
        if pg_max - pg_min <= options.tolerance {
            if active == n {
                converged = true;
                break;
            }
            // Converged on the active set: check every variable once more.
            active = n;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    BinarySvm {
        weights: w,
        bias: b,
        alpha,
        epochs,
        converged,
    }
}

/// Seven one-vs-rest linear scorers: `margins(x)[k] = weights[k]·x + bias[k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearOvr {
    pub dim: usize,
    /// Row-major `7 x dim`.
    pub weights: Vec<f32>,
    pub bias: [f32; NUM_CLASSES],
}

impl LinearOvr {
    /// The seven margins of a (standardised) feature vector.
    pub fn margins(&self, x: &[f32]) -> [f32; NUM_CLASSES] {
        let mut out = self.bias;
        for (k, m) in out.iter_mut().enumerate() {
            let w = &self.weights[k * self.dim..(k + 1) * self.dim];
            *m += w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        }
        out
    }
}

/// Trains the seven one-vs-rest problems for one C in parallel; `alphas` holds each class's
/// warm start and receives its solution. Returns the scorer and the most passes any class took
/// and whether all converged.
pub(crate) fn train_ovr(
    x: &FeatureMatrix,
    labels: &[usize],
    options: &DcdOptions,
    alphas: &mut [Option<Vec<f64>>; NUM_CLASSES],
) -> (LinearOvr, usize, bool) {
    let solutions: Vec<BinarySvm> = alphas
        .par_iter_mut()
        .enumerate()
        .map(|(k, warm)| {
            let y: Vec<f64> = labels
                .iter()
                .map(|&l| if l == k { 1.0 } else { -1.0 })
                .collect();
            let class_options = DcdOptions {
                seed: options.seed.wrapping_mul(31).wrapping_add(k as u64),
                ..*options
            };
            let svm = train_binary(x, &y, &class_options, warm.take());
            *warm = Some(svm.alpha.clone());
            svm
        })
        .collect();
    let mut weights = Vec::with_capacity(NUM_CLASSES * x.dim);
    let mut bias = [0f32; NUM_CLASSES];
    for (k, svm) in solutions.iter().enumerate() {
        weights.extend(svm.weights.iter().map(|&w| w as f32));
        bias[k] = svm.bias as f32;
    }
    let epochs = solutions.iter().map(|s| s.epochs).max().unwrap_or(0);
    let converged = solutions.iter().all(|s| s.converged);
    (
        LinearOvr {
            dim: x.dim,
            weights,
            bias,
        },
        epochs,
        converged,
    )
}

/// The margins and their softmax for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// `w_k·x + b_k` per class (0 Angry .. 6 Neutral).
    pub margins: [f32; NUM_CLASSES],
    /// Softmax of the margins: for display only, not calibrated probabilities.
    pub probabilities: [f32; NUM_CLASSES],
    /// The class with the largest margin.
    pub predicted: Emotion,
}

impl Scores {
    pub(crate) fn from_margins(margins: [f32; NUM_CLASSES]) -> Self {
        let max = margins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probabilities = margins.map(|m| (m - max).exp());
        let total: f32 = probabilities.iter().sum();
        for p in &mut probabilities {
            *p /= total;
        }
        let predicted = Emotion::ALL[argmax(&margins)];
        Scores {
            margins,
            probabilities,
            predicted,
        }
    }
}

pub(crate) fn predict_rows(classifier: &LinearOvr, x: &FeatureMatrix) -> Vec<usize> {
    (0..x.rows)
        .into_par_iter()
        .map(|i| argmax(&classifier.margins(x.row(i))))
        .collect()
}
