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
//! depend on how the work is split.

use gemm::Parallelism;

use crate::kernels::{ConvShape, matmul};

/// Positions of the 4x4 transformed tile.
pub(crate) const XI: usize = 16;

/// Tiles of 2x2 output: (rows, columns).
pub(crate) fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.out_h().div_ceil(2), s.out_w().div_ceil(2))
}

/// G of F(2, 3) on three taps: g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
fn weight_transform(g0: f32, g1: f32, g2: f32) -> [f32; 4] {
    [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
}

/// `U` for filters `g` (co, cin, 3, 3) of some output channels, channel by channel: `u` is
/// (co, 16, cin); [`positions_first`] gives the (16, cout, cin) layout of the products.
pub(crate) fn transform_weights(g: &[f32], cin: usize, u: &mut [f32]) {
    assert_eq!(g.len() * XI, u.len() * 9);
    for (filters, u) in g.chunks(cin * 9).zip(u.chunks_mut(XI * cin)) {
        for (ci, f) in filters.chunks(9).enumerate() {
            // G g down each of the 3 columns, then (G g) Gᵀ along each of the 4 rows.
            let columns: [[f32; 4]; 3] =
                std::array::from_fn(|c| weight_transform(f[c], f[3 + c], f[6 + c]));
            for r in 0..4 {
                let row = weight_transform(columns[0][r], columns[1][r], columns[2][r]);
                for (c, v) in row.into_iter().enumerate() {
                    u[(4 * r + c) * cin + ci] = v;
                }
            }
        }
    }
}

/// Slots of the transformed layouts: tile rows x (tile columns + 1).
pub(crate) fn slots(s: &ConvShape) -> usize {
    let (th, tw) = tiles(s);
    th * (tw + 1)
}

/// Writes `block` ((rows, 16, cin), from [`transform_weights`], for output channels from `co`)
/// into `dst(xi)`: rows `co..co + rows` of position xi's matrix in the (16, cout, cin) layout.
pub(crate) fn positions_first<'a>(
    block: &[f32],
    cin: usize,
    mut dst: impl FnMut(usize) -> &'a mut [f32],
) {
    let rows = block.len() / (XI * cin);
    for xi in 0..XI {
        let out = dst(xi);
        assert_eq!(out.len(), rows * cin);
        for (r, row) in out.chunks_mut(cin).enumerate() {
            row.copy_from_slice(&block[(r * XI + xi) * cin..][..cin]);
        }
    }
}

/// Reused buffers of [`transform_input`].
#[derive(Default)]
pub(crate) struct InputScratch {
    /// The zero-padded plane split by (row, column) parity, then the column combinations.
    buffer: Vec<f32>,
}

/// `out[i] = a[i] + b[i]` or `a[i] - b[i]` over whole slices (vectorises).
#[inline(always)]
fn combine(out: &mut [f32], a: &[f32], b: &[f32], subtract: bool) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = if subtract { x - y } else { x + y };
    }
}

/// Bᵀ of F(2, 3) on four rows x: x0 - x2, x1 + x2, x2 - x1, x1 - x3, as the operands of
/// [`combine`] (a, b, subtract).
fn input_transform([x0, x1, x2, x3]: [&[f32]; 4]) -> [(&[f32], &[f32], bool); 4] {
    [
        (x0, x2, true),
        (x1, x2, false),
        (x2, x1, true),
        (x1, x3, true),
    ]
}

