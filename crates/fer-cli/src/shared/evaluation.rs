//! Evaluations of trained models with a progress bar, and their reports (CNN, ensemble,
//! HOG-SVM): the figures with and without the test images copied from Training, printed as
//! tables or JSON, and per-image predictions as CSV.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use candle_core::Device;
use fer_data::{Dataset, Duplicates, Emotion, Split, View};
use fer_model::eval::{Evaluation, Prediction, evaluate_with_progress, metrics_excluding};
use fer_model::{Metrics, TrainedModel};
use fer_report::EvalReport;

use crate::shared::progress::progress_bar;

/// Images per forward pass of [`evaluate_trained`].
const BATCH_SIZE: usize = 256;

/// `trained` on `view` in batches of [`BATCH_SIZE`], with a progress bar unless `quiet`.
pub fn evaluate_trained(
    trained: &TrainedModel,
    view: &View<'_>,
    device: &Device,
    quiet: bool,
) -> anyhow::Result<Evaluation> {
    let bar = progress_bar(view.len(), quiet, "images evaluated");
    let evaluation = evaluate_with_progress(
        trained.model.as_ref(),
        view,
        &trained.normalizer,
        device,
        BATCH_SIZE,
        &mut |n| bar.inc(n as u64),
    )?;
    bar.finish_and_clear();
    Ok(evaluation)
}

/// Prints `report` as one JSON object or as tables.
pub fn print_report(report: &EvalReport, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(report)?)?;
    } else {
        print!("{}", report_text(report));
    }
    Ok(())
}

/// The report of an evaluation on `split` (mean loss `loss`, if the model has one), with the
/// same figures without the split's images that have an exact copy in Training: FER2013's
/// test splits share 280 (PublicTest) and 288 (PrivateTest) images with Training, which a
/// model may have learnt by heart.
pub fn split_report(
    dataset: &Dataset,
    split: Split,
    metrics: &Metrics,
    predictions: &[Prediction],
    loss: Option<f64>,
) -> EvalReport {
    let report = EvalReport::new(split, metrics, loss);
    if split == Split::Training {
        return report;
    }
    let copies = Duplicates::find(dataset).rows_with_copy_in_training(split);
    let excluded = predictions
        .iter()
        .filter(|p| copies.contains(&p.row))
        .count();
    if excluded == 0 {
        return report;
    }
    report.with_training_copies_removed(excluded, &metrics_excluding(predictions, &copies))
}

/// The text report: a summary line, the confusion matrix, per-class figures, and the
/// summary without Training copies.
pub fn report_text(r: &EvalReport) -> String {
    let mut out = String::new();
    let loss = r.loss.map(|l| format!(", loss {l:.4}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{}: {} images, accuracy {:.2}%, macro-F1 {:.3}{loss}",
        r.split,
        r.n,
        100.0 * r.accuracy,
        r.macro_f1,
    );
    if let Some(w) = &r.without_training_copies {
        let _ = writeln!(
            out,
            "without the {} images that have an exact copy in Training: {} images, accuracy {:.2}%, macro-F1 {:.3}",
            w.excluded,
            w.n,
            100.0 * w.accuracy,
            w.macro_f1,
        );
    }
    out.push('\n');
    let _ = write!(out, "{:<10}", "true\\pred");
    for emotion in Emotion::ALL {
        let _ = write!(out, "{:>9}", emotion.name());
    }
    let _ = writeln!(out, "{:>11}{:>8}{:>8}", "precision", "recall", "F1");
    for (k, emotion) in Emotion::ALL.iter().enumerate() {
        let _ = write!(out, "{:<10}", emotion.name());
        for count in r.confusion[k] {
            let _ = write!(out, "{count:>9}");
        }
        let c = &r.per_class[k];
        let _ = writeln!(out, "{:>11.3}{:>8.3}{:>8.3}", c.precision, c.recall, c.f1);
    }
    out
}

/// Writes per-image predictions (row, label, predicted, 7 probabilities) as CSV.
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> anyhow::Result<()> {
    let mut text = String::from("row,label,predicted");
    for emotion in Emotion::ALL {
        let _ = write!(text, ",p_{}", emotion.name().to_lowercase());
    }
    text.push('\n');
    for p in predictions {
        let _ = write!(text, "{},{},{}", p.row, p.label, p.predicted);
        for prob in p.probabilities {
            let _ = write!(text, ",{prob:.6}");
        }
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
