//! The losses of both heads: the plain one ([`loss()`], the one reported on evaluation
//! splits) and, for training, label smoothing, class weights, focal loss, mixed labels and a
//! teacher's soft targets ([`Loss`]).

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::head::{Head, NUM_CLASSES};

/// How classes are weighted in the training loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Every image counts the same (the seed).
    #[default]
    None,
    /// Weight `n / (7 * n_c)` for class `c` of the Training split (sklearn's "balanced").
    Balanced,
    /// The square root of the balanced weights: a milder correction.
    SqrtBalanced,
}

impl ClassWeighting {
    /// The weight of each class given the Training split's class counts; `None` for no weights.
    pub fn weights(self, counts: &[usize; NUM_CLASSES]) -> Option<[f32; NUM_CLASSES]> {
        let total: usize = counts.iter().sum();
        let balanced = |c: usize| total as f64 / (NUM_CLASSES as f64 * counts[c].max(1) as f64);
        match self {
            ClassWeighting::None => None,
            ClassWeighting::Balanced => Some(std::array::from_fn(|c| balanced(c) as f32)),
            ClassWeighting::SqrtBalanced => {
                Some(std::array::from_fn(|c| balanced(c).sqrt() as f32))
            }
        }
    }
}

/// The training loss's options; the default is the plain loss of the head.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Softmax head: the target puts `1 - e` on the true class and `e / 7` on every class.
    pub label_smoothing: f32,
    /// Class weights; the batch loss is the weighted mean (as PyTorch's `weight=`).
    pub class_weighting: ClassWeighting,
    /// Softmax head: focal loss exponent (Lin et al. 2017), `(1 - p_true)^gamma` times each
    /// image's loss; 0 is plain cross-entropy.
    pub focal_gamma: f32,
}

impl LossConfig {
    /// Whether this is the head's plain loss ([`loss()`]).
    pub fn is_plain(&self) -> bool {
        self.label_smoothing == 0.0
            && self.focal_gamma == 0.0
            && self.class_weighting == ClassWeighting::None
    }

    /// Checks the ranges and that the options fit `head`.
    pub fn validate(&self, head: Head) -> std::result::Result<(), String> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "loss.label_smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if !(0.0..=10.0).contains(&self.focal_gamma) {
            return Err(format!(
                "loss.focal_gamma must be in [0, 10], got {}",
                self.focal_gamma
            ));
        }
        if head == Head::Svm && (self.label_smoothing != 0.0 || self.focal_gamma != 0.0) {
            return Err("label smoothing and focal loss need the softmax head".into());
        }
        Ok(())
    }
}

/// A training loss ready to apply: the options plus the resolved class weights, and for a
/// mixed batch (mixup, CutMix) the partners' labels, and for a distilled batch the teacher's
/// probabilities.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Loss {
    pub config: LossConfig,
    pub class_weights: Option<[f32; NUM_CLASSES]>,
    /// `None` for a batch of unmixed images.
    pub mix: Option<MixedLabels>,
    /// `None` without a teacher.
    pub soft: Option<SoftTargets>,
}

/// A teacher's class probabilities for one batch (knowledge distillation, Hinton et al. 2015):
/// the loss is `(1 - weight) * hard + weight * T^2 * CE(q_T, p_T)`, where `hard` is the loss of
/// the labels (smoothed, weighted, mixed as configured), `q_T` the teacher's probabilities
/// softened by the temperature T (`q^(1/T)`, renormalised), and `p_T` the student's
/// (`softmax(log p / T)`).
#[derive(Debug, Clone, PartialEq)]
pub struct SoftTargets {
    /// (N, 7) row-major, one row per image of the batch (for a mixed image, its own and its
    /// partner's rows mixed by the same weight as its pixels).
    pub probabilities: Vec<f32>,
    /// The soft term's share, in [0, 1].
    pub weight: f32,
    /// At least 1; 1 compares the distributions as they are.
    pub temperature: f32,
}

impl SoftTargets {
    /// The teacher's probabilities softened by the temperature, each row summing to 1.
    fn softened(&self) -> Vec<f32> {
        let inverse = 1.0 / self.temperature;
        let mut out = Vec::with_capacity(self.probabilities.len());
        for row in self.probabilities.chunks(NUM_CLASSES) {
            let powered: Vec<f32> = row.iter().map(|&q| q.max(0.0).powf(inverse)).collect();
            let sum: f32 = powered.iter().sum();
            out.extend(powered.iter().map(|&q| q / sum.max(f32::MIN_POSITIVE)));
        }
        out
    }

