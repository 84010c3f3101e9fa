//! `fer report`: one self-contained HTML file about one or more training runs.

use std::path::PathBuf;

use anyhow::Context;

use fer_data::{Split, Statistics};
use fer_report::{DataSection, DataSummary, Report, Run, SampleGrid};

use crate::shared::data::open_dataset;

/// Write one self-contained HTML report of training runs: config, curves, confusion matrix,
/// per-class scores, a comparison table of several runs, and the data with --data.
///
/// Example: fer report runs/seed runs/no-aug --data data/fer2013.csv.gz --out report.html
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories (`fer train --out`); `fer eval --model RUN` adds their eval-*.json.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// FER2013 CSV or image folder: adds class counts, their chart and sample faces.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Leave out malformed rows of --data instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Training faces to show with --data (0 for none).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Title of the report (default: the run names).
    #[arg(long)]
    pub title: Option<String>,
    /// A pipeline's manifest.json (`cargo xtask pipeline`): shown in the report, and the wall
    /// time of its `train-<run>` step is used for runs without a training history.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let mut runs = args
        .runs
        .iter()
        .map(|dir| Run::open(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest: Option<serde_json::Value> = match &args.manifest {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: invalid JSON", path.display()))?,
            )
        }
        None => None,
    };
    if let Some(steps) = manifest
        .as_ref()
        .and_then(|m| m.get("steps"))
        .and_then(|s| s.as_array())
    {
        for run in runs.iter_mut().filter(|r| r.wall_seconds().is_none()) {
            let name = format!("train-{}", run.name);
            if let Some(step) = steps.iter().find(|s| s["name"] == name.as_str()) {
                run.manifest = Some(serde_json::json!({ "steps": [step] }));
            }
        }
    }
    let data = match &args.data {
        Some(path) => {
            let dataset = open_dataset(path, args.skip_bad_rows)?;
            let training = dataset.view(Split::Training);
            let samples = if args.samples == 0 || training.is_empty() {
                None
            } else {
                Some(SampleGrid::first(&training, args.samples, 5)?)
            };
            Some(DataSection {
                source: path.display().to_string(),
                summary: DataSummary::from_statistics(&Statistics::compute(&dataset)),
                samples,
            })
        }
        None => None,
    };
    let title = args.title.clone().unwrap_or_else(|| {
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        format!("FER training report: {}", names.join(", "))
    });
    Report {
        title,
        runs: &runs,
        data: data.as_ref(),
        manifest: manifest.as_ref(),
    }
    .write(&args.out)?;
    tracing::info!("wrote {}", args.out.display());
    Ok(())
}
