//! Plots and self-contained HTML reports of FER2013 data and training runs.
//!
//! - [`plot`]: figures drawn with plotters, each to PNG or SVG ([`Plot::save`] picks by
//!   extension): [`DistributionChart`] (images per class and split), [`SampleGrid`] (faces
//!   with their labels), [`CurvesChart`] (loss and PublicTest accuracy per epoch),
//!   [`ConfusionChart`] (heat map with counts and row shares) and [`PerClassChart`]
//!   (precision, recall, F1).
//! - [`EvalReport`]: the JSON of `fer eval`, stored in a run directory as
//!   `eval-<split>.json`.
//! - [`Run`]: what a report reads from a run directory (`config.json` as opaque JSON, optional
//!   `history.json`, `eval-*.json`, `manifest.json`, `stats.json`).
//! - [`Report`]: one HTML file with every figure inlined as SVG, a comparison table when there are
//!   several runs, and all text escaped.
//!
//! ```no_run
//! use fer_report::{Plot, Report, Run};
//!
//! let run = Run::open("runs/seed".as_ref())?;
//! if let Some(history) = &run.history {
//!     fer_report::CurvesChart::new(history)?.save("curves.svg".as_ref())?;
//! }
//! let runs = [run];
//! let report = Report { title: "seed".into(), runs: &runs, data: None, manifest: None };
//! report.write("report.html".as_ref())?;
//! # Ok::<(), fer_report::Error>(())
//! ```
//!
//! The crate draws and writes; it never trains or evaluates (no candle code of its own).

mod error;
mod escape;
pub mod evaluation;
pub mod html;
pub mod plot;
pub mod run;
pub mod summary;
mod text;

pub use error::{Error, Result};
pub use evaluation::{ClassReport, EvalReport, SubsetReport};
pub use html::{DataSection, Report};
pub use plot::{
    ConfusionChart, CurvesChart, DistributionChart, Face, Format, PerClassChart, Plot, SampleGrid,
};
pub use run::Run;
pub use summary::{DataSummary, SplitCounts};

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