    /// `T^2` times the batch mean of the cross-entropy between the softened teacher and the
    /// softened student, whose log-probabilities are `log_probs` (N, 7).
    fn loss(&self, log_probs: &Tensor) -> Result<Tensor> {
        let n = log_probs.dim(0)?;
        if self.probabilities.len() != n * NUM_CLASSES {
            candle_core::bail!(
                "soft targets for {} images given for a batch of {n}",
                self.probabilities.len() / NUM_CLASSES
            );
        }
        let t = f64::from(self.temperature);
        let teacher = Tensor::from_vec(self.softened(), (n, NUM_CLASSES), log_probs.device())?;
        let student = candle_nn::ops::log_softmax(&(log_probs / t)?, 1)?;
        (teacher * student)?.sum(1)?.neg()?.mean_all()? * (t * t)
    }
}

/// The targets of a mixed batch (see `fer_augment::mix`): image `i` counts `weight` for its
/// own label and `1 - weight` for `partner_labels[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedLabels {
    pub partner_labels: Vec<u32>,
    pub weight: f32,
}

impl Loss {
    /// `config` with its class weights resolved from the Training class counts.
    pub fn new(config: LossConfig, counts: &[usize; NUM_CLASSES]) -> Self {
        Loss {
            config,
            class_weights: config.class_weighting.weights(counts),
            mix: None,
            soft: None,
        }
    }

    /// This loss for a batch with a teacher's probabilities (see [`SoftTargets`]).
    pub fn distilled(&self, soft: SoftTargets) -> Loss {
        Loss {
            soft: Some(soft),
            ..self.clone()
        }
    }

    /// This loss for a mixed batch: `weight` times the loss of the own labels plus
    /// `1 - weight` times the loss of `partner_labels` (Zhang et al. 2018, Yun et al. 2019).
    pub fn mixed(&self, partner_labels: Vec<u32>, weight: f32) -> Loss {
        Loss {
            mix: Some(MixedLabels {
                partner_labels,
                weight,
            }),
            ..self.clone()
        }
    }

    /// Whether this is the head's plain loss.
    pub fn is_plain(&self) -> bool {
        self.config.is_plain()
            && self.class_weights.is_none()
            && self.mix.is_none()
            && self.soft.is_none()
    }

    /// The batch loss of `scores` (N, 7) for `labels` (N,) u32 under `head`. A teacher's
    /// soft targets need the softmax head (`scores` are log-probabilities).
    pub fn compute(&self, head: Head, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let hard = self.hard(head, scores, labels)?;
        let Some(soft) = &self.soft else {
            return Ok(hard);
        };
        if head != Head::Softmax {
            candle_core::bail!("a teacher's soft targets need the softmax head");
        }
        let w = f64::from(soft.weight);
        (hard * (1.0 - w))? + (soft.loss(scores)? * w)?
    }

    /// The loss of the labels (own and, when mixed, partners').
    fn hard(&self, head: Head, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let Some(mix) = &self.mix else {
            return self.unmixed(head, scores, labels);
        };
        let partner = Tensor::from_slice(
            &mix.partner_labels,
            mix.partner_labels.len(),
            scores.device(),
        )?;
        let own = (self.unmixed(head, scores, labels)? * f64::from(mix.weight))?;
        own + (self.unmixed(head, scores, &partner)? * (1.0 - f64::from(mix.weight)))?
    }

    /// [`Loss::compute`] for unmixed labels.
    fn unmixed(&self, head: Head, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if self.config.is_plain() && self.class_weights.is_none() {
            return loss(head, scores, labels);
        }
        let device = scores.device();
        let targets = candle_nn::encoding::one_hot(labels.clone(), NUM_CLASSES, 1f32, 0f32)?;
        let per_image = match head {
            Head::Softmax => {
                let e = f64::from(self.config.label_smoothing);
                let soft = ((&targets * (1.0 - e))? + e / NUM_CLASSES as f64)?;
                let mut per = (soft * scores)?.sum(1)?.neg()?;
                if self.config.focal_gamma > 0.0 {
                    let p_true = (&targets * scores)?.sum(1)?.exp()?;
                    let factor = (1.0 - p_true)?
                        .clamp(0f32, 1f32)?
                        .powf(f64::from(self.config.focal_gamma))?;
                    per = (per * factor)?;
                }
                per
            }
            Head::Svm => {
                let signs = ((&targets * 2.0)? - 1.0)?;
                let margins = (1.0 - (signs * scores)?)?.relu()?;
                margins.sqr()?.sum(1)?
            }
        };
        match self.class_weights {
            None => per_image.mean_all(),
            Some(weights) => {
                let weights =
                    Tensor::from_slice(&weights, (NUM_CLASSES, 1), device)?.to_dtype(DType::F32)?;
                let per_weight = targets.matmul(&weights)?.squeeze(1)?;
                (per_image * &per_weight)?.sum_all()?
                    / f64::from(per_weight.sum_all()?.to_scalar::<f32>()?)
            }
        }
    }
}

