//! The Winograd F(4x4, 3x3) transforms in AVX-512F registers, 16 slots (tiles) at a time:
//! the input transform from the plane split by residue, both combinations in registers; the
//! inverse transform from the 36 product vectors to four interleaved output rows. The same
//! sums in the same order as the portable loops, so the same bits. The weight gradient's
//! output transform is the portable loop compiled for AVX-512F.

use std::arch::x86_64::*;

use crate::cpu::portable::winograd4::{
    InputScratch, QuadSplit, XI, slots, split_residues, tiles, transform_output_gradient_with,
};
use crate::cpu::shape::ConvShape;

/// Bᵀ of F(4, 3) on six vectors, as the portable `input_rows` computes it.
#[target_feature(enable = "avx512f")]
#[inline]
fn input_combination(d: [__m512; 6]) -> [__m512; 6] {
    let [a0, a1, a2, a3, a4, a5] = d;
    let (two, four, five) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
    );
    let (mul, add, sub) = (
        |a, b| _mm512_mul_ps(a, b),
        |a, b| _mm512_add_ps(a, b),
        |a, b| _mm512_sub_ps(a, b),
    );
    let minus_four = _mm512_set1_ps(-4.0);
    let minus_two = _mm512_set1_ps(-2.0);
    [
        add(sub(mul(four, a0), mul(five, a2)), a4),
        add(mul(minus_four, add(a1, a2)), add(a3, a4)),
        add(mul(four, sub(a1, a2)), sub(a4, a3)),
        add(mul(minus_two, sub(a1, a3)), sub(a4, a2)),
        add(mul(two, sub(a1, a3)), sub(a4, a2)),
        add(sub(mul(four, a1), mul(five, a3)), a5),
    ]
}

/// The portable `transform_input_with`'s values, 16 slots at a time in registers.
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]],
    scratch: &mut InputScratch,
) {
    let split = split_residues::<RegisterQuads>(plane, s, scratch);
    let len = split.len;
    assert!(v.len() == XI && v.iter().all(|row| row.len() == len));
    let cells: [[&[f32]; 6]; 6] =
        std::array::from_fn(|i| std::array::from_fn(|j| split.cell(i, j)));
    for p in (0..len).step_by(16) {
        let n = (len - p).min(16);
        let lanes = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: n lanes from slot p of a row of `len` (each cell is `len` long).
        let at = |i: usize, j: usize| unsafe {
            _mm512_maskz_loadu_ps(lanes, cells[i][j].as_ptr().add(p))
        };
        // t[j][k]: Bᵀ d down column j.
        let t: [[__m512; 6]; 6] =
            std::array::from_fn(|j| input_combination(std::array::from_fn(|i| at(i, j))));
        for k in 0..6 {
            let row = input_combination(std::array::from_fn(|j| t[j][k]));
            for (l, value) in row.into_iter().enumerate() {
                // SAFETY: n lanes from slot p of a row of `len` slots (asserted).
                unsafe { _mm512_mask_storeu_ps(v[6 * k + l].as_mut_ptr().add(p), lanes, value) };
            }
        }
    }
}

/// Rows of at most 16 split columns per residue in registers ([`split_row`]).
struct RegisterQuads;

impl QuadSplit for RegisterQuads {
    #[inline(always)]
    fn split(row: &[f32], pad: usize, residues: [&mut [f32]; 4]) -> bool {
        if residues[0].len() > 16 || pad + row.len() > 64 {
            return false;
        }
        // SAFETY: RegisterQuads is used only by `transform_input` above, which runs on CPUs
        // with AVX-512F (its callers check `kernels`).
        unsafe { split_row(row, pad, residues) };
        true
    }
}

/// One image row into its padded row's four column residues (each at most 16 long), `pad`
/// zeros on the left and zeros after the row, in registers: masked loads of the padded
/// row's four vectors, then for each residue one permutation of each half and a blend.
#[target_feature(enable = "avx512f")]
fn split_row(row: &[f32], pad: usize, residues: [&mut [f32]; 4]) {
    let width = residues[0].len();
    assert!(width <= 16 && residues.iter().all(|r| r.len() == width));
    assert!(pad + row.len() <= 64);
    let inside = crate::cpu::avx512::lanes_inside(pad, row.len());
    let start = row.as_ptr().wrapping_sub(pad);
    // SAFETY: only the lanes inside `row` are read.
    let load = |g: usize| unsafe { _mm512_maskz_loadu_ps(inside[g], start.wrapping_add(16 * g)) };
    let (a, b, c, d) = (load(0), load(1), load(2), load(3));
    let lanes = ((1u32 << width) - 1) as __mmask16;
    let quarter = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    for (r, out) in residues.into_iter().enumerate() {
        // Lane i: padded column 4i + r, from (a, b) for i < 8 and (c, d) after.
        let index = _mm512_add_epi32(quarter, _mm512_set1_epi32(r as i32));
        let low = _mm512_permutex2var_ps(a, index, b);
        let high = _mm512_permutex2var_ps(c, index, d);
        let value = _mm512_mask_blend_ps(0xFF00, low, high);
        // SAFETY: `width` lanes within `out`.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), lanes, value) };
    }
}

