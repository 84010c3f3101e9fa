//! `EvalReport`: what `fer eval --json` prints and stores in a run directory as
//! `eval-<split>.json`, so that plots and reports can read it back.

use std::path::{Path, PathBuf};

use fer_data::{Emotion, Split};
use fer_model::Metrics;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of classes, as in every confusion matrix here.
pub const CLASSES: usize = Emotion::COUNT;

/// Precision, recall and F1 of one class, with its name and support (true count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Figures of the same evaluation on part of the split's images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetReport {
    /// Images of the split left out.
    pub excluded: usize,
    /// Images kept.
    pub n: usize,
    /// In 0..1.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Recall per class, in label order.
    pub recall: Vec<f64>,
}

/// One evaluation of a model on one split (the JSON of `fer eval --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Split name as [`Split::name`] writes it (`PrivateTest`).
    pub split: String,
    pub n: usize,
    /// In 0..1.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Mean loss per image; `None` (JSON null) for models without a loss (HOG + SVM) or a
    /// non-finite one.
    #[serde(default)]
    pub loss: Option<f64>,
    /// `confusion[true][predicted]`.
    pub confusion: [[usize; CLASSES]; CLASSES],
    /// One entry per class, in label order.
    pub per_class: Vec<ClassReport>,
    /// The same figures without the split's images that have an exact copy in Training
    /// (FER2013 has 280 such PublicTest and 288 such PrivateTest images). Absent when the
    /// split has none, and in reports written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_training_copies: Option<SubsetReport>,
}

impl EvalReport {
    /// The report of `metrics` measured on `split` with mean loss `loss` (if the model has one).
    pub fn new(split: Split, metrics: &Metrics, loss: Option<f64>) -> Self {
        let per_class = Emotion::ALL
            .iter()
            .zip(&metrics.per_class)
            .map(|(emotion, c)| ClassReport {
                class: emotion.name().to_string(),
                precision: c.precision,
                recall: c.recall,
                f1: c.f1,
                support: c.support,
            })
            .collect();
        EvalReport {
            split: split.name().to_string(),
            n: metrics.n,
            accuracy: metrics.accuracy,
            macro_f1: metrics.macro_f1,
            loss: loss.filter(|l| l.is_finite()),
            confusion: metrics.confusion,
            per_class,
            without_training_copies: None,
        }
    }

    /// Adds the figures measured without the `excluded` images that have an exact copy in
    /// Training (`metrics`: those of the remaining images).
    pub fn with_training_copies_removed(mut self, excluded: usize, metrics: &Metrics) -> Self {
        self.without_training_copies = Some(SubsetReport {
            excluded,
            n: metrics.n,
            accuracy: metrics.accuracy,
            macro_f1: metrics.macro_f1,
            recall: metrics.per_class.iter().map(|c| c.recall).collect(),
        });
        self
    }

    /// Reads and checks a stored report.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let report: EvalReport = serde_json::from_str(&text).map_err(|e| Error::json(path, e))?;
        report
            .check()
            .map_err(|message| Error::invalid(path, message))?;
        Ok(report)
    }

    /// Writes the report as pretty JSON (to a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::json(path, e))?;
        Ok(fer_data::write_atomically(path, text.as_bytes())?)
    }

    /// Where a run directory keeps its evaluation on `split`: `eval-private-test.json` etc.
    pub fn path_in(run_dir: &Path, split: Split) -> PathBuf {
        run_dir.join(format!("eval-{}.json", split_slug(split)))
    }

    /// Consistency of the figures: 7 classes, confusion total equal to `n`, shares in 0..1.
    fn check(&self) -> std::result::Result<(), String> {
        if self.per_class.len() != CLASSES {
            return Err(format!(
                "per_class: expected {CLASSES} classes, found {}",
                self.per_class.len()
            ));
        }
        let total: usize = self.confusion.iter().flatten().sum();
        if total != self.n {
            return Err(format!(
                "confusion: counts add up to {total}, but n is {}",
                self.n
            ));
        }
        let shares = [("accuracy", self.accuracy), ("macro_f1", self.macro_f1)]
            .into_iter()
            .chain(self.per_class.iter().flat_map(|c| {
                [
                    ("precision", c.precision),
                    ("recall", c.recall),
                    ("f1", c.f1),
                ]
            }));
        let subset = self.without_training_copies.iter().flat_map(|s| {
            [
                ("without_training_copies.accuracy", s.accuracy),
                ("without_training_copies.macro_f1", s.macro_f1),
            ]
            .into_iter()
            .chain(
                s.recall
                    .iter()
                    .map(|&r| ("without_training_copies.recall", r)),
            )
        });
        for (field, value) in shares.chain(subset) {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{field}: {value} is not in 0..1"));
            }
        }
        if let Some(subset) = &self.without_training_copies {
            if subset.n + subset.excluded != self.n {
                return Err(format!(
                    "without_training_copies: {} kept + {} excluded images, but n is {}",
                    subset.n, subset.excluded, self.n
                ));
            }
            if subset.recall.len() != CLASSES {
                return Err(format!(
                    "without_training_copies.recall: expected {CLASSES} classes, found {}",
                    subset.recall.len()
                ));
            }
        }
        Ok(())
    }

    /// `confusion[t][p] / sum(confusion[t])`, 0 for a class without samples.
    pub fn row_shares(&self) -> [[f64; CLASSES]; CLASSES] {
        self.confusion.map(|row| {
            let total: usize = row.iter().sum();
            row.map(|c| {
                if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                }
            })
        })
    }
}

