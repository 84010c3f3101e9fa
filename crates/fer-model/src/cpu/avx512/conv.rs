//! The direct single-plane convolution compiled for AVX-512F with fused multiply-adds.

use crate::cpu::portable;
use crate::cpu::shape::ConvShape;

#[target_feature(enable = "avx512f,fma")]
/// `cpu::conv::conv_single_plane` compiled for AVX-512F with fused multiply-adds.
pub(crate) fn conv_single_plane(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    c0: usize,
    out: &mut [f32],
) {
    portable::conv::conv_single_plane_with::<true>(x, weight, bias, alpha, s, c0, out)
}
