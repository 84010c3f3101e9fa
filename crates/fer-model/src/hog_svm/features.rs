//! HOG descriptors of 48x48 faces (imageproc's `hog`) and their standardisation, fitted on
//! Training only.

use fer_data::{IMAGE_PIXELS, IMAGE_SIDE, View};
use imageproc::hog::{HogOptions, HogSpec, hog};
use imageproc::image::GrayImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::HogSvmError;

/// HOG descriptor parameters (imageproc's `HogOptions`, for 48x48 images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HogParams {
    /// Orientation bins per cell histogram.
    pub orientations: usize,
    /// Signed gradients (bins over 360 degrees) or unsigned (over 180 degrees).
    pub signed: bool,
    /// Cell side in pixels; must divide 48.
    pub cell_side: usize,
    /// Block side in cells (each block is L2-normalised).
    pub block_side: usize,
    /// Block stride in cells.
    pub block_stride: usize,
}

impl Default for HogParams {
    /// 4x4-pixel cells, 2x2-cell blocks with stride 1, 9 signed orientations: 4356 features,
    /// the best on FER2013's PublicTest of 4x4/8x8 cells, signed/unsigned (see the README).
    fn default() -> Self {
        HogParams {
            orientations: 9,
            signed: true,
            cell_side: 4,
            block_side: 2,
            block_stride: 1,
        }
    }
}

impl HogParams {
    fn options(&self) -> HogOptions {
        HogOptions::new(
            self.orientations,
            self.signed,
            self.cell_side,
            self.block_side,
            self.block_stride,
        )
    }

    /// Length of the descriptor of a 48x48 image: blocks x block_side² x orientations.
    pub fn feature_len(&self) -> Result<usize, HogSvmError> {
        let side = IMAGE_SIDE as u32;
        if self.orientations == 0
            || self.cell_side == 0
            || self.block_side == 0
            || self.block_stride == 0
            || self.cell_side * self.block_side > IMAGE_SIDE
        {
            return Err(HogSvmError::Config(format!(
                "HOG parameters {self:?}: every size must be at least 1 and a block must fit \
                 in {IMAGE_SIDE} pixels"
            )));
        }
        HogSpec::from_options(side, side, self.options())
            .map(|spec| spec.descriptor_length())
            .map_err(HogSvmError::Config)
    }
}

/// Row-major `rows x dim` features.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl FeatureMatrix {
    /// Wraps `data` (`rows * dim` values).
    pub fn new(rows: usize, dim: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * dim, "features must be rows x dim");
        FeatureMatrix { rows, dim, data }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// The HOG descriptor of one 48x48 image (`params.feature_len()` values).
pub fn hog_features(pixels: &[u8], params: &HogParams) -> Result<Vec<f32>, HogSvmError> {
    params.feature_len()?;
    descriptor(pixels, params)
}

pub(crate) fn descriptor(pixels: &[u8], params: &HogParams) -> Result<Vec<f32>, HogSvmError> {
    if pixels.len() != IMAGE_PIXELS {
        return Err(HogSvmError::ImageSize(pixels.len()));
    }
    let side = IMAGE_SIDE as u32;
    let image = GrayImage::from_raw(side, side, pixels.to_vec())
        .ok_or(HogSvmError::ImageSize(pixels.len()))?;
    hog(&image, params.options()).map_err(HogSvmError::Config)
}

/// HOG descriptors of every image of `view`, in its order, computed in parallel.
pub fn extract_features(view: &View<'_>, params: &HogParams) -> Result<FeatureMatrix, HogSvmError> {
    let dim = params.feature_len()?;
    let mut data = vec![0f32; view.len() * dim];
    data.par_chunks_mut(dim.max(1))
        .enumerate()
        .try_for_each(|(k, out)| {
            out.copy_from_slice(&descriptor(view.image(k), params)?);
            Ok::<(), HogSvmError>(())
        })?;
    Ok(FeatureMatrix::new(view.len(), dim, data))
}

/// Per-feature standardisation `(x - mean) / std`, fitted on Training features only.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    /// Population standard deviations; 1 where a feature is constant.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Mean and standard deviation of every column (accumulated in f64).
    pub fn fit(features: &FeatureMatrix) -> Self {
        let dim = features.dim;
        let n = features.rows.max(1) as f64;
        let mut sum = vec![0f64; dim];
        let mut sum_sq = vec![0f64; dim];
        for i in 0..features.rows {
            for (j, &v) in features.row(i).iter().enumerate() {
                sum[j] += f64::from(v);
                sum_sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let sd = (sq / n - m * m).max(0.0).sqrt();
                if sd > 1e-6 { sd as f32 } else { 1.0 }
            })
            .collect();
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Standardises one feature vector in place.
    pub fn apply(&self, features: &mut [f32]) {
        for ((v, m), s) in features.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = (*v - m) / s;
        }
    }

    /// Standardises every row in place, in parallel.
    pub fn apply_all(&self, features: &mut FeatureMatrix) {
        let dim = features.dim.max(1);
        features
            .data
            .par_chunks_mut(dim)
            .for_each(|row| self.apply(row));
    }
}
