//! `fer plot`: one figure to a PNG or SVG file (the format follows the `--out` extension).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::{Split, Statistics};
use fer_report::{
    ConfusionChart, CurvesChart, DataSummary, DistributionChart, EvalReport, Format, PerClassChart,
    Plot, Run, SampleGrid,
};

use crate::shared::data::DataArgs;

/// Draw a figure of the data or of a training run as PNG or SVG (after the --out extension).
///
/// Example: fer plot curves runs/seed --out curves.svg
#[derive(clap::Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub figure: Figure,
}

/// The figures `fer plot` draws.
#[derive(clap::Subcommand)]
pub enum Figure {
    /// Images per class in each split (the seed notebook's three bar charts, in one figure).
    ///
    /// Example: fer plot distribution --data data/fer2013.csv.gz --out distribution.png
    Distribution {
        #[command(flatten)]
        input: DataArgs,
        /// Figure file: .png or .svg.
        #[arg(long)]
        out: PathBuf,
    },
    /// A grid of the first faces of a split with their labels.
    ///
    /// Example: fer plot samples --data data/fer2013.csv.gz --count 10 --out samples.png
    Samples {
        #[command(flatten)]
        input: DataArgs,
        /// Split to take the faces from: training, public-test, private-test.
        #[arg(long, default_value = "training")]
        split: Split,
        /// Number of faces (the first of the split).
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Faces per row.
        #[arg(long, default_value_t = 5)]
        columns: usize,
        /// Figure file: .png or .svg.
        #[arg(long)]
        out: PathBuf,
    },
    /// Training and validation loss, PublicTest accuracy and macro-F1 per epoch of a run.
    ///
    /// Example: fer plot curves runs/seed --out curves.png
    Curves {
        /// Run directory (from `fer train --out`), with its history.json.
        run: PathBuf,
        /// Figure file: .png or .svg.
        #[arg(long)]
        out: PathBuf,
    },
    /// The confusion matrix as a heat map of counts and row-normalized shares.
    ///
    /// Reads RUN/eval-SPLIT.json, which `fer eval --model RUN` writes.
    ///
    /// Example: fer plot confusion runs/seed --out confusion.png
    Confusion {
        #[command(flatten)]
        eval: EvalSource,
        /// Figure file: .png or .svg.
        #[arg(long)]
        out: PathBuf,
    },
    /// Precision, recall and F1 per class as grouped bars.
    ///
    /// Reads RUN/eval-SPLIT.json, which `fer eval --model RUN` writes.
    ///
    /// Example: fer plot per-class runs/seed --split public-test --out per-class.svg
    PerClass {
        #[command(flatten)]
        eval: EvalSource,
        /// Figure file: .png or .svg.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where an evaluation comes from: a run directory and a split, or an eval JSON file.
#[derive(clap::Args)]
pub struct EvalSource {
    /// Run directory (reads its eval-SPLIT.json) or an eval JSON file.
    run: PathBuf,
    /// Split of the evaluation in a run directory: training, public-test, private-test.
    #[arg(long, default_value = "private-test")]
    split: Split,
}

impl EvalSource {
    fn load(&self) -> anyhow::Result<EvalReport> {
        let path = if self.run.is_dir() {
            EvalReport::path_in(&self.run, self.split)
        } else {
            self.run.clone()
        };
        anyhow::ensure!(
            path.exists(),
            "{}: no such evaluation (run `fer eval --model {} --split {}` first)",
            path.display(),
            self.run.display(),
            fer_report::evaluation::split_slug(self.split)
        );
        Ok(EvalReport::load(&path)?)
    }
}

pub fn run(args: &PlotArgs) -> anyhow::Result<()> {
    let out = match &args.figure {
        Figure::Distribution { out, .. }
        | Figure::Samples { out, .. }
        | Figure::Curves { out, .. }
        | Figure::Confusion { out, .. }
        | Figure::PerClass { out, .. } => out,
    };
    // Refuse an unknown extension before reading any data.
    Format::from_path(out)?;
    match &args.figure {
        Figure::Distribution { input, .. } => {
            let dataset = input.open()?;
            let summary = DataSummary::from_statistics(&Statistics::compute(&dataset));
            save(&DistributionChart::new(&summary.splits)?, out)
        }
        Figure::Samples {
            input,
            split,
            count,
            columns,
            ..
        } => {
            let dataset = input.open()?;
            let view = dataset.view(*split);
            anyhow::ensure!(
                !view.is_empty(),
                "{}: no {split} images",
                input.data.display()
            );
            save(&SampleGrid::first(&view, *count, *columns)?, out)
        }
        Figure::Curves { run, .. } => {
            let run = Run::open(run)?;
            let history = run.history.as_deref().with_context(|| {
                format!(
                    "{}: no history.json (a run without epochs has no curves)",
                    run.dir.display()
                )
            })?;
            save(&CurvesChart::new(history)?, out)
        }
        Figure::Confusion { eval, .. } => save(&ConfusionChart::new(&eval.load()?), out),
        Figure::PerClass { eval, .. } => save(&PerClassChart::new(&eval.load()?), out),
    }
}

fn save(plot: &impl Plot, out: &Path) -> anyhow::Result<()> {
    plot.save(out)?;
    tracing::info!("wrote {}", out.display());
    Ok(())
}
