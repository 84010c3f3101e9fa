//! `fer eval --every-epoch`: each kept epoch checkpoint of a run scored on one split, stored
//! as the run's `eval-epochs-SPLIT.json`.

use std::path::Path;

use anyhow::Context;
use fer_model::TrainedModel;
use fer_report::evaluation::split_slug;
use serde_json::json;

use super::{EvalArgs, corrupted, open_split};
use crate::shared::evaluation::evaluate_trained;
use crate::shared::run_data::run_file_for_data;

/// Scores every checkpoint in `run_dir/checkpoints`, prints a line (or, with `--json`, the
/// document) per epoch, and stores the document in the run unless test-time augmentation was
/// overridden.
pub fn eval_every_epoch(args: &EvalArgs, run_dir: &Path, quiet: bool) -> anyhow::Result<()> {
    let checkpoints = fer_model::train::epoch_checkpoints(run_dir);
    anyhow::ensure!(
        !checkpoints.is_empty(),
        "{}: no epoch checkpoints (checkpoints/epoch-NNNN/model.safetensors); a run keeps its \
         best epoch and its last keep_last epochs",
        run_dir.display()
    );
    let device = args.device.open()?;
    let dataset = open_split(args)?;
    let degraded = corrupted(args, &dataset)?;
    let view = degraded.as_ref().unwrap_or(&dataset).view(args.split);
    let test_time_flip = args.test_time_flip.map(bool::from);
    let mut rows = Vec::with_capacity(checkpoints.len());
    // The first epoch of the highest accuracy, and that accuracy.
    let mut best: Option<(usize, f64)> = None;
    for (epoch, weights) in &checkpoints {
        let trained = TrainedModel::open(weights, &device)
            .with_context(|| format!("{}: cannot load", weights.display()))?
            .with_test_time_augmentation(test_time_flip, args.test_time_shift, &device)?;
        let evaluation = evaluate_trained(&trained, &view, &device, quiet)?;
        let metrics = &evaluation.metrics;
        if best.is_none_or(|(_, accuracy)| metrics.accuracy > accuracy) {
            best = Some((*epoch, metrics.accuracy));
        }
        if !args.json {
            println!(
                "epoch {epoch:>4}: {} accuracy {:.2}%, macro-F1 {:.3}",
                args.split,
                100.0 * metrics.accuracy,
                metrics.macro_f1
            );
        }
        rows.push(json!({
            "epoch": epoch,
            "accuracy": metrics.accuracy,
            "macro_f1": metrics.macro_f1,
            "loss_mean": evaluation.loss_mean,
        }));
    }
    let (best_epoch, best_accuracy) = best.expect("at least one checkpoint");
    let document = json!({
        "split": args.split.to_string(),
        "note": "every kept epoch checkpoint scored on this split; picking an epoch by these \
                 figures selects on the split itself (for comparison only)",
        "best_epoch": best_epoch,
        "best_accuracy": best_accuracy,
        "epochs": rows,
    });
    if !args.json {
        println!(
            "best on {}: epoch {best_epoch} with {:.2}%",
            args.split,
            100.0 * best_accuracy
        );
    }
    if !args.overrides() {
        let own = run_dir.join(format!("eval-epochs-{}.json", split_slug(args.split)));
        let (path, not_own) = run_file_for_data(run_dir, own, &dataset)?;
        let mut text = serde_json::to_string_pretty(&document)?;
        text.push('\n');
        fer_data::write_atomically(&path, text.as_bytes())?;
        match not_own {
            None => tracing::info!("wrote {}", path.display()),
            Some(reason) => tracing::warn!("{reason}: stored as {}", path.display()),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    }
    Ok(())
}
