//! `--data`: where the images come from, and loading them (a FER2013 CSV or an image folder).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::{Dataset, LoadOptions};

/// Where the images come from: the `--data` options every data-reading command shares.
#[derive(clap::Args)]
pub struct DataArgs {
    /// FER2013 CSV (.csv or .csv.gz; the fer2013, icml_face_data and train layouts) or an
    /// exported image folder (`Split/label/row.png`).
    #[arg(long, env = "FER2013_CSV")]
    pub data: PathBuf,
    /// Leave out malformed rows (listed on stderr) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl DataArgs {
    /// Loads the dataset.
    pub fn open(&self) -> anyhow::Result<Dataset> {
        open_dataset(&self.data, self.skip_bad_rows)
    }
}

/// Loads a FER2013 CSV (plain or gzip'd) or an exported image folder.
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
