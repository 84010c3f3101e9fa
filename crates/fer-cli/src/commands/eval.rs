//! `fer eval`: accuracy, macro-F1, confusion matrix and per-class figures of a trained model.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use fer_data::{Dataset, Duplicates, Emotion, Split};
use fer_model::eval::{Prediction, evaluate_with_progress, metrics_excluding};
use fer_model::{Metrics, TrainedModel};
use fer_report::EvalReport;

/// Evaluate a trained model on one split (PrivateTest by default: report, never select, on it).
///
/// Given a run directory, also stores the figures there as eval-SPLIT.json. Given several
/// CNN runs (--model repeated), evaluates their ensemble: the mean of their class
/// probabilities.
///
/// Example: fer eval --model runs/seed --data data/fer2013.csv.gz --json
///
/// Example: fer eval --model runs/a --model runs/b --out runs/a+b --data data/fer2013.csv.gz
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Run directory (uses its best.safetensors) or a .safetensors file inside one; repeat it
    /// for an ensemble of CNN runs.
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Split to evaluate: training, public-test, private-test.
    #[arg(long, default_value = "private-test")]
    pub split: Split,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write per-image predictions (row, label, predicted, 7 probabilities) as CSV.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Override the run's test-time flip averaging (on/off), e.g. to measure what it adds.
    /// The figures are then not stored in the run directory.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub test_time_flip: Option<bool>,
    /// Override the run's test-time shift: also average the image shifted by this many pixels
    /// toward each corner (0: no shifted views). With flip averaging: ten views per image.
    /// The figures are then not stored in the run directory.
    #[arg(long, value_name = "PIXELS")]
    pub test_time_shift: Option<usize>,
    /// An ensemble's directory: records its members (config.json) and figures
    /// (eval-SPLIT.json) there, for `fer report`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got {other}")),
    }
}

pub fn run(args: &EvalArgs, quiet: bool) -> anyhow::Result<()> {
    let ensemble = args.model.len() > 1;
    let is_hog_svm = |model: &PathBuf| fer_model::hog_svm::is_hog_svm_run(model);
    if let Some(hog) = args.model.iter().find(|m| is_hog_svm(m)) {
        anyhow::ensure!(
            !ensemble,
            "{}: a HOG-SVM run cannot join an ensemble (its scores are not probabilities)",
            hog.display()
        );
        return super::hog_svm::eval(args, hog);
    }
    anyhow::ensure!(
        args.out.is_none() || ensemble,
        "--out is for ensembles (several --model); a single run stores its figures in its own directory"
    );
    let device = super::train::device(&args.device)?;
    let dataset = args.input.open()?;
    let view = dataset.view(args.split);
    anyhow::ensure!(
        !view.is_empty(),
        "{}: no {} images",
        args.input.data.display(),
        args.split
    );
    let mut members = Vec::with_capacity(args.model.len());
    for model in &args.model {
        let trained = TrainedModel::open(model, &device)
            .with_context(|| format!("cannot load model {}", model.display()))?
            .with_test_time_augmentation(args.test_time_flip, args.test_time_shift, &device)?;
        let bar = super::predict::progress_bar(view.len(), quiet, "images evaluated");
        members.push(evaluate_with_progress(
            trained.model.as_ref(),
            &view,
            &trained.normalizer,
            &device,
            256,
            &mut |n| bar.inc(n as u64),
        )?);
        bar.finish_and_clear();
    }
    let evaluation = if ensemble {
        for (model, member) in args.model.iter().zip(&members) {
            tracing::info!(
                "member {}: accuracy {:.2}%, macro-F1 {:.3}",
                model.display(),
                100.0 * member.metrics.accuracy,
                member.metrics.macro_f1
            );
        }
        fer_model::eval::average_evaluations(&members)?
    } else {
        members.pop().expect("one member")
    };
    if let Some(path) = &args.predictions {
        write_predictions(path, &evaluation.predictions)?;
    }
    let report = split_report(
        &dataset,
        args.split,
        &evaluation.metrics,
        &evaluation.predictions,
        Some(evaluation.loss_mean),
    );
    let overridden = args.test_time_flip.is_some() || args.test_time_shift.is_some();
    if let Some(out) = &args.out {
        // An ensemble's directory: its members and figures, for `fer report`.
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let config = serde_json::json!({
            "ensemble": {
                "members": args.model.iter().map(|m| m.display().to_string()).collect::<Vec<_>>(),
                "combination": "mean of the members' class probabilities",
                "test_time_flip": args.test_time_flip,
                "test_time_shift": args.test_time_shift,
            }
        });
        let mut text = serde_json::to_string_pretty(&config)?;
        text.push('\n');
        fer_data::write_atomically(&out.join("config.json"), text.as_bytes())?;
        let path = EvalReport::path_in(out, args.split);
        report.save(&path)?;
        tracing::info!("wrote {}", path.display());
    } else if !ensemble && args.model[0].is_dir() && !overridden {
        // Stored with the run, for `fer plot confusion` and `fer report`.
        let path = EvalReport::path_in(&args.model[0], args.split);
        report.save(&path)?;
        tracing::info!("wrote {}", path.display());
    }
    print_report(&report, args.json)
}

/// Prints `report` as one JSON object or as tables.
pub fn print_report(report: &EvalReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
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
pub fn write_predictions(path: &std::path::Path, predictions: &[Prediction]) -> anyhow::Result<()> {
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
