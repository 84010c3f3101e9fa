//! Winograd F(2x2, 3x3) convolution for inference (Lavin & Gray, 2016): each 2x2 block of
//! output comes from a 4x4 block of input through 16 products instead of 36 multiply-adds,
//! so a 3x3 convolution does 2.25x fewer multiplications in its gemm.
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A` per tile, as a cross-correlation (what CNNs call
//! convolution). Layouts: transformed weights `U` (16, cout, cin), transformed input `V`
//! (16, cin, slots), products `M` (16, cout, slots), so that for each of the 16 positions ξ
//! `M[ξ] = U[ξ] · V[ξ]` is one gemm of contiguous matrices. Tiles sit in
//! `slots` = tile rows x (tile columns + 1): the extra slot of each row is computed and
//! dropped, which lets both transforms run on whole contiguous rows of every tile (shifts of
//! one slot or one row), so they vectorise. Sums are reassociated by the transforms, so
//! results differ from im2col's in the last bits (relative error about 1e-6); they do not
//! depend on how the work is split. The transforms' loops are in
//! [`portable::winograd`](super::portable::winograd), compiled again for AVX-512 in
//! [`avx512::winograd`](super::avx512::winograd) and for AVX2 in [`avx2::winograd`](super::avx2::winograd).

pub(crate) use super::portable::winograd::{InputScratch, XI, slots};
use super::portable::winograd::{
    PortableRows, inverse_transform_with, transform_input_with, transform_output_gradient_with,
};
use super::shape::ConvShape;

/// G of F(2, 3) on three taps: g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
fn weight_transform(g0: f32, g1: f32, g2: f32) -> [f32; 4] {
    [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
}

/// `G f Gᵀ` of one 3x3 filter `f` (row-major): its 16 values, position xi = 4 * row + column.
fn transform_filter(f: &[f32]) -> [f32; XI] {
    // G f down each of the 3 columns, then (G f) Gᵀ along each of the 4 rows.
    let columns: [[f32; 4]; 3] =
        std::array::from_fn(|c| weight_transform(f[c], f[3 + c], f[6 + c]));
    let mut u = [0f32; XI];
    for r in 0..4 {
        let row = weight_transform(columns[0][r], columns[1][r], columns[2][r]);
        u[4 * r..4 * r + 4].copy_from_slice(&row);
    }
    u
}

/// Gᵀ of F(2, 3) on four values: the gradient of three taps from that of [`weight_transform`]'s
/// four outputs, u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3.
fn weight_transform_gradient(u0: f32, u1: f32, u2: f32, u3: f32) -> [f32; 3] {
    let (sum, difference) = ((u1 + u2) * 0.5, (u1 - u2) * 0.5);
    [u0 + sum, difference, sum + u3]
}

/// `Gᵀ du G`: the gradient of a 3x3 filter (row-major) from the gradient `du` of its
/// transform ([`transform_filter`]'s 16 values).
pub(crate) fn filter_gradient(du: &[f32; XI]) -> [f32; 9] {
    // Gᵀ du down each of the 4 columns, then (Gᵀ du) G along each of the 3 rows.
    let columns: [[f32; 3]; 4] =
        std::array::from_fn(|c| weight_transform_gradient(du[c], du[4 + c], du[8 + c], du[12 + c]));
    let mut g = [0f32; 9];
    for r in 0..3 {
        let row =
            weight_transform_gradient(columns[0][r], columns[1][r], columns[2][r], columns[3][r]);
        g[3 * r..3 * r + 3].copy_from_slice(&row);
    }
    g
}

/// `U` for filters `g` (co, cin, 3, 3) of some output channels, channel by channel: `u` is
/// (co, 16, cin); [`Tiling::positions_first`](super::tiling::Tiling::positions_first)
/// gives the (16, cout, cin) layout of the products.
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

/// `V` of one input channel `plane` (h, w): `v[xi]` receives position xi's row of slots, zero
/// padding included (the rows of the (16, cin, slots) layout that the products read).
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    simd_return!(winograd::transform_input(plane, s, v, scratch));
    transform_input_with::<PortableRows>(plane, s, v, scratch)
}

/// One output channel from its products `m` (16 rows of slots): `Aᵀ m A`, plus `bias`, then
/// PReLU with `slope`, into `out` (oh, ow). `scratch` holds 12 slot rows.
pub(crate) fn inverse_transform(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    simd_return!(winograd::inverse_transform(m, s, bias, slope, out, scratch));
    inverse_transform_with(m, s, bias, slope, out, scratch)
}

/// The gradient of the products of one image, channels last: `dm[xi]` (slots, channels) =
/// `A dy Aᵀ` of each tile of `dy_t` (oh * ow, channels), the gradient of the convolution's
/// output (the transpose of [`inverse_transform`]); zeros in each tile row's extra slot.
pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]; XI]) {
    simd_return!(winograd::transform_output_gradient(dy_t, s, dm));
    transform_output_gradient_with(dy_t, s, dm)
}
