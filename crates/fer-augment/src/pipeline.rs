//! A serde-configured list of transforms, applied to batches in parallel and reproducibly.

use std::path::Path;

use fer_data::{Dataset, IMAGE_PIXELS};
use image::GrayImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::transform::SIDE;
use crate::{Erase, Error, Fill, Transform};

/// The transforms of a pipeline, in order. Serialises to JSON so a run records it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PipelineConfig {
    pub transforms: Vec<Transform>,
}

impl PipelineConfig {
    /// No augmentation (the seed's ablation: "without augmentation").
    pub fn none() -> Self {
        PipelineConfig::default()
    }

    /// The seed notebook's `Compose([RandomHorizontalFlip(), RandomRotation(6), ColorJitter()])`.
    ///
    /// `ColorJitter()` without arguments has brightness = contrast = saturation = hue = 0 and
    /// changes nothing; it is kept here, with factors 0, to mirror the notebook faithfully.
    /// The rotation fills uncovered corners with grey 0, as torchvision does (the notebook
    /// rotated mean-centred images, where 0 is the mean grey; on raw grey levels 0 is black).
    pub fn seed() -> Self {
        PipelineConfig {
            transforms: vec![
                Transform::HorizontalFlip { p: 0.5 },
                Transform::Rotation {
                    degrees: 6.0,
                    fill: Fill::Constant { value: 0 },
                },
                Transform::ColorJitter {
                    brightness: 0.0,
                    contrast: 0.0,
                },
            ],
        }
    }

    /// What the strongest FER2013 recipes use: shifted crops, flips, small affine changes,
    /// brightness/contrast jitter and random erasing.
    pub fn modern() -> Self {
        PipelineConfig {
            transforms: vec![
                Transform::RandomCrop {
                    padding: 4,
                    fill: Fill::Replicate,
                },
                Transform::HorizontalFlip { p: 0.5 },
                Transform::Affine {
                    degrees: 10.0,
                    translate: 0.0,
                    scale: [0.9, 1.1],
                    fill: Fill::Replicate,
                },
                Transform::ColorJitter {
                    brightness: 0.3,
                    contrast: 0.3,
                },
                Transform::RandomErasing {
                    p: 0.5,
                    scale: [0.02, 0.2],
                    ratio: [0.3, 3.3],
                    value: Erase::Random,
                },
            ],
        }
    }

    /// Every transform this crate has, once: for benchmarks and previews.
    pub fn everything() -> Self {
        let mut config = PipelineConfig::modern();
        config.transforms.insert(
            1,
            Transform::RandomResizedCrop {
                scale: [0.8, 1.0],
                ratio: [0.9, 1.1],
            },
        );
        config.transforms.insert(
            3,
            Transform::Rotation {
                degrees: 6.0,
                fill: Fill::Replicate,
            },
        );
        config
            .transforms
            .push(Transform::GaussianNoise { p: 0.5, std: 8.0 });
        config.transforms.extend(Self::degradations());
        config
    }

    /// [`PipelineConfig::modern`] plus blur, downscaling and Gaussian noise, each on a fifth
    /// of the images: for faces from cameras and photos less sharp or clean than FER2013's
    /// (`fer eval --corruption` measures what they cost a model trained without them: on
    /// PublicTest, the built-in `fast` model falls from 69.5% to 42.2% at `blur=1.5` and to
    /// 50.1% at `noise=10`).
    pub fn robust() -> Self {
        let mut config = PipelineConfig::modern();
        config.transforms.extend(Self::degradations());
        config
            .transforms
            .push(Transform::GaussianNoise { p: 0.2, std: 8.0 });
        config
    }

    /// The blur and downscaling of [`PipelineConfig::robust`] (`everything` has them too).
    fn degradations() -> [Transform; 2] {
        [
            Transform::GaussianBlur {
                p: 0.2,
                sigma: [0.5, 1.5],
            },
            Transform::Downscale {
                p: 0.2,
                side: [16, 40],
            },
        ]
    }

