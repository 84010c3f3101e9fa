//! Draws every figure of `fer-report` from generated data, as PNG and SVG.
//!
//! ```text
//! cargo run --release -p fer-report --example figures -- /tmp/fer-figures
//! ```

use std::path::PathBuf;

use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{Split, Statistics};
use fer_model::{EpochRecord, Metrics};
use fer_report::{
    ConfusionChart, CurvesChart, DataSummary, DistributionChart, EvalReport, PerClassChart, Plot,
    SampleGrid,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "figures".into()));
    std::fs::create_dir_all(&out)?;
    let data = generate(&SyntheticConfig::fer_like(7, [2000, 250, 250]));
    let summary = DataSummary::from_statistics(&Statistics::compute(&data));

    // A made-up run: losses fall, accuracy rises; predictions are right 3 times in 5.
    let history: Vec<EpochRecord> = (1..=12)
        .map(|epoch| {
            let t = epoch as f64;
            EpochRecord {
                epoch,
                train_loss: 400.0 / (1.0 + 0.15 * t),
                val_loss: 50.0 / (1.0 + 0.1 * t),
                val_accuracy: 0.6 - 0.35 / t,
                train_accuracy: Some(0.7 - 0.4 / t),
                val_macro_f1: 0.55 - 0.4 / t,
                best_epoch: epoch,
                lr: 0.1,
                train_seconds: 60.0,
                eval_seconds: 5.0,
                train_images_per_second: 480.0,
            }
        })
        .collect();
    let test = data.view(Split::PrivateTest);
    let labels: Vec<usize> = test.labels().iter().map(|e| e.index()).collect();
    let predictions: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| if i % 5 < 3 { l } else { (l + i) % 7 })
        .collect();
    let eval = EvalReport::new(
        Split::PrivateTest,
        &Metrics::from_predictions(&labels, &predictions),
        Some(1.1),
    );

    for ext in ["png", "svg"] {
        DistributionChart::new(&summary.splits)?.save(&out.join(format!("distribution.{ext}")))?;
        SampleGrid::first(&data.view(Split::Training), 10, 5)?
            .save(&out.join(format!("samples.{ext}")))?;
        CurvesChart::new(&history)?.save(&out.join(format!("curves.{ext}")))?;
        ConfusionChart::new(&eval).save(&out.join(format!("confusion.{ext}")))?;
        PerClassChart::new(&eval).save(&out.join(format!("per-class.{ext}")))?;
    }
    println!("figures written to {}", out.display());
    Ok(())
}
