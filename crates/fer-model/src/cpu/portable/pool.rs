//! Pooling of one plane for any CPU: the max with window indices (training) and the
//! separable values-only passes (inference), which the AVX-512 build compiles again.

use crate::cpu::shape::{PADDED, PoolKind, PoolShape};

/// Max pooling of one plane: values into `out` and the input index of each window's first
/// maximum in scan order (NaN wins; [`PADDED`] for a padded zero) into `index`. Separable: a
/// row pass keeps each row's first maximum, a column pass the first row holding the maximum,
/// which is the first maximum in row-major scan order.
pub(crate) fn max_plane(
    plane: &[f32],
    s: &PoolShape,
    out: &mut [f32],
    index: &mut [u32],
    scratch: &mut MaxScratch,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (padded_h, padded_w) = (s.h + 2 * s.pad, s.w + 2 * s.pad);
    let span = (ow - 1) * s.stride + 1; // window starts, at stride 1, in the padded row
    let MaxScratch {
        line_v,
        line_i,
        best_v,
        best_i,
        rows_v,
        rows_i,
    } = scratch;
    // Padding is zeros at PADDED: around each row, and as whole rows above and below.
    for (values, indices, len) in [
        (&mut *line_v, &mut *line_i, padded_w),
        (&mut *rows_v, &mut *rows_i, padded_h * ow),
    ] {
        values.clear();
        values.resize(len, 0.0);
        indices.clear();
        indices.resize(len, PADDED);
    }
    best_v.resize(span, 0.0);
    best_i.resize(span, PADDED);
    // Row pass: a sliding maximum at stride 1 over the padded row (contiguous slices, so it
    // vectorises), then every stride-th window.
    for y in 0..s.h {
        line_v[s.pad..s.pad + s.w].copy_from_slice(&plane[y * s.w..(y + 1) * s.w]);
        for (x, i) in line_i[s.pad..s.pad + s.w].iter_mut().enumerate() {
            *i = (y * s.w + x) as u32;
        }
        best_v.copy_from_slice(&line_v[..span]);
        best_i.copy_from_slice(&line_i[..span]);
        for kx in 1..s.k {
            keep_first_maximum(
                best_v,
                best_i,
                &line_v[kx..kx + span],
                &line_i[kx..kx + span],
            );
        }
        let row = (y + s.pad) * ow;
        for ox in 0..ow {
            rows_v[row + ox] = best_v[ox * s.stride];
            rows_i[row + ox] = best_i[ox * s.stride];
        }
    }
    // Column pass: whole output rows at once.
    for oy in 0..oh {
        let (out_v, out_i) = (
            &mut out[oy * ow..(oy + 1) * ow],
            &mut index[oy * ow..(oy + 1) * ow],
        );
        let top = oy * s.stride * ow;
        out_v.copy_from_slice(&rows_v[top..top + ow]);
        out_i.copy_from_slice(&rows_i[top..top + ow]);
        for ky in 1..s.k {
            let row = (oy * s.stride + ky) * ow;
            keep_first_maximum(out_v, out_i, &rows_v[row..row + ow], &rows_i[row..row + ow]);
        }
    }
}

/// Elementwise: where `value` beats `best` (greater, or a NaN over a number), take it and
/// its index; ties keep the earlier one. No branches, so it vectorises.
fn keep_first_maximum(best: &mut [f32], best_index: &mut [u32], value: &[f32], index: &[u32]) {
    for ((b, bi), (&v, &i)) in best
        .iter_mut()
        .zip(best_index.iter_mut())
        .zip(value.iter().zip(index))
    {
        let take = (v > *b) | (v.is_nan() & !b.is_nan());
        let mask = u32::from(take).wrapping_neg();
        *b = f32::from_bits((v.to_bits() & mask) | (b.to_bits() & !mask));
        *bi = (i & mask) | (*bi & !mask);
    }
}

/// Reused buffers of [`max_plane`] (one per rayon worker).
#[derive(Default)]
pub(crate) struct MaxScratch {
    line_v: Vec<f32>,
    line_i: Vec<u32>,
    best_v: Vec<f32>,
    best_i: Vec<u32>,
    rows_v: Vec<f32>,
    rows_i: Vec<u32>,
}

