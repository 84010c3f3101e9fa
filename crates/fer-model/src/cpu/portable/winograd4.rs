//! The Winograd F(4x4, 3x3) transforms' loops for any CPU (the AVX-512 module compiles them
//! again for its registers): the tile layout, the input transform and the inverse transform,
//! each on whole rows of slots so that they vectorise, and the weight gradient's output
//! transform on whole channel vectors.

use crate::cpu::shape::ConvShape;

/// Positions of the 6x6 transformed tile.
pub(crate) const XI: usize = 36;

/// Tiles of 4x4 output: (rows, columns).
pub(crate) fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.out_h().div_ceil(4), s.out_w().div_ceil(4))
}

/// Slots of the transformed layouts: tile rows x (tile columns + 1), the extra slot of each
/// row computed and dropped (as in F(2x2, 3x3), see `cpu::winograd`).
pub(crate) fn slots(s: &ConvShape) -> usize {
    let (th, tw) = tiles(s);
    th * (tw + 1)
}

/// Reused buffers of [`transform_input_with`].
#[derive(Default)]
pub(crate) struct InputScratch {
    /// The zero-padded plane split by (row, column) residue mod 4.
    split: Vec<f32>,
    /// The column combinations (36 rows of slots).
    columns: Vec<f32>,
    /// One zero-padded image row.
    padded: Vec<f32>,
}

/// Bᵀ of F(4, 3) on six rows d, over whole slices (vectorises):
/// 4 d0 - 5 d2 + d4, -4 (d1 + d2) + d3 + d4, 4 (d1 - d2) + d4 - d3,
/// -2 (d1 - d3) + d4 - d2, 2 (d1 - d3) + d4 - d2, 4 d1 - 5 d3 + d5.
#[inline(always)]
fn input_rows(out: [&mut [f32]; 6], d: [&[f32]; 6]) {
    let [o0, o1, o2, o3, o4, o5] = out;
    let n = o0.len();
    let [d0, d1, d2, d3, d4, d5] = d.map(|row| &row[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    for i in 0..n {
        let (a0, a1, a2, a3, a4, a5) = (d0[i], d1[i], d2[i], d3[i], d4[i], d5[i]);
        o0[i] = 4.0 * a0 - 5.0 * a2 + a4;
        o1[i] = -4.0 * (a1 + a2) + (a3 + a4);
        o2[i] = 4.0 * (a1 - a2) + (a4 - a3);
        o3[i] = -2.0 * (a1 - a3) + (a4 - a2);
        o4[i] = 2.0 * (a1 - a3) + (a4 - a2);
        o5[i] = 4.0 * a1 - 5.0 * a3 + a5;
    }
}

/// Aᵀ of F(4, 3) on six rows m, then `finish` on each value, over whole slices:
/// m0 + m1 + m2 + m3 + m4, (m1 - m2) + 2 (m3 - m4), (m1 + m2) + 4 (m3 + m4),
/// (m1 - m2) + 8 (m3 - m4) + m5.
#[inline(always)]
fn output_rows(out: [&mut [f32]; 4], m: [&[f32]; 6], finish: impl Fn(f32) -> f32) {
    let [o0, o1, o2, o3] = out;
    let n = o0.len();
    let [m0, m1, m2, m3, m4, m5] = m.map(|row| &row[..n]);
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for i in 0..n {
        let (sum12, diff12) = (m1[i] + m2[i], m1[i] - m2[i]);
        let (sum34, diff34) = (m3[i] + m4[i], m3[i] - m4[i]);
        o0[i] = finish(m0[i] + sum12 + sum34);
        o1[i] = finish(diff12 + 2.0 * diff34);
        o2[i] = finish(sum12 + 4.0 * sum34);
        o3[i] = finish(diff12 + 8.0 * diff34 + m5[i]);
    }
}

/// A plane split by residue mod 4 for the input transform: padded cell (4a + r, 4b + c) at
/// `q[(4 r + c) * q_len + a * width + b]`, zeros in the padding. Cell (i, j) of every tile
/// (i, j < 6) is then residue (i % 4, j % 4) shifted by (i / 4) rows and (j / 4) slots.
pub(crate) struct Residues<'a> {
    pub q: &'a [f32],
    pub q_len: usize,
    /// Slots per tile row: tile columns + 1.
    pub width: usize,
    /// The plane's slots: tile rows x width.
    pub len: usize,
}

impl Residues<'_> {
    /// Cell (i, j) of the tiles at slots `len` from slot 0.
    #[inline(always)]
    pub fn cell(&self, i: usize, j: usize) -> &[f32] {
        let start = ((i % 4) * 4 + j % 4) * self.q_len + (i / 4) * self.width + j / 4;
        &self.q[start..][..self.len]
    }
}

/// How [`split_residues`] splits one image row into its padded row's four residues.
pub(crate) trait QuadSplit {
    /// Writes `row`, after `pad` zeros and followed by zeros, split by column residue mod 4
    /// into `residues` (of equal length), and returns true; or returns false and writes
    /// nothing, to leave the row to the portable loop.
    fn split(row: &[f32], pad: usize, residues: [&mut [f32]; 4]) -> bool;
}

