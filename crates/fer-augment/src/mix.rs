//! Batch mixing for training: mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019).
//!
//! Both blend every image of a batch with a partner drawn by a random permutation of the same
//! batch. The training loss then weighs each image's own label by [`MixedBatch::weight`] and
//! its partner's by `1 - weight` (the two losses, not a blended label, so any loss works).
//! Mixing runs on the normalised `f32` images, after the per-image transforms.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Which batches are mixed, and how (timm's `Mixup` options, per batch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Mixup: the weight is drawn from Beta(alpha, alpha); 0 turns mixup off.
    #[serde(default)]
    pub mixup_alpha: f32,
    /// CutMix: the kept area is drawn from Beta(alpha, alpha); 0 turns CutMix off.
    #[serde(default)]
    pub cutmix_alpha: f32,
    /// Probability that a batch is mixed at all.
    #[serde(default = "always")]
    pub probability: f32,
    /// When both are on, the probability that a mixed batch uses CutMix rather than mixup.
    #[serde(default = "half")]
    pub cutmix_share: f32,
}

fn always() -> f32 {
    1.0
}

fn half() -> f32 {
    0.5
}

impl Default for MixConfig {
    /// Nothing mixed.
    fn default() -> Self {
        MixConfig {
            mixup_alpha: 0.0,
            cutmix_alpha: 0.0,
            probability: always(),
            cutmix_share: half(),
        }
    }
}

/// What a mixed batch's loss needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedBatch {
    /// Image `i` was blended with image `partner[i]` of the batch (before blending).
    pub partner: Vec<usize>,
    /// The share of each image's own content, in 0..=1: the weight of its own label.
    pub weight: f32,
}

impl MixConfig {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| Error::Invalid {
            transform: "mixing",
            message,
        };
        for (name, value) in [
            ("mixup_alpha", self.mixup_alpha),
            ("cutmix_alpha", self.cutmix_alpha),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(format!("{name} must be >= 0, got {value}")));
            }
        }
        for (name, value) in [
            ("probability", self.probability),
            ("cutmix_share", self.cutmix_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(format!("{name} must be in [0, 1], got {value}")));
            }
        }
        Ok(())
    }

    /// Whether any batch can be mixed.
    pub fn is_active(&self) -> bool {
        self.probability > 0.0 && (self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0)
    }

    /// Mixes the batch `images` (square images of `side * side` values, back to back) in
    /// place; `None` when this batch is left as it is. Invalid alphas leave it unmixed.
    pub fn mix(&self, images: &mut [f32], side: usize, rng: &mut impl Rng) -> Option<MixedBatch> {
        let pixels = side * side;
        if pixels == 0 || !self.is_active() || rng.random::<f32>() >= self.probability {
            return None;
        }
        let n = images.len() / pixels;
        if n < 2 {
            return None;
        }
        let use_cutmix = match (self.mixup_alpha > 0.0, self.cutmix_alpha > 0.0) {
            (true, true) => rng.random::<f32>() < self.cutmix_share,
            (_, cutmix) => cutmix,
        };
        let alpha = if use_cutmix {
            self.cutmix_alpha
        } else {
            self.mixup_alpha
        };
        let lambda = Beta::new(alpha, alpha).ok()?.sample(rng);
        let mut partner: Vec<usize> = (0..n).collect();
        partner.shuffle(rng);
        let original = images.to_vec();
        let weight = if use_cutmix {
            let area = paste_box(images, &original, &partner, side, lambda, rng);
            1.0 - area as f32 / pixels as f32
        } else {
            for (i, image) in images.chunks_exact_mut(pixels).enumerate() {
                let other = &original[partner[i] * pixels..(partner[i] + 1) * pixels];
                for (value, &o) in image.iter_mut().zip(other) {
                    *value = lambda * *value + (1.0 - lambda) * o;
                }
            }
            lambda
        };
        Some(MixedBatch { partner, weight })
    }
}

