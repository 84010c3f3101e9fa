//! Winograd F(4x4, 3x3) convolution (Lavin & Gray, 2016): each 4x4 block of output comes
//! from a 6x6 block of input through 36 products instead of 144 multiply-adds, 4x fewer
//! multiplications in the gemms than im2col and 1.78x fewer than F(2x2, 3x3)
//! ([`winograd`](super::winograd)).
//!
//! The same layouts as F(2x2, 3x3), with 36 positions: `U` (36, cout, cin), `V` (36, cin,
//! slots), `M` (36, cout, slots), tiles in rows of tile columns + 1 slots. Its transforms
//! have larger coefficients (Aᵀ up to 8, Bᵀ up to 5, G down to 1/24), so it rounds more:
//! measured in f32 against a float64 direct convolution, about 4e-6 of the largest output at
//! 32 channels on 48 x 48 and 1.3e-5 at 256 channels on 12 x 12, against 2.6e-7 and 7.6e-7
//! for F(2x2, 3x3). The batch paths use it on large planes only, where networks have few
//! channels ([`winograd_conv`](super::winograd_conv)).
//! The transforms' loops are in [`portable::winograd4`](super::portable::winograd4), compiled
//! again for AVX-512 in [`avx512::winograd4`](super::avx512::winograd4) and for AVX2 in
//! [`avx2::winograd4`](super::avx2::winograd4). The weight
//! gradient's transposed transforms (`A dy Aᵀ`, `Gᵀ dU G`) are here too.

pub(crate) use super::portable::winograd4::{InputScratch, XI, slots};
use super::portable::winograd4::{
    inverse_transform_with, transform_input_with, transform_output_gradient_with,
};
use super::shape::ConvShape;

/// G of F(4, 3) on three taps: g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6,
/// (g0 + 2 g1 + 4 g2) / 24, (g0 - 2 g1 + 4 g2) / 24, g2.
fn weight_transform(g0: f32, g1: f32, g2: f32) -> [f32; 6] {
    [
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        (g0 + 2.0 * g1 + 4.0 * g2) / 24.0,
        (g0 - 2.0 * g1 + 4.0 * g2) / 24.0,
        g2,
    ]
}

/// `G f Gᵀ` of one 3x3 filter `f` (row-major): its 36 values, position xi = 6 * row + column.
fn transform_filter(f: &[f32]) -> [f32; XI] {
    let columns: [[f32; 6]; 3] =
        std::array::from_fn(|c| weight_transform(f[c], f[3 + c], f[6 + c]));
    let mut u = [0f32; XI];
    for r in 0..6 {
        let row = weight_transform(columns[0][r], columns[1][r], columns[2][r]);
        u[6 * r..6 * r + 6].copy_from_slice(&row);
    }
    u
}

/// Gᵀ of F(4, 3) on six values: the gradient of three taps from that of
/// [`weight_transform`]'s six outputs.
fn weight_transform_gradient(u: [f32; 6]) -> [f32; 3] {
    let [u0, u1, u2, u3, u4, u5] = u;
    [
        u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0,
        (u2 - u1) / 6.0 + (u3 - u4) / 12.0,
        (u3 + u4 - u1 - u2) / 6.0 + u5,
    ]
}

/// `Gᵀ du G`: the gradient of a 3x3 filter (row-major) from the gradient `du` of its
/// transform ([`transform_filter`]'s 36 values).
pub(crate) fn filter_gradient(du: &[f32; XI]) -> [f32; 9] {
    // Gᵀ du down each of the 6 columns, then (Gᵀ du) G along each of the 3 rows.
    let columns: [[f32; 3]; 6] =
        std::array::from_fn(|c| weight_transform_gradient(std::array::from_fn(|r| du[6 * r + c])));
    let mut g = [0f32; 9];
    for r in 0..3 {
        let row = weight_transform_gradient(std::array::from_fn(|c| columns[c][r]));
        g[3 * r..3 * r + 3].copy_from_slice(&row);
    }
    g
}

/// `U` for filters `g` (co, cin, 3, 3) of some output channels, channel by channel: `u` is
/// (co, 36, cin).
pub(crate) fn transform_weights(g: &[f32], cin: usize, u: &mut [f32]) {
    assert_eq!(g.len() * XI, u.len() * 9);
    for (filters, u) in g.chunks(cin * 9).zip(u.chunks_mut(XI * cin)) {
        for (ci, f) in filters.chunks(9).enumerate() {
            for (xi, v) in transform_filter(f).into_iter().enumerate() {
                u[xi * cin + ci] = v;
            }
        }
    }
}

/// `V` of one input channel `plane` (h, w): `v[xi]` (36 rows) receives position xi's row of
/// slots, zero padding included.
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]],
    scratch: &mut InputScratch,
) {
    simd_return!(winograd4::transform_input(plane, s, v, scratch));
    transform_input_with(plane, s, v, scratch)
}

/// One output channel from its products `m` (36 rows of slots): `Aᵀ m A`, plus `bias`, then
/// PReLU with `slope`, into `out` (oh, ow).
pub(crate) fn inverse_transform(
    m: &[&[f32]],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    simd_return!(winograd4::inverse_transform(
        m, s, bias, slope, out, scratch
    ));
    inverse_transform_with(m, s, bias, slope, out, scratch)
}

/// The gradient of the products of one image, channels last: `dm[xi]` (slots, channels) =
/// `A dy Aᵀ` of each tile of `dy_t` (oh * ow, channels), the gradient of the convolution's
/// output (the transpose of [`inverse_transform`]); zeros in each tile row's extra slot.
pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]]) {
    simd_return!(winograd4::transform_output_gradient(dy_t, s, dm));
    transform_output_gradient_with(dy_t, s, dm)
}
