//! Batch norm's per-plane reductions compiled for AVX-512F: the portable lane loops, 16
//! lanes in one register (the same operations, so the same bits).

use crate::cpu::portable::batch_norm as portable;

/// [`portable::plane_sum`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn plane_sum(plane: &[f32]) -> f32 {
    portable::plane_sum(plane)
}

/// [`portable::plane_squared_deviations`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn plane_squared_deviations(plane: &[f32], mean: f32) -> f32 {
    portable::plane_squared_deviations(plane, mean)
}

/// [`portable::plane_relu_grad_sums`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn plane_relu_grad_sums(
    x: &[f32],
    dy: &[f32],
    statistics: [f32; 2],
    affine: [f32; 2],
) -> (f32, f32) {
    portable::plane_relu_grad_sums(x, dy, statistics, affine)
}