/// Reused buffers of [`pool_plane_values_with`] (one per rayon task).
#[derive(Default)]
pub(crate) struct PlaneScratch {
    /// One zero-padded input row.
    line: Vec<f32>,
    /// The row pass's result: every padded row (zeros above and below), `ow` windows each.
    rows: Vec<f32>,
    /// One row of windows (row pass) or of outputs (column pass).
    row: Vec<f32>,
}

/// The max of two values where a NaN wins (as [`max_plane`]'s values). Branch-free, a blend
/// of bits, so that it vectorises into register selects rather than masked stores.
#[inline(always)]
fn max_keep_nan(best: f32, v: f32) -> f32 {
    let take = (v > best) | v.is_nan();
    let mask = u32::from(take).wrapping_neg();
    f32::from_bits((v.to_bits() & mask) | (best.to_bits() & !mask))
}

/// `dst[i] = op(...op(op(src[i], src[i + shift]), src[i + 2 shift])..., src[i + (k-1) shift])`
/// for a `dst` of whole vectors (16 lanes): each vector accumulates in a register and is
/// stored once (a store per pass would be a masked store that stalls the next pass's load).
#[inline(always)]
fn reduce_shifted(
    dst: &mut [f32],
    src: &[f32],
    shift: usize,
    k: usize,
    op: impl Fn(f32, f32) -> f32 + Copy,
) {
    const LANES: usize = 16;
    assert_eq!(dst.len() % LANES, 0);
    for (c, d) in dst.chunks_exact_mut(LANES).enumerate() {
        let base = c * LANES;
        let mut acc: [f32; LANES] = src[base..base + LANES].try_into().expect("16 lanes");
        for j in 1..k {
            let at = base + j * shift;
            let next: &[f32; LANES] = src[at..at + LANES].try_into().expect("16 lanes");
            for (a, &v) in acc.iter_mut().zip(next) {
                *a = op(*a, v);
            }
        }
        d.copy_from_slice(&acc);
    }
}

/// Dispatches the seed CNN's window sizes to unrolled copies.
#[inline(always)]
pub(crate) fn pool_plane_values_for_k(
    plane: &[f32],
    s: &PoolShape,
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    // Without NaNs the max is order-free and one instruction per element instead of four.
    let has_nan = || plane.iter().fold(false, |acc, v| acc | v.is_nan());
    match (s.kind, s.k) {
        (PoolKind::Max, 5) if !has_nan() => max_plane_columns_first(plane, s, 5, out, scratch),
        (PoolKind::Max, k) if !has_nan() => max_plane_columns_first(plane, s, k, out, scratch),
        (PoolKind::Max, k) => pool_plane_values_with(plane, s, k, out, scratch, max_keep_nan),
        (PoolKind::Avg, 3) => pool_plane_values_with(plane, s, 3, out, scratch, |a, b| a + b),
        (PoolKind::Avg, k) => pool_plane_values_with(plane, s, k, out, scratch, |a, b| a + b),
    }
}

/// Max pooling of one plane without NaNs (the max is then order-free): the column pass first,
/// straight from the plane's rows into one zero-padded line per output row, then the row pass
/// on that line. Half the rows of the rows-first order, and no copy of the input.
#[inline(always)]
pub(crate) fn max_plane_columns_first(
    plane: &[f32],
    s: &PoolShape,
    k: usize,
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    const LANES: usize = 16;
    let max = |a: f32, b: f32| if b > a { b } else { a };
    let (oh, ow, w) = (s.out_h(), s.out_w(), s.w);
    let span = ((ow - 1) * s.stride + 1).next_multiple_of(LANES);
    let PlaneScratch { line, row, .. } = scratch;
    line.clear();
    line.resize((w + 2 * s.pad).max(span + k - 1), 0.0);
    row.clear();
    row.resize(span, 0.0);
    let (line, row) = (line.as_mut_slice(), row.as_mut_slice());
    for (oy, o) in out.chunks_mut(ow).enumerate().take(oh) {
        // The window's image rows [y0, y1); fewer than k when it overlaps the padding, whose
        // zeros then take part.
        let top = oy * s.stride;
        let (y0, y1) = (
            top.saturating_sub(s.pad),
            (top + k).saturating_sub(s.pad).min(s.h),
        );
        let padded = y1.saturating_sub(y0) < k;
        let first = if padded { y0 } else { y0 + 1 };
        let columns = &mut line[s.pad..s.pad + w];
        if w >= LANES {
            // Whole vectors; the last one ends at w and may overlap the one before (the same
            // maxima are written twice), so no column is left to a scalar loop.
            let starts = (0..w - LANES).step_by(LANES).chain([w - LANES]);
            for base in starts {
                let mut acc = [0f32; LANES];
                if !padded {
                    acc.copy_from_slice(&plane[y0 * w + base..y0 * w + base + LANES]);
                }
                for y in first..y1 {
                    let src: &[f32; LANES] = plane[y * w + base..y * w + base + LANES]
                        .try_into()
                        .expect("16 lanes");
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a = max(*a, v);
                    }
                }
                columns[base..base + LANES].copy_from_slice(&acc);
            }
        } else {
            for (x, d) in columns.iter_mut().enumerate() {
                let mut acc = if padded { 0.0 } else { plane[y0 * w + x] };
                for y in first..y1 {
                    acc = max(acc, plane[y * w + x]);
                }
                *d = acc;
            }
        }
        reduce_shifted(row, line, 1, k, max);
        for (o, &b) in o.iter_mut().zip(row.iter().step_by(s.stride)) {
            *o = b;
        }
    }
}

