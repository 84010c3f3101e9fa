//! `--data`: where the images come from, and loading them (a FER2013 CSV or an image folder).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::face_image::face_pixels;
use fer_data::folder::{FolderLayout, FolderOptions};
use fer_data::{Dataset, LoadOptions};
use image::GrayImage;

/// Where the images come from: the `--data` options every data-reading command shares.
#[derive(clap::Args)]
pub struct DataArgs {
    /// FER2013 CSV (.csv or .csv.gz; the fer2013, icml_face_data and train layouts) or a
    /// folder of labelled faces: `Split/label/image` (as `fer export-images` writes it) or
    /// `label/image` (read as PrivateTest); labels by FER2013 number (0-6) or emotion name;
    /// images of any size (their centred square is resized to 48x48).
    #[arg(long, env = "FER2013_CSV")]
    pub data: PathBuf,
    /// Leave out malformed rows, or a folder's unreadable images (listed on stderr), instead
    /// of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl DataArgs {
    /// Loads the dataset.
    pub fn open(&self) -> anyhow::Result<Dataset> {
        open_dataset(&self.data, self.skip_bad_rows)
    }

    /// Loads an image folder with each face taken from its image by `crop` (e.g. the largest
    /// face a detector finds) instead of the centred square; images where `crop` finds no
    /// face are left out and counted on stderr.
    pub fn open_folder_with_crop<F>(&self, crop: F) -> anyhow::Result<Dataset>
    where
        F: Fn(&GrayImage) -> Result<Option<Vec<u8>>, String> + Sync,
    {
        anyhow::ensure!(
            self.data.is_dir(),
            "{}: faces are found only in a folder of images (a CSV holds 48x48 face crops already)",
            self.data.display()
        );
        open_folder(&self.data, self.skip_bad_rows, crop)
    }

    /// Loads the dataset and checks that it has Training images, before anything is written
    /// to a run directory.
    pub fn open_for_training(&self) -> anyhow::Result<Dataset> {
        let dataset = self.open()?;
        anyhow::ensure!(
            !dataset.view(fer_data::Split::Training).is_empty(),
            "{}: no Training images to train on{}",
            self.data.display(),
            if self.data.is_dir() {
                " (a folder of label folders alone is read as PrivateTest; put them under \
                 train/, val/ and test/ to train on them)"
            } else {
                ""
            }
        );
        Ok(dataset)
    }
}

/// Loads a FER2013 CSV (plain or gzip'd) or a folder of labelled faces.
pub fn open_dataset(path: &Path, skip_bad_rows: bool) -> anyhow::Result<Dataset> {
    if path.is_dir() {
        return open_folder(path, skip_bad_rows, |image| Ok(Some(face_pixels(image))));
    }
    let options = if skip_bad_rows {
        LoadOptions::skipping_bad_rows()
    } else {
        LoadOptions::default()
    };
    let loaded = fer_data::load(path, &options)?;
    warn_skipped(path, "bad row(s)", &loaded.skipped);
    tracing::debug!(layout = ?loaded.layout, images = loaded.dataset.len(), "loaded");
    Ok(loaded.dataset)
}

/// Loads a folder of labelled faces, each taken from its image by `crop`, saying on stderr
/// what was done to fit them.
fn open_folder<F>(path: &Path, skip_unreadable: bool, crop: F) -> anyhow::Result<Dataset>
where
    F: Fn(&GrayImage) -> Result<Option<Vec<u8>>, String> + Sync,
{
    let options = FolderOptions { skip_unreadable };
    let loaded = fer_data::folder::load_image_folder_with_crop(path, &options, crop)
        .with_context(|| format!("cannot read image folder {}", path.display()))?;
    let images = loaded.dataset.len();
    if loaded.layout == FolderLayout::Labels {
        tracing::info!(
            "{}: {images} faces in label folders, read as the PrivateTest split",
            path.display()
        );
    }
    if loaded.resized > 0 {
        tracing::info!(
            "{}: {} of {images} images are not 48x48: their faces were resized to 48x48",
            path.display(),
            loaded.resized
        );
    }
    if let Some(first) = loaded.faceless.first() {
        tracing::warn!(
            "{}: no face found in {} of {} images, left out (e.g. {})",
            path.display(),
            loaded.faceless.len(),
            images + loaded.faceless.len(),
            first.display()
        );
    }
    if !loaded.ignored.is_empty() {
        tracing::info!(
            "{}: {} file(s) that are not images left unread (e.g. {})",
            path.display(),
            loaded.ignored.len(),
            loaded.ignored[0].display()
        );
    }
    warn_skipped(path, "unreadable image(s)", &loaded.skipped);
    tracing::debug!(
        layout = ?loaded.layout,
        images,
        rows_from_names = loaded.rows_from_names,
        "loaded"
    );
    Ok(loaded.dataset)
}

/// Lists what `--skip-bad-rows` left out of `path` on stderr (the first 20).
fn warn_skipped<T: std::fmt::Display>(path: &Path, what: &str, skipped: &[T]) {
    if skipped.is_empty() {
        return;
    }
    tracing::warn!("{}: skipped {} {what}", path.display(), skipped.len());
    for bad in skipped.iter().take(20) {
        tracing::warn!("  {bad}");
    }
    if skipped.len() > 20 {
        tracing::warn!("  ... and {} more", skipped.len() - 20);
    }
}
