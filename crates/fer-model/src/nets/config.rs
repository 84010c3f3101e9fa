//! [`ModelConfig`]: which network, its head, dropout and width, and test-time augmentation;
//! it builds the [`Classifier`] and initialises its parameters from a seed.

use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use fer_data::IMAGE_SIDE;
use serde::{Deserialize, Serialize};

use super::classifier::Classifier;
use super::seed_cnn::SeedCnn;
use super::tta::TestTimeAugmented;
use super::vgg::VggBn;
use crate::head::Head;
use crate::layers::init::reinit_seeded;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The notebook's 5-conv PReLU CNN.
    #[default]
    SeedCnn,
    /// A VGG-style network with batch norm (see [`crate::nets::vgg`]), `width` channels first.
    VggBn,
}

/// Everything needed to rebuild a model's graph; saved beside its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub head: Head,
    /// Dropout probability of the fully connected layers (the seed uses 0.2).
    pub dropout: f32,
    /// Channels of the first stage of [`Architecture::VggBn`] (doubled at each stage).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Inference averages the class probabilities of each image and its mirror image
    /// (test-time augmentation); training is unaffected.
    #[serde(default)]
    pub test_time_flip: bool,
    /// Inference also averages four shifted copies of each image: moved by this many pixels
    /// toward each corner, edge pixels repeated (as `random_crop` with replicate fill trains).
    /// With `test_time_flip`, each of the five views and its mirror: a full-size ten-crop.
    /// 0 (the default) shifts nothing.
    #[serde(default)]
    pub test_time_shift: usize,
}

fn default_width() -> usize {
    32
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: Architecture::SeedCnn,
            head: Head::Softmax,
            dropout: 0.2,
            width: default_width(),
            test_time_flip: false,
            test_time_shift: 0,
        }
    }
}

impl ModelConfig {
    /// Creates the model's parameters in `vb` (new ones are initialised as PyTorch does).
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Classifier>> {
        let model: Box<dyn Classifier> = match self.architecture {
            Architecture::SeedCnn => Box::new(SeedCnn::new(vb, self.head, self.dropout)?),
            Architecture::VggBn => Box::new(VggBn::new(vb, self.width, self.head, self.dropout)?),
        };
        if self.test_time_shift >= IMAGE_SIDE / 2 {
            candle_core::bail!(
                "model.test_time_shift must be below {} pixels, got {}",
                IMAGE_SIDE / 2,
                self.test_time_shift
            );
        }
        Ok(if self.test_time_flip || self.test_time_shift > 0 {
            Box::new(TestTimeAugmented {
                network: model,
                flip: self.test_time_flip,
                shift: self.test_time_shift,
            })
        } else {
            model
        })
    }

    /// Builds the model on `device` for a checkpoint to fill: its parameters get candle's
    /// default initialisation only, without [`ModelConfig::init`]'s seeded pass (a model
    /// loaded for inference starts faster).
    pub fn for_checkpoint(&self, device: &Device) -> Result<(VarMap, Box<dyn Classifier>)> {
        let vars = VarMap::new();
        let model = self.build(VarBuilder::from_varmap(&vars, DType::F32, device))?;
        Ok((vars, model))
    }

    /// Builds the model with fresh parameters on `device`, drawn from a ChaCha8 stream
    /// seeded by `seed` (candle's CPU generator cannot be seeded), with PyTorch's default
    /// bounds: same seed, same weights, on every machine.
    pub fn init(&self, device: &Device, seed: u64) -> Result<(VarMap, Box<dyn Classifier>)> {
        let vars = VarMap::new();
        let model = self.build(VarBuilder::from_varmap(&vars, DType::F32, device))?;
        reinit_seeded(&vars, seed)?;
        Ok((vars, model))
    }
}
