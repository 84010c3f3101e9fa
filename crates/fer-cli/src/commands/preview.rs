//! `fer augment-preview`: a PNG grid of real images and their augmented versions.

use std::path::PathBuf;

use anyhow::Context;
use fer_augment::{Pipeline, PipelineConfig};
use fer_data::{IMAGE_SIDE, Split};
use image::{GrayImage, imageops};

use crate::shared::data::DataArgs;
use crate::shared::values::AugmentProfile;

/// Draw a grid: each row one image, first as it is, then augmented (one per epoch).
///
/// Example: fer augment-preview --data data/fer2013.csv.gz --out grid.png --profile modern
#[derive(clap::Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub input: DataArgs,
    /// PNG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Augmentation config (JSON, as saved with a run); overrides --profile.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Built-in augmentation profile.
    #[arg(long, value_enum, default_value_t = AugmentProfile::Seed)]
    pub profile: AugmentProfile,
    /// Number of images (rows), the first of the split.
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Augmented versions per image (columns after the original).
    #[arg(long, default_value_t = 8)]
    pub versions: usize,
    /// Split to take the images from.
    #[arg(long, default_value = "training")]
    pub split: Split,
    /// Seed of the augmentation's random streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Magnification of each 48x48 face.
    #[arg(long, default_value_t = 3)]
    pub zoom: u32,
}

pub fn run(args: &PreviewArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => PipelineConfig::from_json_file(path)?,
        None => args.profile.config(),
    };
    let pipeline = Pipeline::new(config, args.seed)?;
    let dataset = args.input.open()?;
    let view = dataset.view(args.split);
    let rows = args.n.min(view.len());
    anyhow::ensure!(
        rows > 0,
        "{}: no {} images",
        args.input.data.display(),
        args.split
    );
    let grid = render_grid(&pipeline, &view, rows, args.versions, args.zoom.max(1))?;
    grid.save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    outln!(
        "wrote {} ({rows} images x {} augmented versions)",
        args.out.display(),
        args.versions
    )?;
    Ok(())
}

/// The grid image: `rows` lines of `1 + versions` faces, `gap` pixels apart on white.
pub fn render_grid(
    pipeline: &Pipeline,
    view: &fer_data::View<'_>,
    rows: usize,
    versions: usize,
    zoom: u32,
) -> anyhow::Result<GrayImage> {
    let cell = IMAGE_SIDE as u32 * zoom;
    let gap = 4;
    let columns = 1 + versions as u32;
    let mut grid = GrayImage::from_pixel(
        columns * (cell + gap) + gap,
        rows as u32 * (cell + gap) + gap,
        image::Luma([255]),
    );
    for row in 0..rows {
        let sample = view.sample(row);
        for column in 0..columns {
            let pixels = if column == 0 {
                sample.pixels.to_vec()
            } else {
                pipeline.apply(sample.pixels, u64::from(column - 1), sample.index as u64)?
            };
            let face = GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, pixels)
                .context("augmented image is not 48x48")?;
            let big = imageops::resize(&face, cell, cell, imageops::FilterType::Nearest);
            let x = gap + column * (cell + gap);
            let y = gap + row as u32 * (cell + gap);
            imageops::replace(&mut grid, &big, i64::from(x), i64::from(y));
        }
    }
    Ok(grid)
}
