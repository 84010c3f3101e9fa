//! The Winograd transforms compiled for AVX-512F: each padded row split into its even and
//! odd columns in registers (masked loads, one permutation per parity).

use crate::cpu::portable::winograd::{
    InputScratch, RowSplit, XI, inverse_transform_with, transform_input_with,
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

/// Rows of at most 16 split columns in registers ([`split_row`]).
struct RegisterRows;

impl RowSplit for RegisterRows {
    #[inline(always)]
    fn split(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) -> bool {
        if even.len() > 16 || pad > 16 {
            return false;
        }
        // SAFETY: RegisterRows is used only by `transform_input` above, which runs on CPUs
        // with AVX-512F (its callers check `avx512_enabled`).
        unsafe { split_row(row, pad, even, odd) };
        true
    }
}

/// One image row into its padded row's even and odd columns (`even`, `odd`: `width` each,
/// `width` <= 16), `pad` zeros on the left and zeros after the row, in registers: masked
/// loads of the padded row's two vectors, then one permutation for each parity.
#[target_feature(enable = "avx512f")]
fn split_row(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let width = even.len();
    assert!(width <= 16 && odd.len() == width && pad <= 16 && pad + row.len() <= 32);
    // Padded column c holds row[c - pad]: the lanes of each vector inside the row.
    let inside = crate::cpu::avx512::lanes_inside(pad, row.len());
    let start = row.as_ptr().wrapping_sub(pad);
    // SAFETY: only the lanes inside `row` are read.
    let (a, b) = unsafe {
        (
            _mm512_maskz_loadu_ps(inside[0], start),
            _mm512_maskz_loadu_ps(inside[1], start.wrapping_add(16)),
        )
    };
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    let lanes = ((1u32 << width) - 1) as __mmask16;
    // SAFETY: `width` lanes are stored, the length of `even` and `odd`.
    unsafe {
        _mm512_mask_storeu_ps(
            even.as_mut_ptr(),
            lanes,
            _mm512_permutex2var_ps(a, evens, b),
        );
        _mm512_mask_storeu_ps(odd.as_mut_ptr(), lanes, _mm512_permutex2var_ps(a, odds, b));
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
