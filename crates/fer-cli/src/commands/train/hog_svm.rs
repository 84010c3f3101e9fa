//! `fer train --model hog-svm`: HOG features and a linear SVM, C chosen on PublicTest, with a
//! PrivateTest report left in the run directory.

use std::time::Instant;

use anyhow::Context;
use fer_data::Split;
use fer_model::hog_svm::{self, HogSvmConfig};

use super::TrainArgs;
use crate::shared::evaluation::{report_text, split_report};
use crate::shared::run_data::DataRecord;

/// The PrivateTest report `fer train --model hog-svm` leaves in the run directory.
const PRIVATE_TEST_REPORT: &str = "eval-private-test.json";

fn config(args: &TrainArgs) -> anyhow::Result<HogSvmConfig> {
    let cnn_only = [
        ("--epochs", args.epochs.is_some()),
        ("--batch-size", args.batch_size.is_some()),
        ("--no-augment", args.no_augment),
        ("--augment", args.augment.is_some()),
        ("--head", args.head.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--lr", args.lr.is_some()),
        ("--resume", args.resume),
    ];
    if let Some((flag, _)) = cnn_only.iter().find(|(_, given)| *given) {
        anyhow::bail!("{flag} is for --model cnn; a HOG-SVM takes its settings from --config");
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            // A run's config.json is fine; a CNN's (its `model` is an object) is not.
            let tag = json.get("model");
            anyhow::ensure!(
                tag.is_none() || tag.and_then(|m| m.as_str()) == Some(hog_svm::MODEL_TAG),
                "{}: not a HOG-SVM config (its `model` is not \"{}\")",
                path.display(),
                hog_svm::MODEL_TAG
            );
            serde_json::from_value(json)
                .with_context(|| format!("{}: not a HOG-SVM config", path.display()))?
        }
        None => HogSvmConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.validate()?;
    Ok(config)
}

/// Trains on Training, chooses C on PublicTest, saves the run and reports on PrivateTest.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    let config_path = args.out.join(hog_svm::CONFIG);
    anyhow::ensure!(
        !config_path.exists() || hog_svm::is_hog_svm_run(&args.out),
        "{} holds another kind of run; choose another --out",
        args.out.display()
    );
    let mut dataset = args.input.open_for_training()?;
    DataRecord::of(&dataset, &args.input.data).check_and_write(&args.out)?;
    if let Some(n) = args.train_subset {
        dataset = super::subset_training(&dataset, n, config.seed)?;
    }
    tracing::info!(
        "HOG-SVM: training on {} images, choosing C on {} PublicTest images, run directory {}",
        dataset.view(Split::Training).len(),
        dataset.view(Split::PublicTest).len(),
        args.out.display()
    );
    outln!("C\tPublicTest Acc\tPasses\tTime")?;
    let (model, selection) = hog_svm::train(&dataset, &config, |c| {
        // A closed stdout must not stop the training.
        let _ = outln!(
            "{}\t{:.3}\t\t{}{}\t{:.1} s",
            c.c,
            100.0 * c.public_test_accuracy,
            c.epochs,
            if c.converged { "" } else { " (limit)" },
            c.train_seconds
        );
    })?;
    model.save(&args.out, &selection)?;
    let best = selection
        .candidates
        .iter()
        .find(|c| c.c == selection.chosen_c)
        .map_or(0.0, |c| c.public_test_accuracy);
    outln!(
        "chosen C {} (PublicTest accuracy {:.3}%); HOG features {:.1} s; model in {}",
        selection.chosen_c,
        100.0 * best,
        selection.feature_seconds,
        args.out.display()
    )?;
    let private = dataset.view(Split::PrivateTest);
    if private.is_empty() {
        tracing::warn!("no PrivateTest images: no {PRIVATE_TEST_REPORT}");
        return Ok(());
    }
    let started = Instant::now();
    let evaluation = model.evaluate(&private)?;
    let report = split_report(
        &dataset,
        Split::PrivateTest,
        &evaluation.metrics,
        &evaluation.predictions,
        None,
    );
    let path = args.out.join(PRIVATE_TEST_REPORT);
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    fer_data::write_atomically(&path, text.as_bytes())?;
    print!("{}", report_text(&report));
    outln!(
        "evaluated in {:.1} s; report in {}",
        started.elapsed().as_secs_f64(),
        path.display()
    )?;
    Ok(())
}
