//! One module per `fer` subcommand, plus what they share.

pub mod eval;
pub mod export;
pub mod preview;
pub mod stats;
pub mod train;

use std::path::Path;

use anyhow::Context;
use fer_data::{Dataset, LoadOptions};

/// Loads `--data`: a FER2013 CSV (plain or gzip'd) or an exported image folder.
pub fn open_dataset(path: &Path, skip_bad_rows: bool) -> anyhow::Result<Dataset> {
    if path.is_dir() {
        return fer_data::folder::load_image_folder(path)
            .with_context(|| format!("cannot read image folder {}", path.display()));
    }
    let options = if skip_bad_rows {
        LoadOptions::skipping_bad_rows()
    } else {
        LoadOptions::default()
    };
    let loaded = fer_data::load(path, &options)?;
    if !loaded.skipped.is_empty() {
        tracing::warn!(
            "{}: skipped {} bad row(s)",
            path.display(),
            loaded.skipped.len()
        );
        for bad in loaded.skipped.iter().take(20) {
            tracing::warn!("  {bad}");
        }
        if loaded.skipped.len() > 20 {
            tracing::warn!("  ... and {} more", loaded.skipped.len() - 20);
        }
    }
    tracing::debug!(layout = ?loaded.layout, images = loaded.dataset.len(), "loaded");
    Ok(loaded.dataset)
}
