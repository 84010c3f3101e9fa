//! The Winograd transforms' loops for any CPU: the tile layout, the input transform (generic
//! over how a padded row is split into its even and odd columns) and the inverse transform.

use crate::cpu::shape::ConvShape;

/// Positions of the 4x4 transformed tile.
pub(crate) const XI: usize = 16;

/// Tiles of 2x2 output: (rows, columns).
pub(crate) fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.out_h().div_ceil(2), s.out_w().div_ceil(2))
}

/// Slots of the transformed layouts: tile rows x (tile columns + 1).
pub(crate) fn slots(s: &ConvShape) -> usize {
    let (th, tw) = tiles(s);
    th * (tw + 1)
}
/// Reused buffers of [`transform_input_with`].
#[derive(Default)]
pub(crate) struct InputScratch {
    /// The zero-padded plane split by (row, column) parity ([`SplitPlane`]).
    split: Vec<f32>,
    /// The column combinations of the portable transform.
    columns: Vec<f32>,
}

impl InputScratch {
    /// The buffer of [`split_plane`], for a transform that needs no other.
    pub(crate) fn split_buffer(&mut self) -> &mut Vec<f32> {
        &mut self.split
    }
}

/// A plane split by parity for the input transform: padded cell (2a + pr, 2b + pc) at
/// `q[(2 pr + pc) * q_len + a * width + b]`, zeros in the padding.
pub(crate) struct SplitPlane<'a> {
    pub q: &'a [f32],
    pub q_len: usize,
    /// Slots per tile row: tile columns + 1.
    pub width: usize,
    /// The plane's slots: tile rows x width.
    pub len: usize,
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

/// How the input transform splits one image row into its padded row's even and odd columns.
pub(crate) trait RowSplit {
    /// Writes `row`, after `pad` zeros and followed by zeros, split by column parity into
    /// `even` and `odd` (of equal length), and returns true; or returns false and writes
    /// nothing, to leave the row to the portable split.
    fn split(row: &[f32], pad: usize, even: &mut [f32], odd: &mut [f32]) -> bool;
}

/// The portable split: always left to the loops of [`transform_input_with`].
pub(crate) struct PortableRows;

impl RowSplit for PortableRows {
    #[inline(always)]
    fn split(_: &[f32], _: usize, _: &mut [f32], _: &mut [f32]) -> bool {
        false
    }
}