/// The training loss of `head` for scores (N, 7) and labels (N,) as u32.
///
/// Softmax: mean negative log-likelihood. SVM: mean over the batch of the one-vs-rest squared
/// hinge `sum_k max(0, 1 - t_k s_k)^2` with `t_k = +1` for the true class and -1 otherwise.
pub fn loss(head: Head, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
    match head {
        Head::Softmax => candle_nn::loss::nll(scores, labels),
        Head::Svm => {
            let targets = candle_nn::encoding::one_hot(labels.clone(), NUM_CLASSES, 1f32, -1f32)?;
            let margins = (1.0 - (targets * scores)?)?.relu()?;
            margins.sqr()?.sum(1)?.mean_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scores() -> (Tensor, Tensor) {
        let logits = Tensor::new(
            &[
                [2.0f32, 0.5, -1.0, 0.0, 0.3, -0.2, 1.0],
                [0.1, 0.2, 0.3, 3.0, -1.0, 0.0, 0.5],
                [-0.5, 1.5, 0.0, 0.2, 0.4, 2.5, -1.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let log_probs = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let labels = Tensor::new(&[0u32, 4, 5], &Device::Cpu).unwrap();
        (log_probs, labels)
    }

    fn value(loss: &Loss, head: Head, s: &Tensor, l: &Tensor) -> f32 {
        loss.compute(head, s, l)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn options_match_their_definitions() {
        let (s, l) = scores();
        let lp = s.to_vec2::<f32>().unwrap();
        let labels = [0usize, 4, 5];
        let nll: Vec<f32> = labels.iter().enumerate().map(|(i, &c)| -lp[i][c]).collect();
        let plain = value(&Loss::default(), Head::Softmax, &s, &l);
        assert!((plain - nll.iter().sum::<f32>() / 3.0).abs() < 1e-6);

        let e = 0.1f32;
        let smooth = Loss {
            config: LossConfig {
                label_smoothing: e,
                ..Default::default()
            },
            ..Default::default()
        };
        let expected: f32 = (0..3)
            .map(|i| (1.0 - e) * nll[i] - e / 7.0 * lp[i].iter().sum::<f32>())
            .sum::<f32>()
            / 3.0;
        assert!((value(&smooth, Head::Softmax, &s, &l) - expected).abs() < 1e-5);

        let focal = Loss {
            config: LossConfig {
                focal_gamma: 2.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let expected: f32 = (0..3)
            .map(|i| (1.0 - (-nll[i]).exp()).powi(2) * nll[i])
            .sum::<f32>()
            / 3.0;
        assert!((value(&focal, Head::Softmax, &s, &l) - expected).abs() < 1e-5);

        let mut counts = [100usize; NUM_CLASSES];
        counts[0] = 400;
        counts[4] = 50;
        let weighted = Loss::new(
            LossConfig {
                class_weighting: ClassWeighting::Balanced,
                ..Default::default()
            },
            &counts,
        );
        let w = weighted.class_weights.unwrap();
        assert!((w[0] - 950.0 / (7.0 * 400.0)).abs() < 1e-6); // 400 + 50 + 5 x 100 images
        let wi: Vec<f32> = labels.iter().map(|&c| w[c]).collect();
        let expected = (0..3).map(|i| wi[i] * nll[i]).sum::<f32>() / wi.iter().sum::<f32>();
        assert!((value(&weighted, Head::Softmax, &s, &l) - expected).abs() < 1e-5);

        // The SVM head's plain loss is the squared hinge; weights apply to it too.
        let svm_plain = value(&Loss::default(), Head::Svm, &s, &l);
        let svm_weighted = value(&weighted, Head::Svm, &s, &l);
        let hinge: Vec<f32> = (0..3)
            .map(|i| {
                (0..7)
                    .map(|k| {
                        let t = if k == labels[i] { 1.0 } else { -1.0 };
                        (1.0 - t * lp[i][k]).max(0.0).powi(2)
                    })
                    .sum()
            })
            .collect();
        assert!((svm_plain - hinge.iter().sum::<f32>() / 3.0).abs() < 1e-4);
        let expected = (0..3).map(|i| wi[i] * hinge[i]).sum::<f32>() / wi.iter().sum::<f32>();
        assert!((svm_weighted - expected).abs() < 1e-4);
    }

    #[test]
    fn a_mixed_batch_weighs_own_and_partner_labels() {
        let (s, l) = scores();
        let lp = s.to_vec2::<f32>().unwrap();
        let own = [0usize, 4, 5];
        let partner = [3usize, 0, 5];
        for base in [
            Loss::default(),
            Loss {
                config: LossConfig {
                    label_smoothing: 0.1,
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            let mixed = base.mixed(partner.iter().map(|&c| c as u32).collect(), 0.3);
            assert!(!mixed.is_plain());
            let partner_labels = Tensor::new(&[3u32, 0, 5], &Device::Cpu).unwrap();
            let expected = 0.3 * value(&base, Head::Softmax, &s, &l)
                + 0.7 * value(&base, Head::Softmax, &s, &partner_labels);
            assert!((value(&mixed, Head::Softmax, &s, &l) - expected).abs() < 1e-5);
        }
        // Spelled out for the plain loss: 0.3 NLL(own) + 0.7 NLL(partner), batch mean.
        let plain = Loss::default().mixed(partner.iter().map(|&c| c as u32).collect(), 0.3);
        let expected = (0..3)
            .map(|i| -0.3 * lp[i][own[i]] - 0.7 * lp[i][partner[i]])
            .sum::<f32>()
            / 3.0;
        assert!((value(&plain, Head::Softmax, &s, &l) - expected).abs() < 1e-5);
    }

    #[test]
    fn a_distilled_batch_adds_the_softened_teachers_cross_entropy() {
        let (s, l) = scores();
        let lp = s.to_vec2::<f32>().unwrap();
        let teacher = [
            [0.5f32, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05],
            [0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0],
            [0.1, 0.2, 0.1, 0.1, 0.1, 0.3, 0.1],
        ];
        let (w, t) = (0.7f32, 3.0f32);
        // By hand: q_T = q^(1/T) renormalised, p_T = softmax(log p / T).
        let soft_ce: f32 = (0..3)
            .map(|i| {
                let q: Vec<f32> = teacher[i].iter().map(|q| q.powf(1.0 / t)).collect();
                let q_sum: f32 = q.iter().sum();
                let z: Vec<f32> = lp[i].iter().map(|v| v / t).collect();
                let log_norm = z.iter().map(|v| v.exp()).sum::<f32>().ln();
                -(0..7)
                    .map(|k| q[k] / q_sum * (z[k] - log_norm))
                    .sum::<f32>()
            })
            .sum::<f32>()
            / 3.0;
        for base in [Loss::default(), Loss::default().mixed(vec![3, 0, 5], 0.4)] {
            let distilled = base.distilled(SoftTargets {
                probabilities: teacher.concat(),
                weight: w,
                temperature: t,
            });
            assert!(!distilled.is_plain());
            let hard = value(&base, Head::Softmax, &s, &l);
            let expected = (1.0 - w) * hard + w * t * t * soft_ce;
            let got = value(&distilled, Head::Softmax, &s, &l);
            assert!((got - expected).abs() < 1e-5, "{got} against {expected}");
        }
        // Weight 1 at temperature 1 is the cross-entropy with the teacher alone; it is
        // smallest when the student's distribution is the teacher's.
        let pure = |probabilities: Vec<f32>| {
            Loss::default().distilled(SoftTargets {
                probabilities,
                weight: 1.0,
                temperature: 1.0,
            })
        };
        let own: Vec<f32> = lp.iter().flatten().map(|v| v.exp()).collect();
        let entropy = -own.iter().map(|p| p * p.ln()).sum::<f32>() / 3.0;
        assert!((value(&pure(own.clone()), Head::Softmax, &s, &l) - entropy).abs() < 1e-5);
        assert!(value(&pure(teacher.concat()), Head::Softmax, &s, &l) > entropy + 0.1);
        // A batch of the wrong size, or the SVM head, is an error, not a wrong figure.
        assert!(
            pure(own[..14].to_vec())
                .compute(Head::Softmax, &s, &l)
                .is_err()
        );
        assert!(pure(own).compute(Head::Svm, &s, &l).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let bad = LossConfig {
            label_smoothing: 1.5,
            ..Default::default()
        };
        assert!(
            bad.validate(Head::Softmax)
                .unwrap_err()
                .contains("label_smoothing")
        );
        let svm = LossConfig {
            focal_gamma: 2.0,
            ..Default::default()
        };
        assert!(
            svm.validate(Head::Svm)
                .unwrap_err()
                .contains("softmax head")
        );
        let sqrt = ClassWeighting::SqrtBalanced
            .weights(&[700, 70, 70, 70, 70, 70, 70])
            .unwrap();
        assert!((sqrt[1] - (1120.0f32 / 490.0).sqrt()).abs() < 1e-5);
    }
}