/// `training`, `public-test`, `private-test`: the CLI's spelling of a split.
pub fn split_slug(split: Split) -> &'static str {
    match split {
        Split::Training => "training",
        Split::PublicTest => "public-test",
        Split::PrivateTest => "private-test",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EvalReport {
        let labels = [0, 0, 0, 1, 1, 2, 3, 3];
        let predictions = [0, 0, 1, 1, 1, 0, 3, 6];
        let metrics = Metrics::from_predictions(&labels, &predictions);
        EvalReport::new(Split::PrivateTest, &metrics, Some(1.25))
    }

    #[test]
    fn round_trips_through_the_run_directory() {
        let dir = tempfile::tempdir().unwrap();
        let r = report();
        assert_eq!(r.per_class[3].class, "Happy");
        assert_eq!(r.per_class[3].support, 2);
        let path = EvalReport::path_in(dir.path(), Split::PrivateTest);
        assert!(path.ends_with("eval-private-test.json"));
        r.save(&path).unwrap();
        assert_eq!(EvalReport::load(&path).unwrap(), r);
    }

    #[test]
    fn figures_without_training_copies_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval-private-test.json");
        // Images 3 and 7 of report() (labels 1 and 3) left out: 6 kept, 4 of them right.
        let kept = Metrics::from_predictions(&[0, 0, 0, 1, 2, 3], &[0, 0, 1, 1, 0, 3]);
        let r = report().with_training_copies_removed(2, &kept);
        let subset = r.without_training_copies.as_ref().unwrap();
        assert_eq!((subset.n, subset.excluded), (6, 2));
        assert!((subset.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(subset.recall[3], 1.0);
        r.save(&path).unwrap();
        assert_eq!(EvalReport::load(&path).unwrap(), r);
        // A report written before the field existed still loads.
        let mut old = serde_json::to_value(report()).unwrap();
        assert!(old.get("without_training_copies").is_none());
        old.as_object_mut()
            .unwrap()
            .remove("without_training_copies");
        std::fs::write(&path, old.to_string()).unwrap();
        assert_eq!(EvalReport::load(&path).unwrap(), report());
        // Counts that do not add up to the split are refused.
        let bad = report().with_training_copies_removed(3, &kept);
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        let error = EvalReport::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("6 kept + 3 excluded images, but n is 8"),
            "{error}"
        );
    }

    #[test]
    fn row_shares_are_normalized_per_true_class() {
        let shares = report().row_shares();
        assert!((shares[0][0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((shares[0][1] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(shares[4], [0.0; CLASSES]);
    }

    #[test]
    fn inconsistent_reports_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval-private-test.json");
        let mut r = report();
        r.n = 9;
        std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
        let error = EvalReport::load(&path).unwrap_err().to_string();
        assert!(error.contains("eval-private-test.json"), "{error}");
        assert!(error.contains("add up to 8, but n is 9"), "{error}");
        std::fs::write(&path, "{\"split\": 3").unwrap();
        let error = EvalReport::load(&path).unwrap_err().to_string();
        assert!(error.contains("invalid JSON"), "{error}");
    }
}
