//! Pooling of one plane in AVX-512 registers: the stride-2 max and the 3x3 stride-2 average
//! (the seed CNN's pools), and the portable separable pass compiled for AVX-512F.

use crate::cpu::portable::pool::{PlaneScratch, pool_plane_values_for_k};
use crate::cpu::shape::{PoolKind, PoolShape};

/// Whether [`average_3x3_stride_2`] takes shape `s`: a 3x3 average at stride 2 whose
/// padded rows fit two vectors and whose output rows fit one (the seed CNN's pool2, pool3).
pub(crate) fn average_3x3_stride_2_fits(s: &PoolShape) -> bool {
    (s.kind, s.k, s.stride) == (PoolKind::Avg, 3, 2)
        && s.w + 2 * s.pad <= 32
        && s.out_w() <= 15
        && s.h + 2 * s.pad <= 64
}

/// Whether [`max_stride_2`] takes shape `s`: a max pool at stride 2 whose padded rows
/// fit four vectors and whose windows fit five columns (the seed CNN's pool1).
pub(crate) fn max_stride_2_fits(s: &PoolShape) -> bool {
    (s.kind, s.stride) == (PoolKind::Max, 2)
        && s.k <= 5
        && s.pad < s.k
        && s.w + 2 * s.pad <= 64
        && s.out_w() <= 32
}

/// The stride-2 max of one plane ([`max_stride_2_fits`]) if no window holds a NaN (else
/// false, and `out` is to be computed again by the NaN-aware pass), with the values of
/// [`max_plane_columns_first`](crate::cpu::portable::pool::max_plane_columns_first) (the same comparisons in the same order, so the same zero
/// signs), in registers: per output row, the column pass over the window's rows gives the
/// zero-padded line (four vectors, masked loads), then its even and odd lanes (two
/// permutations per pair of vectors), from which window tap `j` of every output is the even
/// (`j` even) or odd lanes shifted by `j / 2`.
#[target_feature(enable = "avx512f")]
pub(crate) fn max_stride_2(plane: &[f32], s: &PoolShape, out: &mut [f32]) -> bool {
    assert!(max_stride_2_fits(s));
    assert_eq!(plane.len(), s.h * s.w);
    assert_eq!(out.len(), s.out_h() * s.out_w());
    match s.k {
        5 => max_stride_2_for_k::<5>(plane, s, out),
        3 => max_stride_2_for_k::<3>(plane, s, out),
        _ => max_stride_2_for_k::<0>(plane, s, out),
    }
}

/// `max(acc, v)` as in the scalar passes: `v` where `v > acc`, else `acc`.
#[target_feature(enable = "avx512f")]
#[inline]
fn max_into(
    acc: std::arch::x86_64::__m512,
    v: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    std::arch::x86_64::_mm512_max_ps(v, acc)
}

/// Lanes `by..by + 16` of the pair (lo, hi), for `by` in 0..=2.
#[target_feature(enable = "avx512f")]
#[inline]
fn lanes_from(
    lo: std::arch::x86_64::__m512,
    hi: std::arch::x86_64::__m512,
    by: usize,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let (lo, hi) = (_mm512_castps_si512(lo), _mm512_castps_si512(hi));
    match by {
        0 => _mm512_castsi512_ps(lo),
        1 => _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(hi, lo)),
        _ => _mm512_castsi512_ps(_mm512_alignr_epi32::<2>(hi, lo)),
    }
}

