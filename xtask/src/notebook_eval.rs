//! `cargo xtask notebook-eval`: a run's epoch checkpoints scored on PrivateTest as `fer eval`
//! does and as the seed notebook did, which subtracted the Training mean from Training only.
//!
//! The notebook centres its Training images (`x_train -= mean(x_train)`) and feeds PrivateTest
//! raw, so every test pixel arrives shifted by the Training mean (about 130 grey levels) from
//! what the network learned on. Here that is the run's own normaliser with its mean set to
//! zero: `pixel * scale` instead of `(pixel - mean) * scale`. Picking the best epoch by these
//! figures selects on PrivateTest itself, as the notebook did; the output says so.

use std::path::PathBuf;

use anyhow::{Context, ensure};
use candle_core::Device;
use fer_data::Split;
use fer_model::TrainedModel;
use serde_json::json;

/// Arguments of `cargo xtask notebook-eval`.
#[derive(clap::Args)]
pub struct NotebookEvalArgs {
    /// Run directory whose `checkpoints/epoch-NNNN/` are scored.
    #[arg(long)]
    run: PathBuf,
    /// FER2013 file; default: $FER2013_CSV, data/, or ../shared/data/ beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// Where to write the JSON document (default: RUN/eval-epochs-notebook-private-test.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

pub fn run(args: NotebookEvalArgs) -> anyhow::Result<()> {
    let checkpoints = fer_model::train::epoch_checkpoints(&args.run);
    ensure!(
        !checkpoints.is_empty(),
        "{}: no epoch checkpoints (checkpoints/epoch-NNNN/model.safetensors)",
        args.run.display()
    );
    let (dataset, _) = crate::photos::load_private_test(args.data.as_deref())?;
    let view = dataset.view(Split::PrivateTest);
    let device = Device::Cpu;
    let mut rows = Vec::with_capacity(checkpoints.len());
    // (epoch, accuracy) of the best epoch each way; the first one on ties.
    let mut best_centred: Option<(usize, f64)> = None;
    let mut best_notebook: Option<(usize, f64)> = None;
    println!(
        "epoch  PrivateTest centred (fer eval)  PrivateTest as the notebook (mean not subtracted)"
    );
    for (epoch, weights) in &checkpoints {
        let trained = TrainedModel::open(weights, &device)
            .with_context(|| format!("{}: cannot load", weights.display()))?;
        let mut uncentred = trained.normalizer.clone();
        uncentred.mean.iter_mut().for_each(|m| *m = 0.0);
        let score = |normalizer| -> anyhow::Result<_> {
            let evaluation = fer_model::eval::evaluate(
                trained.model.as_ref(),
                &view,
                normalizer,
                &device,
                args.batch_size,
            )?;
            Ok(evaluation.metrics)
        };
        let (centred, notebook) = (score(&trained.normalizer)?, score(&uncentred)?);
        for (best, accuracy) in [
            (&mut best_centred, centred.accuracy),
            (&mut best_notebook, notebook.accuracy),
        ] {
            if best.is_none_or(|(_, top)| accuracy > top) {
                *best = Some((*epoch, accuracy));
            }
        }
        println!(
            "{epoch:>5}  {:>6.2}% (macro-F1 {:.3})             {:>6.2}% (macro-F1 {:.3}; predicted per class {:?})",
            100.0 * centred.accuracy,
            centred.macro_f1,
            100.0 * notebook.accuracy,
            notebook.macro_f1,
            predicted_per_class(&notebook.confusion),
        );
        rows.push(json!({
            "epoch": epoch,
            "centred": {"accuracy": centred.accuracy, "macro_f1": centred.macro_f1},
            "notebook": {
                "accuracy": notebook.accuracy,
                "macro_f1": notebook.macro_f1,
                "predicted_per_class": predicted_per_class(&notebook.confusion),
            },
        }));
    }
    let (centred_epoch, centred_accuracy) = best_centred.expect("at least one checkpoint");
    let (notebook_epoch, notebook_accuracy) = best_notebook.expect("at least one checkpoint");
    println!(
        "best epoch on PrivateTest itself (the notebook's protocol, for comparison only): centred epoch {centred_epoch} with {:.2}%, as the notebook epoch {notebook_epoch} with {:.2}%",
        100.0 * centred_accuracy,
        100.0 * notebook_accuracy
    );
    let document = json!({
        "run": args.run.display().to_string(),
        "split": "PrivateTest",
        "note": "every kept epoch checkpoint scored on PrivateTest twice: centred with the run's \
                 Training mean (as fer eval does), and as the seed notebook did, with the mean \
                 subtracted from Training only (the normaliser's mean set to zero). Picking an \
                 epoch by these figures selects on PrivateTest itself (for comparison only).",
        "best_centred": {"epoch": centred_epoch, "accuracy": centred_accuracy},
        "best_notebook": {"epoch": notebook_epoch, "accuracy": notebook_accuracy},
        "epochs": rows,
    });
    let out = args
        .out
        .unwrap_or_else(|| args.run.join("eval-epochs-notebook-private-test.json"));
    fer_model::checkpoint::write_json(&out, &document)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// How many images were predicted as each class (the confusion matrix's column sums): where
/// the shifted inputs push the network.
fn predicted_per_class<const N: usize>(confusion: &[[usize; N]; N]) -> [usize; N] {
    std::array::from_fn(|c| confusion.iter().map(|row| row[c]).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_per_class_are_the_confusion_columns() {
        let confusion = [[3, 1, 0], [0, 2, 5], [1, 0, 4]];
        assert_eq!(predicted_per_class(&confusion), [4, 3, 9]);
    }
}
