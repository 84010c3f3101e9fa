//! FER2013 as a typed, validated, in-memory dataset: ingest, splits, statistics, normalisation.
//!
//! `fer-data` is the bottom of the `fer` workspace. It reads the FER2013 CSV (plain or gzip'd,
//! in the three layouts Kaggle has shipped) with [polars], checks every row, and hands back a
//! [`Dataset`]: one contiguous `u8` buffer of `N x 48 x 48` pixels with a label, a split and the
//! source row of every image. On top of that it offers
//!
//! - cheap per-split [`View`]s and owned subsets by index,
//! - [`Statistics`]: class counts and shares per split, and the dataset's quirks (all-black
//!   images, exact duplicates within and across splits, duplicates with conflicting labels),
//! - a [`Normalizer`] fitted on the Training split only and applied the same way everywhere,
//! - export to and import from image folders (`<out>/<Split>/<label>/<row>.png`, or other
//!   datasets' labelled faces of any size),
//! - [`face_image`]: any photo file (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM) as a 48x48 grey face,
//! - a seeded [`synthetic`] generator of learnable FER-format data for tests.
//!
//! ```no_run
//! use fer_data::{load, LoadOptions, Split, Statistics};
//!
//! let loaded = load("fer2013.csv.gz", &LoadOptions::default())?;
//! let train = loaded.dataset.view(Split::Training);
//! println!("{} training images", train.len());
//! let stats = Statistics::compute(&loaded.dataset);
//! println!("{} all-black images", stats.black_images.len());
//! # Ok::<(), fer_data::Error>(())
//! ```
//!
//! Reading and writing CSV files ([`load`], [`write_csv`]) is the `csv` feature (on by default),
//! the one that needs polars; without it the rest of the crate still builds.
//!
//! Invariant: this crate knows nothing of tensors or models; it never depends on candle.

mod dataset;
mod emotion;
mod error;
pub mod face_image;
pub mod folder;
mod fs;
#[cfg(feature = "csv")]
mod ingest;
mod normalize;
pub mod pixels;
mod stats;
pub mod synthetic;

pub use dataset::{Dataset, Sample, View};
pub use emotion::{Emotion, ParseNameError, Split};
pub use error::{BadRow, Error, Result};
pub use fs::write_atomically;
#[cfg(feature = "csv")]
pub use ingest::{Layout, LoadOptions, Loaded, RowPolicy, load, write_csv};
pub use normalize::{Normalizer, NormalizerConfig};
pub use stats::{DuplicateGroup, Duplicates, SplitStats, Statistics};

/// Side of a FER2013 image in pixels.
pub const IMAGE_SIDE: usize = 48;
/// Pixels in one FER2013 image (48 x 48).
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// The README's example, compiled as a doc-test (`cargo test --doc`) so that it keeps up with
/// the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