/// `V` of one input channel (see `cpu::winograd::transform_input`), each row split by `R`
/// where it can, then combined by the loops below.
#[inline(always)]
pub(crate) fn transform_input_with<R: RowSplit>(
    plane: &[f32],
    s: &ConvShape,
    v: &mut [&mut [f32]; XI],
    scratch: &mut InputScratch,
) {
    let split = split_plane::<R>(plane, s, &mut scratch.split);
    let SplitPlane {
        q,
        q_len,
        width,
        len,
    } = split;
    assert!(v.iter().all(|row| row.len() == len));
    scratch.columns.resize(8 * (len + 1), 0.0);
    let t = &mut scratch.columns;
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

/// `plane` split by parity into `buffer` ([`SplitPlane`]), each row split by `R` where it
/// can.
#[inline(always)]
pub(crate) fn split_plane<'a, R: RowSplit>(
    plane: &[f32],
    s: &ConvShape,
    buffer: &'a mut Vec<f32>,
) -> SplitPlane<'a> {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    assert_eq!(plane.len(), s.h * s.w);
    // Tile (ty, tx) reads padded rows 2ty .. 2ty + 4 and columns 2tx .. 2tx + 4. Split by
    // parity, padded cell (2a + pr, 2b + pc) goes to q[pr][pc] at a * width + b: cell (i, j)
    // of every tile is then q[i % 2][j % 2] shifted by (i / 2) rows and (j / 2) slots.
    let q_len = (th + 1) * width + 1;
    buffer.resize(4 * q_len, 0.0);
    let q = &mut buffer[..];
    // `q` keeps zeros where no row is written (the padding).
    q.fill(0.0);
    // One padded row (2 * width columns), split into even and odd columns pair by pair (a
    // stride-2 pattern that vectorises).
    let mut padded = [0f32; 64];
    let padded_len = 2 * width;
    for y in 0..s.h.min(2 * th + 2 - s.pad) {
        let row = y + s.pad;
        let n = s.w.min(padded_len - s.pad);
        {
            let base = (row / 2) * width;
            let (even, odd) = q[2 * (row % 2) * q_len..].split_at_mut(q_len);
            let (even, odd) = (&mut even[base..base + width], &mut odd[base..base + width]);
            if R::split(&plane[y * s.w..y * s.w + n], s.pad, even, odd) {
                continue;
            }
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
    SplitPlane {
        q,
        q_len,
        width,
        len,
    }
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

/// `Aᵀ m A` of one output channel (see `cpu::winograd`), plus `bias`, then PReLU.
#[inline(always)]
pub(crate) fn inverse_transform_with(
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

/// `A dy Aᵀ` of every tile, channels last (see `cpu::winograd::transform_output_gradient`):
/// each slot's 16 vectors from its tile's four gradient vectors, over whole channel vectors
/// (vectorises). Along either axis, A maps the pair (y0, y1) to y0, y0 + y1, y0 - y1, -y1.
#[inline(always)]
pub(crate) fn transform_output_gradient_with(
    dy_t: &[f32],
    s: &ConvShape,
    dm: &mut [&mut [f32]; XI],
) {
    let (th, tw) = tiles(s);
    let (width, len) = (tw + 1, slots(s));
    let (oh, ow, c) = (s.out_h(), s.out_w(), s.cout);
    assert_eq!(dy_t.len(), oh * ow * c);
    assert!(dm.iter().all(|rows| rows.len() == len * c));
    let zeros = vec![0f32; c];
    // Row a of the tile along its columns: r[a][j] for j = 0..4.
    let mut r = vec![0f32; 8 * c];
    for ty in 0..th {
        for tx in 0..width {
            let slot = ty * width + tx;
            // The tile's gradient at (a, b), zeros beyond the output and in the extra slot.
            let at = |a: usize, b: usize| -> &[f32] {
                let (y, x) = (2 * ty + a, 2 * tx + b);
                if tx < tw && y < oh && x < ow {
                    &dy_t[(y * ow + x) * c..][..c]
                } else {
                    &zeros
                }
            };
            for a in 0..2 {
                let (y0, y1) = (at(a, 0), at(a, 1));
                let row = &mut r[4 * a * c..4 * (a + 1) * c];
                let (r0, rest) = row.split_at_mut(c);
                let (r1, rest) = rest.split_at_mut(c);
                let (r2, r3) = rest.split_at_mut(c);
                pair_transform([r0, r1, r2, r3], y0, y1);
            }
            // Down the rows: position 4i + j from (r[0][j], r[1][j]).
            let (first, second) = r.split_at(4 * c);
            for j in 0..4 {
                let (y0, y1) = (&first[j * c..][..c], &second[j * c..][..c]);
                let outs = dm
                    .get_disjoint_mut([j, 4 + j, 8 + j, 12 + j])
                    .expect("four different positions")
                    .map(|rows| &mut rows[slot * c..][..c]);
                pair_transform(outs, y0, y1);
            }
        }
    }
}

/// A of F(2, 3) on the pair (y0, y1), over whole slices: out = y0, y0 + y1, y0 - y1, -y1.
#[inline(always)]
fn pair_transform([o0, o1, o2, o3]: [&mut [f32]; 4], y0: &[f32], y1: &[f32]) {
    o0.copy_from_slice(y0);
    for (((o, &a), &b), (p, q)) in o1
        .iter_mut()
        .zip(y0)
        .zip(y1)
        .zip(o2.iter_mut().zip(o3.iter_mut()))
    {
        *o = a + b;
        *p = a - b;
        *q = -b;
    }
}