/// [`max_stride_2`] for window size `K` (0: any, read from the shape), so that the
/// seed CNN's windows are unrolled.
#[target_feature(enable = "avx512f")]
#[inline]
fn max_stride_2_for_k<const K: usize>(plane: &[f32], s: &PoolShape, out: &mut [f32]) -> bool {
    use std::arch::x86_64::*;
    let k = if K == 0 { s.k } else { K };
    let (ow, w, pad) = (s.out_w(), s.w, s.pad);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let zero = _mm512_setzero_ps();
    // Line vector g holds padded columns 16 g .. 16 g + 16, image columns 16 g - pad + lane:
    // the lanes inside the image.
    let inside = super::lanes_inside(pad, w);
    let mut nan: __mmask16 = 0;
    for (oy, o) in out.chunks_exact_mut(ow).enumerate() {
        let top = oy * 2;
        let (y0, y1) = (
            top.saturating_sub(pad),
            (top + k).saturating_sub(pad).min(s.h),
        );
        let padded = y1.saturating_sub(y0) < k;
        let first = if padded { y0 } else { y0 + 1 };
        let mut line = [zero; 4];
        for (g, vector) in line.iter_mut().enumerate() {
            let mask = inside[g];
            if mask == 0 {
                continue;
            }
            let row = plane
                .as_ptr()
                .wrapping_offset((16 * g) as isize - pad as isize);
            // SAFETY: only the lanes `inside` the image are read, all within row y.
            let column = |y: usize| unsafe { _mm512_maskz_loadu_ps(mask, row.wrapping_add(y * w)) };
            let mut acc = zero;
            if !padded {
                acc = column(y0);
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(acc, acc);
            }
            for y in first..y1 {
                let v = column(y);
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                acc = max_into(acc, v);
            }
            *vector = acc;
        }
        let evens = [
            _mm512_permutex2var_ps(line[0], even, line[1]),
            _mm512_permutex2var_ps(line[2], even, line[3]),
            zero,
        ];
        let odds = [
            _mm512_permutex2var_ps(line[0], odd, line[1]),
            _mm512_permutex2var_ps(line[2], odd, line[3]),
            zero,
        ];
        for half in 0..ow.div_ceil(16) {
            let mut acc = evens[half];
            for j in 1..k {
                let source = if j % 2 == 0 { &evens } else { &odds };
                acc = max_into(acc, lanes_from(source[half], source[half + 1], j / 2));
            }
            let count = (ow - 16 * half).min(16);
            let lanes = ((1u32 << count) - 1) as __mmask16;
            // SAFETY: the masked lanes lie within this output row.
            unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr().add(16 * half), lanes, acc) };
        }
    }
    nan == 0
}

/// The 3x3, stride-2 average of one plane ([`average_3x3_stride_2_fits`]), with the values
/// and order of additions of [`pool_plane_values_with`](crate::cpu::portable::pool::pool_plane_values_with): each padded row's window sums
/// `(p[2x] + p[2x + 1]) + p[2x + 2]` come from two vectors by three lane permutations (the
/// even, odd and next even lanes), then each output row adds three row sums and divides by 9.
#[target_feature(enable = "avx512f")]
pub(crate) fn average_3x3_stride_2(plane: &[f32], s: &PoolShape, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(average_3x3_stride_2_fits(s));
    let (oh, ow, padded_h) = (s.out_h(), s.out_w(), s.h + 2 * s.pad);
    assert_eq!(plane.len(), s.h * s.w);
    assert_eq!(out.len(), oh * ow);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let next_even = _mm512_add_epi32(even, _mm512_set1_epi32(2));
    // Row sums of every padded row; the padding rows' stay zero.
    let mut sums = [_mm512_setzero_ps(); 64];
    let mut line = [0f32; 32];
    for (y, row) in plane.chunks_exact(s.w).enumerate() {
        line[s.pad..s.pad + s.w].copy_from_slice(row);
        // SAFETY: `line` holds 32 floats, two vectors.
        let (a, b) = unsafe {
            (
                _mm512_loadu_ps(line.as_ptr()),
                _mm512_loadu_ps(line.as_ptr().add(16)),
            )
        };
        let pairs = _mm512_add_ps(
            _mm512_permutex2var_ps(a, even, b),
            _mm512_permutex2var_ps(a, odd, b),
        );
        sums[y + s.pad] = _mm512_add_ps(pairs, _mm512_permutex2var_ps(a, next_even, b));
    }
    let nine = _mm512_set1_ps(9.0);
    let lanes: __mmask16 = (1u16 << ow) - 1;
    for (oy, o) in out.chunks_exact_mut(ow).enumerate() {
        let top = 2 * oy;
        debug_assert!(top + 2 < padded_h);
        let total = _mm512_add_ps(_mm512_add_ps(sums[top], sums[top + 1]), sums[top + 2]);
        // SAFETY: `o` holds `ow` floats, the lanes stored.
        unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr(), lanes, _mm512_div_ps(total, nine)) };
    }
}