/// `V` of one input channel `plane` (h, w): `v[xi]` receives position xi's row of slots, zero
/// padding included (the rows of the (16, cin, slots) layout that the products read).
pub(crate) fn transform_input(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { transform_input_avx512(plane, s, v, scratch) };
    }
    transform_input_any::<false>(plane, s, v, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_input_avx512(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    transform_input_any::<true>(plane, s, v, scratch)
}

/// One image row into its padded row's even and odd columns (`even`, `odd`: `width` each,
/// `width` <= 16), `pad` zeros on the left and zeros after the row, in registers: masked
/// loads of the padded row's two vectors, then one permutation for each parity.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn split_row_avx512(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let width = even.len();
    assert!(width <= 16 && odd.len() == width && pad <= 16 && pad + row.len() <= 32);
    // Padded column c holds row[c - pad]: the lanes of each vector inside the row.
    let inside = crate::kernels::lanes_inside(pad, row.len());
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

/// `AVX512`: compiled for AVX-512F (the rows split in registers); only
/// [`transform_input_avx512`] passes true.
#[inline(always)]
fn transform_input_any<const AVX512: bool>(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    assert_eq!(plane.len(), s.h * s.w);
    assert!(v.iter().all(|row| row.len() == len));
    // Tile (ty, tx) reads padded rows 2ty .. 2ty + 4 and columns 2tx .. 2tx + 4. Split by
    // parity, padded cell (2a + pr, 2b + pc) goes to q[pr][pc] at a * width + b: cell (i, j)
    // of every tile is then q[i % 2][j % 2] shifted by (i / 2) rows and (j / 2) slots.
    let q_len = (th + 1) * width + 1;
    scratch.buffer.resize(4 * q_len + 8 * (len + 1), 0.0);
    let (q, t) = scratch.buffer.split_at_mut(4 * q_len);
    // `q` keeps zeros where no row is written (the padding); `t` is written whole below.
    q.fill(0.0);
    // One padded row (2 * width columns), split into even and odd columns pair by pair (a
    // stride-2 pattern that vectorises).
    let mut padded = [0f32; 64];
    let padded_len = 2 * width;
    for y in 0..s.h.min(2 * th + 2 - s.pad) {
        let row = y + s.pad;
        let n = s.w.min(padded_len - s.pad);
        #[cfg(target_arch = "x86_64")]
        if AVX512 && width <= 16 && s.pad <= 16 {
            let base = (row / 2) * width;
            let (even, odd) = q[2 * (row % 2) * q_len..].split_at_mut(q_len);
            // SAFETY: compiled for AVX-512F (AVX512 is true only in transform_input_avx512).
            unsafe {
                split_row_avx512(
                    &plane[y * s.w..y * s.w + n],
                    s.pad,
                    &mut even[base..base + width],
                    &mut odd[base..base + width],
                );
            }
            continue;
        }
        if padded_len <= padded.len() {
            padded[..padded_len].fill(0.0);
            padded[s.pad..s.pad + n].copy_from_slice(&plane[y * s.w..y * s.w + n]);
            let base = (row / 2) * width;
            let (even, odd) = q[2 * (row % 2) * q_len..].split_at_mut(q_len);
            for ((e, o), pair) in even[base..base + width]
                .iter_mut()
                .zip(&mut odd[base..base + width])
                .zip(padded[..padded_len].chunks_exact(2))
            {
                *e = pair[0];
                *o = pair[1];
            }
            continue;
        }
        let src = &plane[y * s.w..(y + 1) * s.w];
        for pc in 0..2 {
            // Image column x sits in padded column x + pad, of parity pc when x = first + 2k.
            let first = (pc + 2 - s.pad % 2) % 2;
            let dst = &mut q[(2 * (row % 2) + pc) * q_len + (row / 2) * width..][..width];
            let skip = (first + s.pad) / 2;
            for (d, &value) in dst[skip..]
                .iter_mut()
                .zip(src.iter().skip(first).step_by(2))
            {
                *d = value;
            }
        }
    }
    let q = |pr: usize, pc: usize, shift: usize| &q[(2 * pr + pc) * q_len + shift..][..len + 1];
    // Bᵀ d down the columns: t[i][pc] = d0 - d2, d1 + d2, d2 - d1, d1 - d3 of rows 0..4.
    for pc in 0..2 {
        let (d0, d1, d2, d3) = (q(0, pc, 0), q(1, pc, 0), q(0, pc, width), q(1, pc, width));
        for (i, (a, b, subtract)) in input_transform([d0, d1, d2, d3]).into_iter().enumerate() {
            combine(
                &mut t[(2 * i + pc) * (len + 1)..][..len + 1],
                a,
                b,
                subtract,
            );
        }
    }
    // (Bᵀ d) B along the rows: columns 0..4 are t[i][0], t[i][1], then both one slot on.
    for i in 0..4 {
        let even = &t[2 * i * (len + 1)..][..len + 1];
        let odd = &t[(2 * i + 1) * (len + 1)..][..len + 1];
        let (e0, e1, o0, o1) = (&even[..len], &even[1..], &odd[..len], &odd[1..]);
        for (j, (a, b, subtract)) in input_transform([e0, o0, e1, o1]).into_iter().enumerate() {
            combine(v[4 * i + j], a, b, subtract);
        }
    }
}

/// The products of position `xi` for every output channel: `m` (cout, slots) =
/// `U[xi]` (from `u`, (16, cout, cin)) times `V[xi]` (from `v`, (16, cin, slots)).
pub(crate) fn products(v: &[f32], u: &[f32], s: &ConvShape, xi: usize, m: &mut [f32]) {
    let len = slots(s);
    assert_eq!(u.len(), s.cout * XI * s.cin);
    assert_eq!(v.len(), s.cin * XI * len);
    assert_eq!(m.len(), s.cout * len);
    matmul(
        (s.cout, len, s.cin),
        m,
        len,
        false,
        &u[xi * s.cout * s.cin..],
        (s.cin, 1),
        &v[xi * s.cin * len..],
        (len, 1),
        Parallelism::None,
    );
}

/// Output channel `co` into `out` (oh, ow) from all products `m` (16, cout, slots): the
/// inverse transform, `bias`, then PReLU with `slope`.
pub(crate) fn output_channel(
    m: &[f32],
    s: &ConvShape,
    co: usize,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let len = slots(s);
    assert_eq!(m.len(), XI * s.cout * len);
    scratch.resize(12 * len, 0.0);
    let position: [&[f32]; XI] = std::array::from_fn(|xi| &m[(xi * s.cout + co) * len..][..len]);
    inverse_transform(&position, s, bias, slope, out, scratch)
}

/// Aᵀ of F(2, 3) on four rows x, then `finish` on each value: `first = finish(x0 + x1 + x2)`,
/// `second = finish(x1 - x2 - x3)`, over whole slices (vectorises).
#[inline(always)]
fn output_transform(
    first: &mut [f32],
    second: &mut [f32],
    [x0, x1, x2, x3]: [&[f32]; 4],
    finish: impl Fn(f32) -> f32,
) {
    for ((((f, g), &a0), &a1), (&a2, &a3)) in first
        .iter_mut()
        .zip(second.iter_mut())
        .zip(x0)
        .zip(x1)
        .zip(x2.iter().zip(x3))
    {
        *f = finish(a0 + a1 + a2);
        *g = finish(a1 - a2 - a3);
    }
}

/// One output channel from its products `m` (16 rows of slots): `Aᵀ m A`, plus `bias`, then
/// PReLU with `slope`, into `out` (oh, ow). `scratch` holds 12 slot rows.
fn inverse_transform(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { inverse_transform_avx512(m, s, bias, slope, out, scratch) };
    }
    inverse_transform_any(m, s, bias, slope, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn inverse_transform_avx512(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    inverse_transform_any(m, s, bias, slope, out, scratch)
}

#[inline(always)]
fn inverse_transform_any(
    m: &[&[f32]; XI],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (_, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow) = (s.out_h(), s.out_w());
    let at = |xi: usize| &m[xi][..len];
    let (sums, y) = scratch[..12 * len].split_at_mut(8 * len);
    // Aᵀ m down the columns: row sums m0 + m1 + m2 and m1 - m2 - m3, for each column j.
    for j in 0..4 {
        let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
        let (first, second) = sums[2 * j * len..(2 * j + 2) * len].split_at_mut(len);
        output_transform(first, second, [m0, m1, m2, m3], |v| v);
    }
    // (Aᵀ m) A along the rows, then bias and PReLU: y[2r + c] is output (2ty + r, 2tx + c).
    for r in 0..2 {
        let col = |j: usize| &sums[(2 * j + r) * len..(2 * j + r + 1) * len];
        let (s0, s1, s2, s3) = (col(0), col(1), col(2), col(3));
        let (left, right) = y[2 * r * len..(2 * r + 2) * len].split_at_mut(len);
        output_transform(left, right, [s0, s1, s2, s3], |v| {
            let v = v + bias;
            if v > 0.0 { v } else { slope * v }
        });
    }
    for oy in 0..oh {
        let (ty, r) = (oy / 2, oy % 2);
        let row = &mut out[oy * ow..(oy + 1) * ow];
        let left = &y[2 * r * len + ty * width..][..tw];
        let right = &y[(2 * r + 1) * len + ty * width..][..tw];
        // Output columns 2tx, 2tx + 1 pair by pair (vectorises); an odd width's last column.
        let pairs = row.chunks_exact_mut(2);
        for (pair, (&l, &r)) in pairs.zip(left.iter().zip(right)) {
            pair[0] = l;
            pair[1] = r;
        }
        if ow % 2 == 1 {
            row[ow - 1] = left[tw - 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Winograd output against the im2col convolution + PReLU, relative error <= 1e-5 of the
    /// largest output, on the seed CNN's shapes, odd sizes (partial tiles) and no padding.
    #[test]
    fn winograd_convolution_matches_im2col() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let shapes = [
            (64, 22, 22, 64, 1),
            (128, 10, 10, 128, 1),
            (5, 7, 9, 6, 1),
            (3, 6, 5, 4, 0),
        ];
        for (cin, h, w, cout, pad) in shapes {
            let s = ConvShape {
                batch: 1,
                cin,
                h,
                w,
                cout,
                k: 3,
                pad,
            };
            let mut r = |n: usize| {
                (0..n)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect::<Vec<_>>()
            };
            let (x, g, bias, alpha) = (r(cin * h * w), r(cout * cin * 9), r(cout), r(cout));
            let hw = s.out_h() * s.out_w();
            let mut expected = vec![0f32; cout * hw];
            crate::kernels::conv2d_prelu_forward(&x, &g, &bias, &alpha, s, &mut expected);
            let len = slots(&s);
            let mut channel_major = vec![0f32; cout * XI * cin];
            transform_weights(&g, cin, &mut channel_major);
            let mut u = vec![0f32; cout * XI * cin];
            let mut positions = u.chunks_mut(cout * cin);
            positions_first(&channel_major, cin, |_| positions.next().unwrap());
            let mut v = vec![0f32; XI * cin * len];
            let mut scratch = InputScratch::default();
            let mut rows: Vec<Vec<&mut [f32]>> = (0..cin).map(|_| Vec::new()).collect();
            for position in v.chunks_mut(cin * len) {
                for (ci, row) in position.chunks_mut(len).enumerate() {
                    rows[ci].push(row);
                }
            }
            for (plane, rows) in x.chunks(h * w).zip(rows) {
                let mut rows: [&mut [f32]; XI] = rows.try_into().expect("16 positions");
                transform_input(plane, &s, &mut rows, &mut scratch);
            }
            let mut m = vec![0f32; XI * cout * len];
            for (xi, m) in m.chunks_mut(cout * len).enumerate() {
                products(&v, &u, &s, xi, m);
            }
            let mut out = vec![f32::NAN; cout * hw];
            let mut scratch = Vec::new();
            for (co, o) in out.chunks_mut(hw).enumerate() {
                output_channel(&m, &s, co, bias[co], alpha[co], o, &mut scratch);
            }
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{s:?} output {i}: {a} vs {b}"
                );
            }
        }
    }
}
