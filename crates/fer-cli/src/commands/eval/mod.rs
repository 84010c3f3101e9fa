//! `fer eval`: accuracy, macro-F1, confusion matrix and per-class figures of a trained model,
//! a HOG-SVM run or an ensemble of CNN runs.

mod epochs;
mod hog_svm;

use std::path::PathBuf;

use anyhow::Context;
use fer::ModelSource;
use fer_data::{Dataset, Split};
use fer_report::EvalReport;

use crate::shared::data::DataArgs;
use crate::shared::device::DeviceArgs;
use crate::shared::evaluation::{evaluate_trained, print_report, split_report, write_predictions};
use crate::shared::run_data::eval_report_path;
use crate::shared::values::{Switch, one_of};

/// Evaluate a trained model on one split (PrivateTest by default: report, never select, on it).
///
/// Without --model, evaluates the default built-in model. Given a run directory, also stores
/// the figures there as eval-SPLIT.json when the data is the run's own (the fingerprint in its
/// data.json); figures on other data go to eval-SPLIT-data-FINGERPRINT.json instead. Given
/// several models (--model repeated), evaluates their ensemble: the mean of their class
/// probabilities.
///
/// Example: fer eval --data data/fer2013.csv.gz
///
/// Example: fer eval --model runs/seed --data data/fer2013.csv.gz --json
///
/// Example: fer eval --model runs/a --model runs/b --out runs/a+b --data data/fer2013.csv.gz
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The model: builtin (the default), builtin:NAME, a run directory (its
    /// best.safetensors) or a .safetensors file inside one; repeat it for an ensemble.
    #[arg(long, default_value = "builtin", value_parser = clap::value_parser!(ModelSource))]
    pub model: Vec<ModelSource>,
    #[command(flatten)]
    pub input: DataArgs,
    /// Split to evaluate: training, public-test, private-test.
    #[arg(long, default_value = "private-test")]
    pub split: Split,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write per-image predictions (row, label, predicted, 7 probabilities) as CSV.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Override the run's test-time flip averaging (on/off), e.g. to measure what it adds.
    /// The figures are then not stored in the run directory.
    #[arg(long, value_name = "on|off", value_parser = one_of::<Switch>())]
    pub test_time_flip: Option<Switch>,
    /// Override the run's test-time shift: also average the image shifted by this many pixels
    /// toward each corner (0: no shifted views). With flip averaging: ten views per image.
    /// The figures are then not stored in the run directory.
    #[arg(long, value_name = "PIXELS")]
    pub test_time_shift: Option<usize>,
    /// Evaluate on degraded copies of the images (`corruption_help` lists the kinds).
    #[arg(long, value_name = "KIND=LEVEL", help = corruption_help())]
    pub corruption: Option<fer_augment::Corruption>,
    /// In a folder of labelled photos that are not face crops (whole portraits, video
    /// frames), take each image's largest face as `fer predict` finds and crops it, instead
    /// of the image's centred square. Images without a face found are left out of the
    /// figures and counted on stderr.
    #[arg(long)]
    pub detect: bool,
    /// An ensemble's directory: records its members (config.json) and figures
    /// (eval-SPLIT.json) there, for `fer report`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Evaluate every epoch checkpoint the run directory kept (checkpoints/epoch-NNNN) and
    /// store accuracy and macro-F1 per epoch as RUN/eval-epochs-SPLIT.json. For comparison
    /// with protocols that pick the epoch on the test set (the seed notebook's); the run's
    /// own checkpoint is chosen on PublicTest.
    #[arg(long)]
    pub every_epoch: bool,
}

impl EvalArgs {
    /// Whether the figures differ from the model's own on the data as given (test-time
    /// augmentation overridden, or the images degraded): they are then not stored in a run.
    fn overrides(&self) -> bool {
        self.test_time_flip.is_some() || self.test_time_shift.is_some() || self.corruption.is_some()
    }
}

/// `--corruption`'s help, naming the kinds where fer-augment lists them.
fn corruption_help() -> String {
    format!(
        "Evaluate on degraded copies of the images, to see how accuracy holds on faces unlike \
         FER2013's: {} (e.g. blur=1.5; zoom=1.25 is a crop 20% tighter, 0.8 one 25% looser). \
         The figures are then not stored in the run directory",
        fer_augment::Corruption::KINDS
    )
}

