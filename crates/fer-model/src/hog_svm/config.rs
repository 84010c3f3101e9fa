//! [`HogSvmConfig`]: the HOG parameters, the grid of C values and the solver's options.

use serde::{Deserialize, Serialize};

use super::error::HogSvmError;
use super::features::HogParams;

/// What to train: HOG parameters, the C grid and the solver's stopping rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HogSvmConfig {
    pub hog: HogParams,
    /// Candidate regularisation constants; the best on PublicTest is kept (ties: the smaller).
    pub c_grid: Vec<f64>,
    /// Stop when the projected gradient's spread is at most this (LIBLINEAR's `-e`, 0.1).
    pub tolerance: f64,
    /// At most this many passes over the data per binary problem (LIBLINEAR's 1000).
    pub max_epochs: usize,
    /// Seeds the solver's visiting order.
    pub seed: u64,
}

impl Default for HogSvmConfig {
    fn default() -> Self {
        HogSvmConfig {
            hog: HogParams::default(),
            c_grid: vec![0.0001, 0.001, 0.01],
            tolerance: 0.1,
            max_epochs: 1000,
            seed: 0,
        }
    }
}

impl HogSvmConfig {
    /// Checks the parameters; returns the feature length.
    pub fn validate(&self) -> Result<usize, HogSvmError> {
        if self.c_grid.is_empty() || self.c_grid.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(HogSvmError::Config(format!(
                "c_grid {:?}: needs at least one C, every C finite and positive",
                self.c_grid
            )));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(HogSvmError::Config(format!(
                "tolerance {}: must be finite and positive",
                self.tolerance
            )));
        }
        if self.max_epochs == 0 {
            return Err(HogSvmError::Config("max_epochs must be at least 1".into()));
        }
        self.hog.feature_len()
    }
}
