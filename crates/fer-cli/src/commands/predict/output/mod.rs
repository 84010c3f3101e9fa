//! How `fer predict` prints its results: one module per output format, each a [`Printer`].
//! A new format is a variant of [`OutputFormat`] and a module here.

mod csv;
mod json;
mod text;

use std::io::Write;

use super::prediction::ImagePrediction;

/// The output formats (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per face: its most likely emotions with their probabilities.
    Text,
    /// One JSON document: every file with its faces, boxes and probabilities.
    Json,
    /// CSV: one row per face with the seven probabilities.
    Csv,
}

impl OutputFormat {
    /// The printer of this format, listing `top` emotions per face where the format does; JSON
    /// names the model (`builtin:NAME` or the path it was given).
    pub fn printer(self, top: u8, model: &str) -> Box<dyn Printer> {
        match self {
            OutputFormat::Text => Box::new(text::TextPrinter::new(top)),
            OutputFormat::Json => Box::new(json::JsonPrinter::new(top, model)),
            OutputFormat::Csv => Box::new(csv::CsvPrinter),
        }
    }
}

/// Writes the results of the input files, in order, as they come.
pub trait Printer {
    /// Writes what comes before the first file (a header).
    fn begin(&mut self, _out: &mut dyn Write) -> anyhow::Result<()> {
        Ok(())
    }

    /// Writes, or keeps for [`Printer::finish`], one file's result.
    fn image(&mut self, out: &mut dyn Write, prediction: &ImagePrediction) -> anyhow::Result<()>;

    /// Writes what comes after the last file.
    fn finish(&mut self, _out: &mut dyn Write) -> anyhow::Result<()> {
        Ok(())
    }
}