/// The portable split: always left to the loop of [`split_residues`].
pub(crate) struct PortableQuads;

impl QuadSplit for PortableQuads {
    #[inline(always)]
    fn split(_: &[f32], _: usize, _: [&mut [f32]; 4]) -> bool {
        false
    }
}

/// `plane` split by residue ([`Residues`]) into `scratch`, each row by `R` where it can.
#[inline(always)]
pub(crate) fn split_residues<'a, R: QuadSplit>(
    plane: &[f32],
    s: &ConvShape,
    scratch: &'a mut InputScratch,
) -> Residues<'a> {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    assert_eq!(plane.len(), s.h * s.w);
    // Tile (ty, tx) reads padded rows 4ty .. 4ty + 6 and columns 4tx .. 4tx + 6; the largest
    // slot read is len - 1 + width + 1 = (th + 1) * width.
    let q_len = (th + 1) * width + 1;
    scratch.split.resize(16 * q_len, 0.0);
    let q = &mut scratch.split[..16 * q_len];
    // Zeros where no image row is written: the padded rows above and below the image, and
    // the last slot of each residue. Every written row writes all `width` slots.
    let written = s.pad..s.pad + s.h.min(4 * th + 2 - s.pad);
    for row in (0..4 * (th + 1)).filter(|row| !written.contains(row)) {
        let base = (row % 4) * 4 * q_len + (row / 4) * width;
        for c in 0..4 {
            q[base + c * q_len..][..width].fill(0.0);
        }
    }
    for residue in q.chunks_mut(q_len) {
        residue[q_len - 1] = 0.0;
    }
    // One padded row at a time (4 x width columns), split into its four residues quad by
    // quad.
    let padded_len = 4 * width;
    scratch.padded.clear();
    scratch.padded.resize(padded_len, 0.0);
    let padded = &mut scratch.padded;
    let read_w = s.w.min(padded_len - s.pad);
    for y in 0..written.len() {
        let row = y + s.pad;
        let base = (row % 4) * 4 * q_len + (row / 4) * width;
        let (c0, rest) = q[base..].split_at_mut(q_len);
        let (c1, rest) = rest.split_at_mut(q_len);
        let (c2, c3) = rest.split_at_mut(q_len);
        let image_row = &plane[y * s.w..][..read_w];
        let quads = [
            &mut c0[..width],
            &mut c1[..width],
            &mut c2[..width],
            &mut c3[..width],
        ];
        if R::split(image_row, s.pad, quads) {
            continue;
        }
        padded[s.pad..s.pad + read_w].copy_from_slice(image_row);
        let residues = c0[..width]
            .iter_mut()
            .zip(&mut c1[..width])
            .zip(c2[..width].iter_mut().zip(&mut c3[..width]));
        for (((v0, v1), (v2, v3)), quad) in residues.zip(padded.chunks_exact(4)) {
            (*v0, *v1, *v2, *v3) = (quad[0], quad[1], quad[2], quad[3]);
        }
    }
    Residues {
        q: &scratch.split,
        q_len,
        width,
        len,
    }
}

/// `V` of one input channel `plane` (h, w): `v[xi]` receives position xi's row of slots (xi =
/// 6 * row + column of the transformed tile), zero padding included.
#[inline(always)]
pub(crate) fn transform_input_with(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]],
    scratch: &mut InputScratch,
) {
    let len = slots(s);
    assert!(v.len() == XI && v.iter().all(|row| row.len() == len));
    let mut columns = std::mem::take(&mut scratch.columns);
    let split = split_residues::<PortableQuads>(plane, s, scratch);
    // Bᵀ d down the columns: t[k][j] (row 6j + k of `columns`) from cells (0..6, j).
    columns.resize(XI * len, 0.0);
    for (j, column) in columns.chunks_mut(6 * len).enumerate() {
        input_rows(
            first_rows(column, len),
            std::array::from_fn(|i| split.cell(i, j)),
        );
    }
    // (Bᵀ d) B along the rows: v[6k + l] from t[k][0..6].
    for (k, out) in v.chunks_mut(6).enumerate() {
        let out: [&mut [f32]; 6] = {
            let mut out = out.iter_mut();
            std::array::from_fn(|_| &mut **out.next().expect("six rows"))
        };
        input_rows(
            out,
            std::array::from_fn(|j| &columns[(6 * j + k) * len..][..len]),
        );
    }
    scratch.columns = columns;
}

/// The first `N` rows of `len` of `buffer`.
fn first_rows<const N: usize>(buffer: &mut [f32], len: usize) -> [&mut [f32]; N] {
    let mut rows = buffer.chunks_mut(len);
    std::array::from_fn(|_| rows.next().expect("enough rows"))
}

