//! The Winograd transforms compiled for AVX-512F: each padded row split into its even and
//! odd columns in registers (masked loads, one permutation per parity).

use crate::cpu::portable::winograd::{
    InputScratch, RowSplit, XI, inverse_transform_with, transform_input_with,
    transform_output_gradient_with,
};
use crate::cpu::shape::ConvShape;

/// [`transform_input_with`] compiled for AVX-512F, rows split by [`RegisterRows`].
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    transform_input_with::<RegisterRows>(plane, s, v, scratch)
}

/// Rows of at most 32 split columns in registers ([`split_row`]).
struct RegisterRows;

impl RowSplit for RegisterRows {
    #[inline(always)]
    fn split(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) -> bool {
        if even.len() > 32 || pad + row.len() > 64 {
            return false;
        }
        // SAFETY: RegisterRows is used only by `transform_input` above, which runs on CPUs
        // with AVX-512F (its callers check `avx512_enabled`).
        unsafe { split_row(row, pad, even, odd) };
        true
    }
}

/// One image row into its padded row's even and odd columns (`even`, `odd`: `width` each,
/// `width` <= 32), `pad` zeros on the left and zeros after the row, in registers: masked
/// loads of the padded row's four vectors, then one permutation for each parity and half.
#[target_feature(enable = "avx512f")]
fn split_row(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let width = even.len();
    assert!(width <= 32 && odd.len() == width && pad + row.len() <= 64);
    // Padded column c holds row[c - pad]: the lanes of each vector inside the row.
    let inside = crate::cpu::avx512::lanes_inside(pad, row.len());
    let start = row.as_ptr().wrapping_sub(pad);
    // SAFETY: only the lanes inside `row` are read.
    let load = |g: usize| unsafe { _mm512_maskz_loadu_ps(inside[g], start.wrapping_add(16 * g)) };
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    for half in 0..width.div_ceil(16) {
        let (a, b) = (load(2 * half), load(2 * half + 1));
        let n = (width - 16 * half).min(16);
        let lanes = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: `n` lanes are stored from 16 * half, within `even` and `odd`.
        unsafe {
            _mm512_mask_storeu_ps(
                even.as_mut_ptr().add(16 * half),
                lanes,
                _mm512_permutex2var_ps(a, evens, b),
            );
            _mm512_mask_storeu_ps(
                odd.as_mut_ptr().add(16 * half),
                lanes,
                _mm512_permutex2var_ps(a, odds, b),
            );
        }
    }
}

/// [`inverse_transform_with`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn inverse_transform(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    inverse_transform_with(m, s, bias, slope, out, scratch)
}

/// [`transform_output_gradient_with`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]; XI]) {
    transform_output_gradient_with(dy_t, s, dm)
}
