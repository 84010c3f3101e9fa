//! `fer eval`: accuracy, macro-F1, confusion matrix and per-class figures of a trained model.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use fer_data::{Emotion, Split};
use fer_model::eval::{Evaluation, Prediction, evaluate_with_progress};
use fer_model::{Metrics, TrainedModel};
use fer_report::EvalReport;

/// Evaluate a trained model on one split (PrivateTest by default: report, never select, on it).
///
/// Given a run directory, also stores the figures there as eval-SPLIT.json.
///
/// Example: fer eval --model runs/seed --data data/fer2013.csv.gz --json
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Run directory (uses its best.safetensors) or a .safetensors file inside one.
    #[arg(long)]
    pub model: PathBuf,
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
}

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got {other}")),
    }
}

pub fn run(args: &EvalArgs, quiet: bool) -> anyhow::Result<()> {
    if fer_model::hog_svm::is_hog_svm_run(&args.model) {
        return super::hog_svm::eval(args);
    }
    let device = super::train::device(&args.device)?;
    let mut trained = TrainedModel::open(&args.model, &device)
        .with_context(|| format!("cannot load model {}", args.model.display()))?;
    if let Some(flip) = args.test_time_flip {
        trained = trained.with_test_time_flip(flip, &device)?;
    }
    let dataset = args.input.open()?;
    let view = dataset.view(args.split);
    anyhow::ensure!(
        !view.is_empty(),
        "{}: no {} images",
        args.input.data.display(),
        args.split
    );
    let bar = super::predict::progress_bar(view.len(), quiet, "images evaluated");
    let evaluation = evaluate_with_progress(
        trained.model.as_ref(),
        &view,
        &trained.normalizer,
        &device,
        256,
        &mut |n| bar.inc(n as u64),
    )?;
    bar.finish_and_clear();
    if let Some(path) = &args.predictions {
        write_predictions(path, &evaluation.predictions)?;
    }
    if args.model.is_dir() && args.test_time_flip.is_none() {
        // Stored with the run, for `fer plot confusion` and `fer report`.
        let path = EvalReport::path_in(&args.model, args.split);
        EvalReport::new(args.split, &evaluation.metrics, Some(evaluation.loss_mean)).save(&path)?;
        tracing::info!("wrote {}", path.display());
    }
    if args.json {
        println!("{}", report_json(args.split, &evaluation));
    } else {
        print!("{}", report_text(args.split, &evaluation));
    }
    Ok(())
}

/// The JSON report: split, n, accuracy, macro_f1, loss, confusion (7x7), per_class.
pub fn report_json(split: Split, e: &Evaluation) -> serde_json::Value {
    metrics_json(split, &e.metrics, Some(e.loss_mean))
}

/// [`report_json`] from metrics alone; `loss` is null for models without one (HOG-SVM).
pub fn metrics_json(split: Split, m: &Metrics, loss: Option<f64>) -> serde_json::Value {
    serde_json::to_value(EvalReport::new(split, m, loss)).unwrap_or(serde_json::Value::Null)
}

fn report_text(split: Split, e: &Evaluation) -> String {
    metrics_text(split, &e.metrics, Some(e.loss_mean))
}

/// The text report: a summary line, the confusion matrix and per-class figures.
pub fn metrics_text(split: Split, m: &Metrics, loss: Option<f64>) -> String {
    let mut out = String::new();
    let loss = loss.map(|l| format!(", loss {l:.4}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{split}: {} images, accuracy {:.2}%, macro-F1 {:.3}{loss}\n",
        m.n,
        100.0 * m.accuracy,
        m.macro_f1,
    );
    let _ = write!(out, "{:<10}", "true\\pred");
    for emotion in Emotion::ALL {
        let _ = write!(out, "{:>9}", emotion.name());
    }
    let _ = writeln!(out, "{:>11}{:>8}{:>8}", "precision", "recall", "F1");
    for (k, emotion) in Emotion::ALL.iter().enumerate() {
        let _ = write!(out, "{:<10}", emotion.name());
        for count in m.confusion[k] {
            let _ = write!(out, "{count:>9}");
        }
        let c = &m.per_class[k];
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