/// `Aᵀ m A` of one output channel from its products `m` (36 rows of slots), plus `bias`, then
/// PReLU with `slope`, into `out` (oh, ow). `scratch` holds 40 slot rows.
#[inline(always)]
pub(crate) fn inverse_transform_with(
    m: &[&[f32]],
    s: &ConvShape,
    bias: f32,
    slope: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (_, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow) = (s.out_h(), s.out_w());
    assert!(m.len() == XI && m.iter().all(|row| row.len() >= len));
    assert_eq!(out.len(), oh * ow);
    scratch.resize(40 * len, 0.0);
    let (sums, y) = scratch.split_at_mut(24 * len);
    // Aᵀ m down the columns: sums[r][j] (row 4j + r) from m(0..6, j).
    for (j, column) in sums.chunks_mut(4 * len).enumerate() {
        output_rows(
            first_rows(column, len),
            std::array::from_fn(|i| &m[6 * i + j][..len]),
            |v| v,
        );
    }
    // (Aᵀ m) A along the rows, bias and PReLU: y[4r + c] is output (4ty + r, 4tx + c).
    for (r, out) in y.chunks_mut(4 * len).enumerate() {
        let row = std::array::from_fn(|j| &sums[(4 * j + r) * len..][..len]);
        output_rows(first_rows(out, len), row, |v| {
            let v = v + bias;
            if v > 0.0 { v } else { slope * v }
        });
    }
    for oy in 0..oh {
        let (ty, r) = (oy / 4, oy % 4);
        let row = &mut out[oy * ow..(oy + 1) * ow];
        let at = |c: usize| &y[(4 * r + c) * len + ty * width..][..tw];
        let (c0, c1, c2, c3) = (at(0), at(1), at(2), at(3));
        let mut quads = row.chunks_exact_mut(4);
        for (tx, quad) in quads.by_ref().enumerate() {
            quad.copy_from_slice(&[c0[tx], c1[tx], c2[tx], c3[tx]]);
        }
        let rest = quads.into_remainder();
        let tx = ow / 4;
        for (c, value) in rest.iter_mut().enumerate() {
            *value = at(c)[tx];
        }
    }
}

/// A of F(4, 3) on the four values y of one tile row or column, over whole slices: y0,
/// y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + 2 y1 + 4 y2 + 8 y3, y0 - 2 y1 + 4 y2 - 8 y3,
/// y3.
#[inline(always)]
fn gradient_rows(out: [&mut [f32]; 6], y: [&[f32]; 4]) {
    let [o0, o1, o2, o3, o4, o5] = out;
    let n = o0.len();
    let [y0, y1, y2, y3] = y.map(|row| &row[..n]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..n],
        &mut o2[..n],
        &mut o3[..n],
        &mut o4[..n],
        &mut o5[..n],
    );
    for i in 0..n {
        let (even, odd) = (y0[i] + y2[i], y1[i] + y3[i]);
        let (even4, odd4) = (y0[i] + 4.0 * y2[i], 2.0 * y1[i] + 8.0 * y3[i]);
        o0[i] = y0[i];
        o1[i] = even + odd;
        o2[i] = even - odd;
        o3[i] = even4 + odd4;
        o4[i] = even4 - odd4;
        o5[i] = y3[i];
    }
}

/// `A dy Aᵀ` of every tile, channels last: `dm[xi]` (slots, channels) from `dy_t` (oh * ow,
/// channels), the gradient of the convolution's output (the transpose of the inverse
/// transform); zeros beyond the output and in each tile row's extra slot.
#[inline(always)]
pub(crate) fn transform_output_gradient_with(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]]) {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow, c) = (s.out_h(), s.out_w(), s.cout);
    assert_eq!(dy_t.len(), oh * ow * c);
    assert!(dm.len() == XI && dm.iter().all(|rows| rows.len() == len * c));
    let zeros = vec![0f32; c];
    // The tile's rows along its columns: r[a][j] (row 6a + j) for a in 0..4, j in 0..6.
    let mut r = vec![0f32; 24 * c];
    for ty in 0..th {
        for tx in 0..width {
            let slot = ty * width + tx;
            // The tile's gradient at (a, b), zeros beyond the output and in the extra slot.
            let at = |a: usize, b: usize| -> &[f32] {
                let (y, x) = (4 * ty + a, 4 * tx + b);
                if tx < tw && y < oh && x < ow {
                    &dy_t[(y * ow + x) * c..][..c]
                } else {
                    &zeros
                }
            };
            for (a, row) in r.chunks_mut(6 * c).enumerate() {
                gradient_rows(first_rows(row, c), std::array::from_fn(|b| at(a, b)));
            }
            // Down the rows: position 6i + j from r[0..4][j].
            for j in 0..6 {
                let outs = dm
                    .get_disjoint_mut([j, 6 + j, 12 + j, 18 + j, 24 + j, 30 + j])
                    .expect("six different positions")
                    .map(|rows| &mut rows[slot * c..][..c]);
                gradient_rows(outs, std::array::from_fn(|a| &r[(6 * a + j) * c..][..c]));
            }
        }
    }
}