#[inline(always)]
pub(crate) fn pool_plane_values_with(
    plane: &[f32],
    s: &PoolShape,
    k: usize,
    out: &mut [f32],
    scratch: &mut PlaneScratch,
    op: impl Fn(f32, f32) -> f32 + Copy,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (padded_h, padded_w) = (s.h + 2 * s.pad, s.w + 2 * s.pad);
    // Window starts at stride 1 in the padded row, and output rows, are both rounded up to
    // whole vectors (16 lanes): the extra windows read zeros and are dropped, so that no loop
    // has a scalar tail.
    let span = ((ow - 1) * s.stride + 1).next_multiple_of(16);
    let row_len = ow.next_multiple_of(16);
    let PlaneScratch { line, rows, row } = scratch;
    line.clear();
    line.resize(padded_w.max(span + k - 1), 0.0);
    rows.clear();
    rows.resize(padded_h * row_len, 0.0);
    row.clear();
    row.resize(span.max(row_len), 0.0);
    let (line, rows, row) = (line.as_mut_slice(), rows.as_mut_slice(), row.as_mut_slice());
    for y in 0..s.h {
        line[s.pad..s.pad + s.w].copy_from_slice(&plane[y * s.w..(y + 1) * s.w]);
        reduce_shifted(&mut row[..span], line, 1, k, op);
        let reduced = &mut rows[(y + s.pad) * row_len..(y + s.pad) * row_len + ow];
        for (r, &b) in reduced.iter_mut().zip(row.iter().step_by(s.stride)) {
            *r = b;
        }
    }
    let scale = if s.kind == PoolKind::Avg {
        Some((k * k) as f32)
    } else {
        None
    };
    for (oy, o) in out.chunks_mut(ow).enumerate().take(oh) {
        let acc = &mut row[..row_len];
        reduce_shifted(acc, &rows[oy * s.stride * row_len..], row_len, k, op);
        if let Some(area) = scale {
            for a in acc.iter_mut() {
                *a /= area;
            }
        }
        o.copy_from_slice(&acc[..ow]);
    }
}

/// The backward of a 2x2 stride-2 max pool on one plane (h, w) whose gradient `g` is zeroed:
/// each window's gradient `go` goes to its first maximum in scan order (a NaN beating any
/// number), as `0.0 + d` (the indexed backward's accumulation: a -0.0 lands as 0.0).
pub(crate) fn max_2x2_backward_plane(plane: &[f32], go: &[f32], h: usize, w: usize, g: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(plane.len() == h * w && g.len() == h * w && go.len() == oh * ow);
    for (oy, go) in go.chunks_exact(ow).enumerate() {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        for (ox, &d) in go.iter().enumerate() {
            let cells = [
                top + 2 * ox,
                top + 2 * ox + 1,
                bottom + 2 * ox,
                bottom + 2 * ox + 1,
            ];
            let mut best = cells[0];
            for &i in &cells[1..] {
                let (v, b) = (plane[i], plane[best]);
                if v > b || (v.is_nan() && !b.is_nan()) {
                    best = i;
                }
            }
            g[best] = 0.0 + d;
        }
    }
}
