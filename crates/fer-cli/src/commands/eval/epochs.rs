//! `fer eval --every-epoch`: each kept epoch checkpoint of a run scored on one split, stored
//! as the run's `eval-epochs-SPLIT.json`.

use std::path::Path;

use anyhow::Context;
use fer_model::TrainedModel;
use fer_model::eval::evaluate_with_progress;
use serde_json::json;

use super::{BATCH_SIZE, EvalArgs};
use crate::shared::progress::progress_bar;
use crate::shared::run_data::eval_report_path;

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
    let dataset = args.input.open()?;
    let view = dataset.view(args.split);
    anyhow::ensure!(
        !view.is_empty(),
        "{}: no {} images",
        args.input.data.display(),
        args.split
    );
    let test_time_flip = args.test_time_flip.map(bool::from);
    let mut rows = Vec::with_capacity(checkpoints.len());
    for (epoch, weights) in &checkpoints {
        let trained = TrainedModel::open(weights, &device)
            .with_context(|| format!("{}: cannot load", weights.display()))?
            .with_test_time_augmentation(test_time_flip, args.test_time_shift, &device)?;
        let bar = progress_bar(view.len(), quiet, "images evaluated");
        let evaluation = evaluate_with_progress(
            trained.model.as_ref(),
            &view,
            &trained.normalizer,
            &device,
            BATCH_SIZE,
            &mut |n| bar.inc(n as u64),
        )?;
        bar.finish_and_clear();
        let metrics = &evaluation.metrics;
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
    let accuracy = |row: &serde_json::Value| row["accuracy"].as_f64().unwrap_or(f64::NAN);
    // The first epoch of the highest accuracy.
    let best = rows
        .iter()
        .fold(None::<&serde_json::Value>, |best, row| match best {
            Some(b) if accuracy(b) >= accuracy(row) => Some(b),
            _ => Some(row),
        })
        .expect("at least one checkpoint");
    let document = json!({
        "split": args.split.to_string(),
        "note": "every kept epoch checkpoint scored on this split; picking an epoch by these \
                 figures selects on the split itself (for comparison only)",
        "best_epoch": best["epoch"],
        "best_accuracy": best["accuracy"],
        "epochs": rows,
    });
    if !args.json {
        println!(
            "best on {}: epoch {} with {:.2}%",
            args.split,
            document["best_epoch"],
            100.0 * accuracy(best)
        );
    }
    if test_time_flip.is_none() && args.test_time_shift.is_none() {
        let (path, not_own) = eval_report_path(run_dir, args.split, &dataset)?;
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .replacen("eval-", "eval-epochs-", 1);
        let path = run_dir.join(name);
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
