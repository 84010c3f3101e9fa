//! Plots and self-contained HTML reports of FER2013 data and training runs.

mod error;
pub mod evaluation;
pub mod html;
pub mod plot;
pub mod summary;

pub use error::{Error, Result};
pub use evaluation::{ClassReport, EvalReport};
pub use plot::{
    ConfusionChart, CurvesChart, DistributionChart, Face, Format, PerClassChart, Plot, SampleGrid,
};
pub use summary::{DataSummary, SplitCounts};
