//! Mean-centering as the seed does it, done right: fitted on Training, applied everywhere.
//!
//! The seed notebook subtracts the per-pixel mean from the training images only and feeds the
//! test images raw, so its network is evaluated on inputs shifted by ~128 grey levels from
//! what it was trained on. A [`Normalizer`] is fitted once, on Training, and then applied the
//! same way to every split and to any later input; it serialises to JSON so a trained model
//! carries its own.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, IMAGE_PIXELS, Result, View, write_atomically};

/// How to fit a [`Normalizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NormalizerConfig {
    /// Also divide by the global standard deviation of the centred training pixels.
    /// Off in the seed recipe (mean subtraction only, values stay in grey levels).
    #[serde(default)]
    pub scale_by_std: bool,
}

/// Per-pixel mean subtraction with an optional global scale: `(x - mean[p]) * scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Mean grey level of every pixel position over the fitting images (2304 values).
    pub mean: Vec<f32>,
    /// Factor applied after centring: `1 / std` when fitted with `scale_by_std`, else 1.
    pub scale: f32,
    /// Number of images the statistics come from.
    pub fitted_on: usize,
}

impl Normalizer {
    /// Fits on the images of `view` (use the Training split).
    pub fn fit(view: &View<'_>, config: NormalizerConfig) -> Result<Self> {
        if view.is_empty() {
            return Err(Error::Inconsistent(
                "cannot fit a normalizer on no images".into(),
            ));
        }
        let n = view.len() as f64;
        let sums = view
            .indices()
            .par_iter()
            .fold(
                || vec![0u64; IMAGE_PIXELS],
                |mut acc, &i| {
                    for (a, &p) in acc.iter_mut().zip(view.dataset().image(i)) {
                        *a += u64::from(p);
                    }
                    acc
                },
            )
            .reduce(
                || vec![0u64; IMAGE_PIXELS],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let mean64: Vec<f64> = sums.iter().map(|&s| s as f64 / n).collect();
        let scale = if config.scale_by_std {
            let squares: f64 = view
                .indices()
                .par_iter()
                .map(|&i| {
                    view.dataset()
                        .image(i)
                        .iter()
                        .zip(&mean64)
                        .map(|(&p, m)| (f64::from(p) - m).powi(2))
                        .sum::<f64>()
                })
                .sum();
            let std = (squares / (n * IMAGE_PIXELS as f64)).sqrt();
            if std > 0.0 { (1.0 / std) as f32 } else { 1.0 }
        } else {
            1.0
        };
        Ok(Normalizer {
            mean: mean64.iter().map(|&m| m as f32).collect(),
            scale,
            fitted_on: view.len(),
        })
    }

    /// Normalises one 48x48 image into `out` (both 2304 long).
    pub fn apply(&self, image: &[u8], out: &mut [f32]) {
        for ((o, &p), &m) in out.iter_mut().zip(image).zip(&self.mean) {
            *o = (f32::from(p) - m) * self.scale;
        }
    }

    /// Normalises every image of `view`, in view order, into one `len x 2304` buffer.
    pub fn apply_view(&self, view: &View<'_>) -> Vec<f32> {
        let mut out = vec![0f32; view.len() * IMAGE_PIXELS];
        out.par_chunks_mut(IMAGE_PIXELS)
            .zip(view.indices().par_iter())
            .for_each(|(o, &i)| self.apply(view.dataset().image(i), o));
        out
    }

    /// Reads a normalizer saved by [`Normalizer::save`], checking its shape and values.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&bytes, path)
    }

    /// Reads a normalizer from the JSON [`Normalizer::save`] writes, checking its shape and
    /// values; errors name `origin` (the file, or what the bytes stand for).
    pub fn from_json(bytes: &[u8], origin: &Path) -> Result<Self> {
        let invalid = |message: String| Error::Normalizer {
            path: origin.to_path_buf(),
            message,
        };
        let normalizer: Normalizer =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if normalizer.mean.len() != IMAGE_PIXELS {
            return Err(invalid(format!(
                "mean: expected {IMAGE_PIXELS} values, found {}",
                normalizer.mean.len()
            )));
        }
        if !normalizer.scale.is_finite() || normalizer.mean.iter().any(|m| !m.is_finite()) {
            return Err(invalid("mean or scale is not finite".into()));
        }
        Ok(normalizer)
    }

    /// Writes the normalizer as JSON, atomically (a temporary file renamed into place).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_vec(self).map_err(|e| Error::Normalizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomically(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, Emotion, Split};

    fn two_splits() -> Dataset {
        // Training: images of 10 and 30 (mean 20, std 10); PublicTest: an image of 200.
        let pixels = [10u8, 30, 200]
            .iter()
            .flat_map(|&v| vec![v; IMAGE_PIXELS])
            .collect();
        Dataset::from_parts(
            pixels,
            vec![Emotion::Angry; 3],
            vec![Split::Training, Split::Training, Split::PublicTest],
            vec![0, 1, 2],
        )
        .unwrap()
    }

    #[test]
    fn fits_on_training_only_and_applies_everywhere() {
        let data = two_splits();
        let norm =
            Normalizer::fit(&data.view(Split::Training), NormalizerConfig::default()).unwrap();
        assert!(norm.mean.iter().all(|&m| m == 20.0));
        assert_eq!(norm.scale, 1.0);
        assert_eq!(norm.fitted_on, 2);
        let test = norm.apply_view(&data.view(Split::PublicTest));
        assert!(test.iter().all(|&x| x == 180.0));

        let scaled = Normalizer::fit(
            &data.view(Split::Training),
            NormalizerConfig { scale_by_std: true },
        )
        .unwrap();
        assert!((scaled.scale - 0.1).abs() < 1e-7);
        let train = scaled.apply_view(&data.view(Split::Training));
        assert!((train[0] + 1.0).abs() < 1e-6 && (train[IMAGE_PIXELS] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn round_trips_through_json_and_rejects_bad_files() {
        let data = two_splits();
        let norm =
            Normalizer::fit(&data.view(Split::Training), NormalizerConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("normalizer.json");
        norm.save(&path).unwrap();
        assert_eq!(Normalizer::load(&path).unwrap(), norm);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "not the temporary file's 0600");
        }

        std::fs::write(&path, r#"{"mean":[1.0,2.0],"scale":1.0,"fitted_on":2}"#).unwrap();
        let err = Normalizer::load(&path).unwrap_err().to_string();
        assert!(err.contains("mean: expected 2304 values, found 2"), "{err}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(
            Normalizer::load(&path)
                .unwrap_err()
                .to_string()
                .contains("invalid normalizer")
        );
        assert!(
            Normalizer::fit(&data.view_of(vec![]).unwrap(), NormalizerConfig::default()).is_err()
        );
    }
}