/// Aᵀ of F(4, 3) on six vectors, as the portable `output_rows` computes it.
#[target_feature(enable = "avx512f")]
#[inline]
fn output_combination(m: [__m512; 6]) -> [__m512; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (add, sub, mul) = (
        |a, b| _mm512_add_ps(a, b),
        |a, b| _mm512_sub_ps(a, b),
        |a, b| _mm512_mul_ps(a, b),
    );
    let (sum12, diff12) = (add(m1, m2), sub(m1, m2));
    let (sum34, diff34) = (add(m3, m4), sub(m3, m4));
    let (two, four, eight) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(8.0),
    );
    [
        add(add(m0, sum12), sum34),
        add(diff12, mul(two, diff34)),
        add(sum12, mul(four, sum34)),
        add(add(diff12, mul(eight, diff34)), m5),
    ]
}

/// The portable `inverse_transform_with`'s values, 16 tiles of a tile row at a time in
/// registers: the 36 product vectors loaded once, transformed, and each output row's four
/// columns per tile interleaved by permutation and stored.
#[target_feature(enable = "avx512f")]
pub(crate) fn inverse_transform(
    m: &[&[f32]],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    _scratch: &mut Vec<f32>,
) {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow) = (s.out_h(), s.out_w());
    assert!(m.len() == XI && m.iter().all(|row| row.len() >= len));
    assert_eq!(out.len(), oh * ow);
    let (bias_v, slope_v) = (_mm512_set1_ps(bias), _mm512_set1_ps(slope));
    let finish = |v: __m512| {
        let v = _mm512_add_ps(v, bias_v);
        let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps());
        _mm512_mask_blend_ps(above, _mm512_mul_ps(v, slope_v), v)
    };
    // Lanes of (a, b) interleaved as 32-bit values, then as 64-bit pairs.
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    let low64 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    let high64 = _mm512_add_epi64(low64, _mm512_set1_epi64(4));
    for ty in 0..th {
        for tx0 in (0..tw).step_by(16) {
            let n = (tw - tx0).min(16);
            let lanes = ((1u32 << n) - 1) as __mmask16;
            let slot = ty * width + tx0;
            // SAFETY: the n lanes from `slot` lie within the row's tiles, inside `len`.
            let at = |xi: usize| unsafe { _mm512_maskz_loadu_ps(lanes, m[xi].as_ptr().add(slot)) };
            // Aᵀ m down each column j, then sums[r][j].
            let down: [[__m512; 4]; 6] =
                std::array::from_fn(|j| output_combination(std::array::from_fn(|i| at(6 * i + j))));
            let sums: [[__m512; 6]; 4] =
                std::array::from_fn(|r| std::array::from_fn(|j| down[j][r]));
            // Output columns 4tx0 .. 4tx0 + 4n that exist.
            let columns = (4 * n).min(ow - 4 * tx0);
            for (r, sums) in sums.into_iter().enumerate() {
                let oy = 4 * ty + r;
                if oy >= oh {
                    break;
                }
                let [c0, c1, c2, c3] = output_combination(sums).map(finish);
                // (c0, c1) and (c2, c3) interleaved, then those pairs interleaved.
                let pairs = |a: __m512, b: __m512, index: __m512i| {
                    _mm512_castps_pd(_mm512_permutex2var_ps(a, index, b))
                };
                let (e_low, e_high) = (pairs(c0, c1, low), pairs(c0, c1, high));
                let (f_low, f_high) = (pairs(c2, c3, low), pairs(c2, c3, high));
                let quads = [
                    _mm512_permutex2var_pd(e_low, low64, f_low),
                    _mm512_permutex2var_pd(e_low, high64, f_low),
                    _mm512_permutex2var_pd(e_high, low64, f_high),
                    _mm512_permutex2var_pd(e_high, high64, f_high),
                ];
                let row = out[oy * ow + 4 * tx0..].as_mut_ptr();
                for (g, quad) in quads.into_iter().enumerate() {
                    let count = columns.saturating_sub(16 * g).min(16);
                    if count == 0 {
                        break;
                    }
                    let mask = ((1u32 << count) - 1) as __mmask16;
                    // SAFETY: `count` values from output column 4tx0 + 16g lie within row oy.
                    unsafe { _mm512_mask_storeu_ps(row.add(16 * g), mask, _mm512_castpd_ps(quad)) };
                }
            }
        }
    }
}

/// The portable `transform_output_gradient_with` compiled for AVX-512F (whole channel
/// vectors).
#[target_feature(enable = "avx512f")]
pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]]) {
    transform_output_gradient_with(dy_t, s, dm)
}
