//! The Winograd transforms compiled for AVX-512F: the input transform with each padded row
//! split into its even and odd columns in registers (masked loads, one permutation per
//! parity) and then combined in registers, and the inverse transform in registers, 16 tiles
//! at a time.

use crate::cpu::portable::winograd::{
    InputScratch, RowSplit, SplitPlane, XI, slots, split_plane, tiles,
    transform_output_gradient_with,
};
use crate::cpu::shape::ConvShape;

/// [`transform_input_with`](crate::cpu::portable::winograd::transform_input_with)'s values: rows split by [`RegisterRows`], then both combinations
/// (down the columns, along the rows) in registers, 16 slots at a time, the column
/// combinations of slot p + 1 computed again rather than stored (the same operations on the
/// same values, so the same bits).
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    use std::arch::x86_64::*;
    let SplitPlane {
        q,
        q_len,
        width,
        len,
    } = split_plane::<RegisterRows>(plane, s, scratch.split_buffer());
    assert!(v.iter().all(|row| row.len() == len));
    // The largest slot read is (2 pr + pc) * q_len + width + len, inside q.
    assert!(q.len() == 4 * q_len && width + len < q_len);
    for p in (0..len).step_by(16) {
        let n = (len - p).min(16);
        let lanes = ((1u32 << n) - 1) as __mmask16;
        // Slots p.. of q[pr][pc] shifted by `shift`.
        // SAFETY: n lanes from (2 pr + pc) * q_len + shift + p, with shift <= width + 1 and
        // p + n <= len: at most (2 pr + pc) * q_len + width + len, inside q (asserted).
        let at = |pr: usize, pc: usize, shift: usize| unsafe {
            _mm512_maskz_loadu_ps(lanes, q.as_ptr().add((2 * pr + pc) * q_len + shift + p))
        };
        // Bᵀ d down the columns, for column parity pc at slots p (one = 0) and p + 1 (one = 1):
        // d0 - d2, d1 + d2, d2 - d1, d1 - d3.
        let columns = |pc: usize, one: usize| {
            let (d0, d1) = (at(0, pc, one), at(1, pc, one));
            let (d2, d3) = (at(0, pc, width + one), at(1, pc, width + one));
            [
                _mm512_sub_ps(d0, d2),
                _mm512_add_ps(d1, d2),
                _mm512_sub_ps(d2, d1),
                _mm512_sub_ps(d1, d3),
            ]
        };
        let (even0, odd0, even1, odd1) =
            (columns(0, 0), columns(1, 0), columns(0, 1), columns(1, 1));
        for i in 0..4 {
            // Along the rows, of (e0, o0, e1, o1): e0 - e1, o0 + e1, e1 - o0, o0 - o1.
            let (e0, o0, e1, o1) = (even0[i], odd0[i], even1[i], odd1[i]);
            let row = [
                _mm512_sub_ps(e0, e1),
                _mm512_add_ps(o0, e1),
                _mm512_sub_ps(e1, o0),
                _mm512_sub_ps(o0, o1),
            ];
            for (j, value) in row.into_iter().enumerate() {
                // SAFETY: n lanes from slot p of a row of `len` slots (asserted).
                unsafe { _mm512_mask_storeu_ps(v[4 * i + j].as_mut_ptr().add(p), lanes, value) };
            }
        }
    }
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
        // with AVX-512F (its callers check `kernels`).
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

/// [`inverse_transform_with`](crate::cpu::portable::winograd::inverse_transform_with)'s values, in registers: for each run of up to 16 tiles of a
/// tile row, the 16 product vectors are loaded once, transformed (the same sums in the same
/// order), and the two output rows' values interleaved by permutation and stored, with no
/// intermediate rows in memory.
#[target_feature(enable = "avx512f")]
pub(crate) fn inverse_transform(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    _scratch: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow) = (s.out_h(), s.out_w());
    assert!(m.iter().all(|row| row.len() >= len));
    assert_eq!(out.len(), oh * ow);
    let (bias_v, slope_v) = (_mm512_set1_ps(bias), _mm512_set1_ps(slope));
    // Lanes 0..16 of (left, right) interleaved: left[0], right[0], left[1], ...
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    // `v + bias`, then PReLU: v where it is above zero, else slope * v (NaN stays NaN).
    let finish = |v: __m512| {
        let v = _mm512_add_ps(v, bias_v);
        let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps());
        _mm512_mask_blend_ps(above, _mm512_mul_ps(v, slope_v), v)
    };
    for ty in 0..th {
        for tx0 in (0..tw).step_by(16) {
            let n = (tw - tx0).min(16);
            let lanes = ((1u32 << n) - 1) as __mmask16;
            let slot = ty * width + tx0;
            // SAFETY: the n lanes from `slot` lie within the row's tiles, inside `len`.
            let at = |xi: usize| unsafe { _mm512_maskz_loadu_ps(lanes, m[xi].as_ptr().add(slot)) };
            // Aᵀ m down the columns: (m0 + m1) + m2 and (m1 - m2) - m3 of column j.
            let mut first = [_mm512_setzero_ps(); 4];
            let mut second = [_mm512_setzero_ps(); 4];
            for j in 0..4 {
                let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                first[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                second[j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            // Output columns 2tx0 .. 2tx0 + 2n that exist (an odd width drops the last).
            let columns = (2 * n).min(ow - 2 * tx0);
            let (mask_low, mask_high) = (
                ((1u32 << columns.min(16)) - 1) as __mmask16,
                ((1u32 << columns.saturating_sub(16)) - 1) as __mmask16,
            );
            for (r, sums) in [first, second].iter().enumerate() {
                let oy = 2 * ty + r;
                if oy >= oh {
                    break;
                }
                let [s0, s1, s2, s3] = *sums;
                let left = finish(_mm512_add_ps(_mm512_add_ps(s0, s1), s2));
                let right = finish(_mm512_sub_ps(_mm512_sub_ps(s1, s2), s3));
                let row = out[oy * ow + 2 * tx0..].as_mut_ptr();
                // SAFETY: `columns` values from output column 2tx0 lie within row oy.
                unsafe {
                    _mm512_mask_storeu_ps(row, mask_low, _mm512_permutex2var_ps(left, low, right));
                    _mm512_mask_storeu_ps(
                        row.wrapping_add(16),
                        mask_high,
                        _mm512_permutex2var_ps(left, high, right),
                    );
                }
            }
        }
    }
}

/// [`transform_output_gradient_with`] compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]; XI]) {
    transform_output_gradient_with(dy_t, s, dm)
}