/// `dataset` with the images of `--split` degraded by `--corruption`, if given (image i's
/// noise seeded by i, so the same degraded images on every run).
fn corrupted(args: &EvalArgs, dataset: &Dataset) -> anyhow::Result<Option<Dataset>> {
    let Some(corruption) = args.corruption else {
        return Ok(None);
    };
    tracing::info!("images degraded by {corruption}");
    let degraded = corruption
        .apply_to_split(dataset, args.split)
        .with_context(|| format!("{}: cannot apply {corruption}", args.input.data.display()))?;
    Ok(Some(degraded))
}

/// The data of `--data` (with `--detect`, each image's largest face as `fer predict` crops
/// it), checked to hold images of `--split`.
fn open_split(args: &EvalArgs) -> anyhow::Result<Dataset> {
    let dataset = if args.detect {
        let defaults = fer::RecognizerOptions::default();
        let finder = fer::FaceFinder::new(defaults.detector, defaults.margin, defaults.upright)?;
        args.input.open_folder_with_crop(|image| {
            finder
                .largest_face(image)
                .map_err(|e| format!("face detection failed: {e}"))
        })?
    } else {
        args.input.open()?
    };
    anyhow::ensure!(
        !dataset.view(args.split).is_empty(),
        "{}: no {} images",
        args.input.data.display(),
        args.split
    );
    Ok(dataset)
}

pub fn run(args: &EvalArgs, quiet: bool) -> anyhow::Result<()> {
    let ensemble = args.model.len() > 1;
    let is_hog_svm = |model: &ModelSource| match model {
        ModelSource::Path(path) => fer_model::hog_svm::is_hog_svm_run(path),
        ModelSource::Builtin(_) => false,
    };
    if let Some(ModelSource::Path(hog)) = args.model.iter().find(|m| is_hog_svm(m)) {
        anyhow::ensure!(
            !ensemble,
            "{}: a HOG-SVM run cannot join an ensemble (its scores are not probabilities)",
            hog.display()
        );
        return hog_svm::eval(args, hog);
    }
    if args.every_epoch {
        let run_dir = match args.model.as_slice() {
            [model] => model.run_dir(),
            _ => None,
        };
        let run_dir = run_dir.context("--every-epoch takes one --model: a run directory")?;
        return epochs::eval_every_epoch(args, run_dir, quiet);
    }
    anyhow::ensure!(
        args.out.is_none() || ensemble,
        "--out is for ensembles (several --model); a single run stores its figures in its own directory"
    );
    let test_time_flip = args.test_time_flip.map(bool::from);
    let device = args.device.open()?;
    let dataset = open_split(args)?;
    let degraded = corrupted(args, &dataset)?;
    let view = degraded.as_ref().unwrap_or(&dataset).view(args.split);
    let mut members = Vec::with_capacity(args.model.len());
    for model in &args.model {
        let trained = model.load(&device)?.with_test_time_augmentation(
            test_time_flip,
            args.test_time_shift,
            &device,
        )?;
        members.push(evaluate_trained(&trained, &view, &device, quiet)?);
    }
    let evaluation = if ensemble {
        for (model, member) in args.model.iter().zip(&members) {
            tracing::info!(
                "member {model}: accuracy {:.2}%, macro-F1 {:.3}",
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
    if let Some(out) = &args.out {
        // An ensemble's directory: its members and figures, for `fer report`.
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let config = serde_json::json!({
            "ensemble": {
                "members": args.model.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "combination": "mean of the members' class probabilities",
                "test_time_flip": test_time_flip,
                "test_time_shift": args.test_time_shift,
                "corruption": args.corruption.map(|c| c.to_string()),
            }
        });
        let mut text = serde_json::to_string_pretty(&config)?;
        text.push('\n');
        fer_data::write_atomically(&out.join("config.json"), text.as_bytes())?;
        let path = EvalReport::path_in(out, args.split);
        report.save(&path)?;
        tracing::info!("wrote {}", path.display());
    } else if let Some(run_dir) = args.model[0].run_dir()
        && !ensemble
        && !args.overrides()
    {
        // Stored with the run, for `fer plot confusion` and `fer report`; figures on other
        // data never replace the run's own.
        let (path, not_own) = eval_report_path(run_dir, args.split, &dataset)?;
        report.save(&path)?;
        match not_own {
            None => tracing::info!("wrote {}", path.display()),
            Some(reason) => tracing::warn!(
                "{reason}: stored as {} ({} stays the run's own)",
                path.display(),
                EvalReport::path_in(run_dir, args.split).display()
            ),
        }
    }
    print_report(&report, args.json)
}
