//! `fer eval` on a HOG-SVM run directory.

use std::path::Path;

use anyhow::Context;
use fer_model::hog_svm::HogSvm;

use super::EvalArgs;
use crate::shared::evaluation::{print_report, split_report, write_predictions};

/// Evaluates the HOG-SVM run `model` (its directory or a file inside one).
pub fn eval(args: &EvalArgs, model: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.test_time_flip.is_none() && args.test_time_shift.is_none(),
        "{}: test-time augmentation is for CNN runs",
        model.display()
    );
    let dir = if model.is_dir() {
        model
    } else {
        model.parent().unwrap_or(Path::new("."))
    };
    let (model, _) =
        HogSvm::open(dir).with_context(|| format!("cannot load model {}", dir.display()))?;
    let dataset = super::open_split(args)?;
    let degraded = super::corrupted(args, &dataset)?;
    let view = degraded.as_ref().unwrap_or(&dataset).view(args.split);
    let evaluation = model.evaluate(&view)?;
    if let Some(path) = &args.predictions {
        write_predictions(path, &evaluation.predictions)?;
    }
    let report = split_report(
        &dataset,
        args.split,
        &evaluation.metrics,
        &evaluation.predictions,
        None,
    );
    print_report(&report, args.json)
}
