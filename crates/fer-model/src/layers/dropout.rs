//! Inverted dropout with masks drawn from a seeded stream (reproducible, unlike a global
//! RNG): one definition for the candle forward and the fused CPU step.

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The inverted-dropout mask of `len` values for probability `p` (kept values scaled by
/// `1 / (1 - p)`), drawn from `rng`; `None` without a stream (evaluation) or when `p <= 0`.
pub(crate) fn mask(len: usize, p: f32, rng: Option<&mut ChaCha8Rng>) -> Option<Vec<f32>> {
    let rng = rng?;
    if p <= 0.0 {
        return None;
    }
    let keep = 1.0 - p;
    Some(
        (0..len)
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect(),
    )
}

/// Inverted dropout of `x` with probability `p` and a mask from `rng` (no stream: `x` as it
/// is).
pub(crate) fn dropout(x: &Tensor, p: f32, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
    match mask(x.elem_count(), p, rng) {
        Some(mask) => x * Tensor::from_vec(mask, x.shape(), x.device())?,
        None => Ok(x.clone()),
    }
}