/// `cpu::pool::pool_plane_values` compiled for AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) fn pool_plane_values(
    plane: &[f32],
    s: &PoolShape,
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    pool_plane_values_for_k(plane, s, out, scratch)
}

/// [`max_2x2_backward_plane`](crate::cpu::portable::pool::max_2x2_backward_plane) in
/// registers, the same bits: 16 windows at a time, the rows' even and odd lanes split by
/// permutations, the first maximum chosen by the same comparisons in the same order, the
/// gradients interleaved back into the two rows (masked stores: `g` is zeroed, cells of no
/// window are not touched).
#[target_feature(enable = "avx512f")]
pub(crate) fn max_2x2_backward_plane(plane: &[f32], go: &[f32], h: usize, w: usize, g: &mut [f32]) {
    use std::arch::x86_64::*;
    let (oh, ow) = (h / 2, w / 2);
    assert!(plane.len() == h * w && g.len() == h * w && go.len() == oh * ow);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    let zero = _mm512_setzero_ps();
    // `v` takes over from `best` where it is greater, or NaN where `best` is not.
    let beats = |v: __m512, best: __m512| -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best)
            | (_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
                & _mm512_cmp_ps_mask::<_CMP_ORD_Q>(best, best))
    };
    let mask = |n: usize| -> __mmask16 { if n >= 16 { 0xffff } else { (1u16 << n) - 1 } };
    for oy in 0..oh {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        for ox in (0..ow).step_by(16) {
            let count = (ow - ox).min(16);
            let (m_out, m_lo, m_hi) = (
                mask(count),
                mask(2 * count),
                mask(2 * count.saturating_sub(8)),
            );
            // SAFETY: the masks keep every load and store within rows `top` and `bottom`
            // (columns 2 ox .. 2 (ox + count) < w) and output row oy of `go`.
            unsafe {
                let row = |start: usize| {
                    let p = plane.as_ptr().add(start + 2 * ox);
                    let (lo, hi) = (
                        _mm512_maskz_loadu_ps(m_lo, p),
                        _mm512_maskz_loadu_ps(m_hi, p.add(16)),
                    );
                    (
                        _mm512_permutex2var_ps(lo, even, hi),
                        _mm512_permutex2var_ps(lo, odd, hi),
                    )
                };
                let (a, b) = row(top);
                let (c, d) = row(bottom);
                let mut best = a;
                let is_b = beats(b, best);
                best = _mm512_mask_mov_ps(best, is_b, b);
                let is_c = beats(c, best);
                best = _mm512_mask_mov_ps(best, is_c, c);
                let is_d = beats(d, best);
                let (is_c, is_b) = (is_c & !is_d, is_b & !is_c & !is_d);
                let is_a = !(is_b | is_c | is_d);
                let grad = _mm512_add_ps(
                    zero,
                    _mm512_maskz_loadu_ps(m_out, go.as_ptr().add(oy * ow + ox)),
                );
                let mut store = |start: usize, first: __mmask16, second: __mmask16| {
                    let (x, y) = (
                        _mm512_maskz_mov_ps(first, grad),
                        _mm512_maskz_mov_ps(second, grad),
                    );
                    let p = g.as_mut_ptr().add(start + 2 * ox);
                    _mm512_mask_storeu_ps(p, m_lo, _mm512_permutex2var_ps(x, low, y));
                    _mm512_mask_storeu_ps(p.add(16), m_hi, _mm512_permutex2var_ps(x, high, y));
                };
                store(top, is_a, is_b);
                store(bottom, is_c, is_d);
            }
        }
    }
}