    /// A built-in profile by name: `none`, `seed`, `modern`, `robust`, `everything`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::none()),
            "seed" => Some(Self::seed()),
            "modern" => Some(Self::modern()),
            "robust" => Some(Self::robust()),
            "everything" => Some(Self::everything()),
            _ => None,
        }
    }

    /// Checks every transform's parameters.
    pub fn validate(&self) -> Result<(), Error> {
        self.transforms.iter().try_for_each(Transform::validate)
    }

    /// Reads and validates a JSON config (`{"transforms": [{"type": "horizontal_flip", "p": 0.5}]}`).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let config_error = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
        let config: PipelineConfig =
            serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

/// A validated config with the seed of its random streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    config: PipelineConfig,
    seed: u64,
}

impl Pipeline {
    /// Validates `config`; `seed` picks the random streams.
    pub fn new(config: PipelineConfig, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        Ok(Pipeline { config, seed })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Whether the pipeline has no transform (its output is its input).
    pub fn is_identity(&self) -> bool {
        self.config.transforms.is_empty()
    }

    /// The random stream of one sample in one epoch: independent of threads and batch order.
    fn rng(&self, epoch: u64, sample: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sample);
        rng
    }

    /// Augments one 48x48 image (2304 bytes) of sample `sample` in epoch `epoch`.
    pub fn apply(&self, image: &[u8], epoch: u64, sample: u64) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; IMAGE_PIXELS];
        self.apply_into(image, &mut out, epoch, sample)?;
        Ok(out)
    }

    /// Augments `image` into `out` (both 2304 bytes).
    pub fn apply_into(
        &self,
        image: &[u8],
        out: &mut [u8],
        epoch: u64,
        sample: u64,
    ) -> Result<(), Error> {
        for len in [image.len(), out.len()] {
            if len != IMAGE_PIXELS {
                return Err(Error::ImageSize {
                    expected: IMAGE_PIXELS,
                    found: len,
                });
            }
        }
        let mut current = GrayImage::from_raw(SIDE, SIDE, image.to_vec()).expect("length checked");
        let mut scratch = GrayImage::new(SIDE, SIDE);
        let mut rng = self.rng(epoch, sample);
        for transform in &self.config.transforms {
            transform.apply(&mut current, &mut scratch, &mut rng);
        }
        out.copy_from_slice(current.as_raw());
        Ok(())
    }

    /// Augments `images` (`n x 2304` bytes) in parallel; `samples[i]` is image `i`'s sample
    /// id (e.g. its dataset position), which with `epoch` fixes its random draws.
    pub fn apply_batch(
        &self,
        images: &[u8],
        samples: &[u64],
        epoch: u64,
    ) -> Result<Vec<u8>, Error> {
        if images.len() != samples.len() * IMAGE_PIXELS {
            return Err(Error::ImageSize {
                expected: samples.len() * IMAGE_PIXELS,
                found: images.len(),
            });
        }
        let mut out = vec![0u8; images.len()];
        out.par_chunks_mut(IMAGE_PIXELS)
            .zip(images.par_chunks(IMAGE_PIXELS))
            .zip(samples.par_iter())
            .try_for_each(|((o, image), &sample)| self.apply_into(image, o, epoch, sample))?;
        Ok(out)
    }

    /// Gathers the images at `indices` of `dataset` and augments them, using each dataset
    /// position as its sample id.
    pub fn augment_from(&self, dataset: &Dataset, indices: &[usize], epoch: u64) -> Vec<u8> {
        let mut out = vec![0u8; indices.len() * IMAGE_PIXELS];
        out.par_chunks_mut(IMAGE_PIXELS)
            .zip(indices.par_iter())
            .for_each(|(o, &i)| {
                self.apply_into(dataset.image(i), o, epoch, i as u64)
                    .expect("dataset images are 2304 bytes");
            });
        out
    }
}
