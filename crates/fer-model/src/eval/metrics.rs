//! Classification metrics: accuracy, confusion matrix, per-class precision/recall/F1, macro-F1.

use serde::{Deserialize, Serialize};

use crate::head::NUM_CLASSES;

/// Precision, recall and F1 of one class, with its support (true count).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Metrics of predictions against labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// `confusion[true][predicted]`.
    pub confusion: [[usize; NUM_CLASSES]; NUM_CLASSES],
    pub per_class: Vec<ClassMetrics>,
}

impl Metrics {
    /// Computes every metric from parallel slices of labels and predictions (both 0..7).
    pub fn from_predictions(labels: &[usize], predictions: &[usize]) -> Self {
        assert_eq!(labels.len(), predictions.len(), "one prediction per label");
        let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
        for (&t, &p) in labels.iter().zip(predictions) {
            confusion[t][p] += 1;
        }
        let n = labels.len();
        let correct: usize = (0..NUM_CLASSES).map(|k| confusion[k][k]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..NUM_CLASSES)
            .map(|k| {
                let support: usize = confusion[k].iter().sum();
                let predicted: usize = (0..NUM_CLASSES).map(|t| confusion[t][k]).sum();
                let precision = ratio(confusion[k][k], predicted);
                let recall = ratio(confusion[k][k], support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f64>() / NUM_CLASSES as f64;
        Metrics {
            n,
            accuracy: ratio(correct, n),
            macro_f1,
            confusion,
            per_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_a_hand_worked_example() {
        // Class 0: 3 samples, 2 right, 1 called class 1. Class 1: 2 samples, both right.
        // Class 2: 1 sample, called class 0.
        let labels = [0, 0, 0, 1, 1, 2];
        let predictions = [0, 0, 1, 1, 1, 0];
        let m = Metrics::from_predictions(&labels, &predictions);
        assert_eq!(m.n, 6);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(m.confusion[0], [2, 1, 0, 0, 0, 0, 0]);
        assert_eq!(m.confusion[2][0], 1);
        // Class 0: precision 2/3, recall 2/3. Class 1: precision 2/3, recall 1 -> F1 0.8.
        assert!((m.per_class[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[1].f1 - 0.8).abs() < 1e-12);
        assert_eq!(m.per_class[2].f1, 0.0);
        assert_eq!(m.per_class[1].support, 2);
        let expected_macro = (2.0 / 3.0 + 0.8) / 7.0;
        assert!((m.macro_f1 - expected_macro).abs() < 1e-12);
    }
}