/// CutMix: pastes the same box of each partner into each image. The box covers about
/// `1 - lambda` of the image, centred uniformly and clipped at the borders (as in the paper);
/// returns the pasted area in pixels.
fn paste_box(
    images: &mut [f32],
    original: &[f32],
    partner: &[usize],
    side: usize,
    lambda: f32,
    rng: &mut impl Rng,
) -> usize {
    let cut = ((1.0 - lambda).max(0.0).sqrt() * side as f32) as usize;
    let cy = rng.random_range(0..side);
    let cx = rng.random_range(0..side);
    let y0 = cy.saturating_sub(cut / 2);
    let y1 = (cy + cut / 2).min(side);
    let x0 = cx.saturating_sub(cut / 2);
    let x1 = (cx + cut / 2).min(side);
    let pixels = side * side;
    for (i, image) in images.chunks_exact_mut(pixels).enumerate() {
        let other = &original[partner[i] * pixels..(partner[i] + 1) * pixels];
        for y in y0..y1 {
            image[y * side + x0..y * side + x1]
                .copy_from_slice(&other[y * side + x0..y * side + x1]);
        }
    }
    (y1 - y0) * (x1 - x0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Image `i` is filled with the value `i`, so every output pixel says where it came from.
    fn batch(n: usize, side: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| std::iter::repeat_n(i as f32, side * side))
            .collect()
    }

    #[test]
    fn mixup_blends_each_image_with_its_partner_by_the_weight() {
        let config = MixConfig {
            mixup_alpha: 0.4,
            ..MixConfig::default()
        };
        let mut weights = Vec::new();
        for seed in 0..200 {
            let mut images = batch(8, 4);
            let mixed = config
                .mix(&mut images, 4, &mut ChaCha8Rng::seed_from_u64(seed))
                .expect("probability 1 mixes every batch");
            let w = mixed.weight;
            assert!((0.0..=1.0).contains(&w));
            let mut sorted = mixed.partner.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "a permutation");
            for (i, image) in images.chunks(16).enumerate() {
                let expected = w * i as f32 + (1.0 - w) * mixed.partner[i] as f32;
                assert!(image.iter().all(|v| (v - expected).abs() < 1e-5));
            }
            weights.push(w);
        }
        // Beta(0.4, 0.4) is U-shaped with mean 0.5: most draws near 0 or 1.
        let mean = weights.iter().sum::<f32>() / weights.len() as f32;
        assert!((mean - 0.5).abs() < 0.08, "mean {mean}");
        let extreme = weights.iter().filter(|w| **w < 0.1 || **w > 0.9).count();
        assert!(extreme > 70, "{extreme} of 200 near 0 or 1");
    }

    #[test]
    fn cutmix_pastes_one_box_whose_area_sets_the_weight() {
        let config = MixConfig {
            cutmix_alpha: 1.0,
            ..MixConfig::default()
        };
        let side = 12;
        for seed in 0..100 {
            let mut images = batch(5, side);
            let mixed = config
                .mix(&mut images, side, &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap();
            for (i, image) in images.chunks(side * side).enumerate() {
                let own = image.iter().filter(|v| **v == i as f32).count();
                let pasted = image
                    .iter()
                    .filter(|v| **v == mixed.partner[i] as f32)
                    .count();
                if mixed.partner[i] == i {
                    assert_eq!(own, side * side);
                    continue;
                }
                assert_eq!(own + pasted, side * side, "only own or partner pixels");
                let expected = mixed.weight * (side * side) as f32;
                assert!((own as f32 - expected).abs() < 1e-3, "{own} vs {expected}");
            }
        }
    }

    #[test]
    fn off_by_default_by_probability_and_for_single_images() {
        let mut images = batch(4, 4);
        let before = images.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(MixConfig::default().mix(&mut images, 4, &mut rng), None);
        let never = MixConfig {
            mixup_alpha: 1.0,
            probability: 0.0,
            ..MixConfig::default()
        };
        assert_eq!(never.mix(&mut images, 4, &mut rng), None);
        let mixup = MixConfig {
            mixup_alpha: 1.0,
            ..MixConfig::default()
        };
        let mut single = batch(1, 4);
        assert_eq!(mixup.mix(&mut single, 4, &mut rng), None);
        assert_eq!(images, before);
        let bad = MixConfig {
            probability: 1.5,
            ..MixConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("probability")
        );
        assert!(mixup.validate().is_ok());
    }

    #[test]
    fn both_on_uses_each_about_as_often_as_asked() {
        let config = MixConfig {
            mixup_alpha: 0.2,
            cutmix_alpha: 1.0,
            cutmix_share: 0.25,
            ..MixConfig::default()
        };
        let side = 8;
        let mut cutmix = 0;
        for seed in 0..400 {
            let mut images = batch(8, side);
            let mixed = config
                .mix(&mut images, side, &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap();
            // CutMix leaves whole-number pixel values; mixup blends them.
            if images.iter().all(|v| v.fract() == 0.0) && mixed.weight < 1.0 {
                cutmix += 1;
            }
        }
        assert!(
            (60..=140).contains(&cutmix),
            "{cutmix} of 400 (100 expected)"
        );
    }
}
