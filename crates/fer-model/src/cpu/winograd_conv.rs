//! 3x3 convolutions of whole batches by Winograd, in the tiling that [`Tiling::for_shape`]
//! picks (F(4x4, 3x3) on planes of at least 24 x 24 with at most 128 input channels, 4x fewer
//! multiplications in its gemms than im2col; F(2x2, 3x3) on the others, 2.25x fewer): the
//! forward (with a per-channel bias and PReLU slope, or a frozen batch norm's scale folded
//! into the weights) and the weight gradient. Grad-input is the forward of the flipped
//! kernel, so it takes the same path.
//!
//! Forward, per group of images: `V` (positions, cin, group x slots) from the input
//! transform, `M[xi] = U[xi] V[xi]` (one gemm per position), then the inverse transform per
//! output channel and image. Weight gradient: `dUᵀ[xi] = Σ V[xi] dMᵀ[xi]` over the images
//! (dM = A dy Aᵀ, made channels last so that both gemm operands are read along their rows),
//! then `dg = Gᵀ dU G`.
//!
//! Invariants: results do not depend on the thread count. The tiling and the image groups
//! follow fixed rules (functions of the shape only); the weight gradient sums fixed groups of
//! [`GRADIENT_GROUP`] images, then the groups in order. Values differ from im2col's in the
//! last bits (the transforms reassociate sums; F(4x4, 3x3) by more, see [`Tiling`]).

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::{matmul, with_scratch};
use super::pool::pool_planes;
use super::reduce::ordered_sum;
use super::shape::{ConvShape, PoolShape};
use super::tiling::{self, PositionRows, Tiling};
use super::uninit::{self, Slot};

/// Images whose weight gradients are summed together before the ordered reduction.
const GRADIENT_GROUP: usize = 8;

/// The environment variable that, set to anything but `0`, keeps every convolution on
/// im2col + gemm (to compare the two paths on one machine, and to test both).
pub const IM2COL_ONLY_VAR: &str = "FER_IM2COL_ONLY";

/// Whether this path computes the convolution `s`: 3x3 kernels with at least 8 input and 8
/// output channels (a gemm with fewer has too short an inner or outer dimension), and for
/// fewer than 8 images, outputs of at least 24 x 24 (on smaller planes, transforming the
/// weights costs more than the products save), unless [`IM2COL_ONLY_VAR`] asks for im2col.
/// Read once per process.
pub(crate) fn suits(s: &ConvShape) -> bool {
    static IM2COL_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let im2col_only =
        *IM2COL_ONLY.get_or_init(|| std::env::var_os(IM2COL_ONLY_VAR).is_some_and(|v| v != "0"));
    let pixels = s.out_h() * s.out_w();
    !im2col_only
        && s.k == 3
        && s.cin >= 8
        && s.cout >= 8
        && s.out_h() >= 2
        && s.out_w() >= 2
        && (s.batch >= 8 || pixels >= 24 * 24)
}

/// Whether [`grad_weight`] computes the weight gradient of `s`: as [`suits`], on outputs of
/// at least 12 x 12 (on 6 x 6 planes a third of the tiles' slots are padding, and im2col is
/// faster: 35-36 ms against 41-46 ms for vgg-bn's 256-channel layer at batch 128).
pub(crate) fn suits_grad_weight(s: &ConvShape) -> bool {
    suits(s) && s.out_h() >= 12 && s.out_w() >= 12
}

/// The most values per input channel that [`images_per_gemm`] lets `V` hold: 16 positions x
/// 1,280 slots. F(2x2, 3x3) groups images up to 1,280 slots; F(4x4, 3x3) up to 568, two
/// 48 x 48 planes (with twice that, vgg-bn's 48 x 48 layers ran 10-26% slower by either).
const V_VALUES_PER_CHANNEL: usize = 16 * 1280;

/// Images per gemm: the most, up to 8 (a power of two), whose transformed input `V` of
/// `positions` rows of `len` slots per image stays within [`V_VALUES_PER_CHANNEL`] per input
/// channel, so that small planes still give the gemm a long dimension and `V` stays in cache.
fn images_per_gemm(len: usize, positions: usize) -> usize {
    let mut group = 1;
    while group < 8 && 2 * group * len * positions <= V_VALUES_PER_CHANNEL {
        group *= 2;
    }
    group
}

/// `U` (XI, cout, cin) of `weight` (cout, cin, 3, 3), output channel co's filters times
/// `scale[co]` when given.
fn transformed_weights(
    tiling: Tiling,
    weight: &[f32],
    s: &ConvShape,
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let xi_count = tiling.positions();
    let (cin, cout) = (s.cin, s.cout);
    assert_eq!(weight.len(), cout * cin * 9);
    // Channel by channel (cout, 16, cin), then positions first.
    let by_channel = |by_channel: &mut [MaybeUninit<f32>]| {
        by_channel
            .par_chunks_mut(xi_count * cin)
            .zip(weight.par_chunks(cin * 9))
            .enumerate()
            .for_each(|(co, (u, filters))| {
                let u = Slot::zeroed(u);
                tiling.transform_weights(filters, cin, u);
                if let Some(scale) = scale {
                    u.iter_mut().for_each(|v| *v *= scale[co]);
                }
            })
    };
    // SAFETY: every channel's chunk is zeroed before it is written.
    let by_channel = unsafe { uninit::written(cout * xi_count * cin, by_channel) };
    let positions = |u: &mut [MaybeUninit<f32>]| {
        u.par_chunks_mut(cout * cin)
            .enumerate()
            .for_each(|(xi, position)| {
                tiling.position_of(&by_channel, cin, xi, Slot::zeroed(position));
            })
    };
    // SAFETY: every position's chunk is zeroed before it is written.
    unsafe { uninit::written(xi_count * cout * cin, positions) }
}

/// Convolution forward, `out` (batch, cout, oh, ow) from `x` (batch, cin, h, w) and `weight`
/// (cout, cin, 3, 3) (chosen for the shapes that [`suits`]): each output channel's filters times
/// `scale[co]` when given, then `channel(co)` = (bias, slope) added and applied as PReLU (a
/// slope of 1 leaves the value as it is, 0 is a ReLU). With `pool` (the pooling of one
/// output plane: `planes` 1, oh x ow), each plane is pooled as soon as it is computed, while
/// it is in cache, and `out` holds the pooled planes (batch, cout, pool's out_h, out_w): the
/// same values as pooling the whole output afterwards.
pub(crate) fn forward(
    x: &[f32],
    weight: &[f32],
    scale: Option<&[f32]>,
    channel: impl Fn(usize) -> (f32, f32) + Sync,
    s: ConvShape,
    pool: Option<PoolShape>,
    out: &mut [impl Slot],
) {
    assert!(s.k == 3 && s.supported(), "a 3x3 convolution");
    let tiling = Tiling::for_shape(&s);
    if let Some(p) = pool {
        assert!(p.planes == 1 && p.h == s.out_h() && p.w == s.out_w());
    }
    let out_plane = pool.map_or(s.out_h() * s.out_w(), |p| p.out_h() * p.out_w());
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * out_plane);
    assert_eq!(x.len(), s.batch * in_img);
    assert_eq!(out.len(), s.batch * out_img);
    let u = transformed_weights(tiling, weight, &s, scale);
    let (positions, len) = (tiling.positions(), tiling.slots(&s));
    let threads = rayon::current_num_threads();
    if s.batch < threads {
        // Few images (batch-1 latency): each image's channels, positions and output channels
        // are split over the pool; every value is computed as in the batched path.
        let mut v = vec![0f32; positions * s.cin * len];
        let mut m = vec![0f32; positions * s.cout * len];
        for (o, xi) in out.chunks_mut(out_img).zip(x.chunks(in_img)) {
            PositionRows::new(&mut v, positions, len)
                .collect::<Vec<_>>()
                .into_par_iter()
                .zip(xi.par_chunks(s.h * s.w))
                .for_each_init(
                    tiling::InputScratch::default,
                    |scratch, (mut rows, plane)| {
                        tiling.transform_input(plane, &s, &mut rows[..positions], scratch)
                    },
                );
            m.par_chunks_mut(s.cout * len)
                .enumerate()
                .for_each(|(position, m)| tiling::products(&u, &v, &s, len, position, m));
            o.par_chunks_mut(out_plane).enumerate().for_each_init(
                PlaneScratch::default,
                |scratch, (co, plane)| {
                    let plane = Slot::zeroed(plane);
                    output_channel(tiling, &m, &s, 1, co, 0, &channel, pool, plane, scratch)
                },
            );
        }
        return;
    }
    let group = images_per_gemm(len, positions);
    let (v_len, m_len) = (
        positions * s.cin * group * len,
        positions * s.cout * group * len,
    );
    out.par_chunks_mut(group * out_img)
        .zip(x.par_chunks(group * in_img))
        .for_each(|(o, x)| {
            let images = o.len() / out_img;
            with_scratch(v_len + m_len, |buffer| {
                let (v, m) = buffer.split_at_mut(v_len);
                let mut scratch = tiling::InputScratch::default();
                // A last, partial group leaves its missing images' slots as they were: their
                // products are computed and never read.
                let mut v_rows = PositionRows::new(v, positions, len);
                let mut index = 0;
                while let Some(rows) = v_rows.next_rows() {
                    let (ci, image) = (index / group, index % group);
                    if image < images {
                        let plane = &x[image * in_img + ci * s.h * s.w..][..s.h * s.w];
                        tiling.transform_input(plane, &s, rows, &mut scratch);
                    }
                    index += 1;
                }
                for (position, m) in m.chunks_mut(s.cout * group * len).enumerate() {
                    tiling::products(&u, v, &s, group * len, position, m);
                }
                let mut scratch = PlaneScratch::default();
                for (image, o) in o.chunks_mut(out_img).enumerate() {
                    for (co, plane) in o.chunks_mut(out_plane).enumerate() {
                        let plane = Slot::zeroed(plane);
                        let scratch = &mut scratch;
                        output_channel(
                            tiling, m, &s, group, co, image, &channel, pool, plane, scratch,
                        );
                    }
                }
            })
        });
}

/// One thread's scratch for [`output_channel`]: the inverse transform's rows, and the whole
/// output plane when it is pooled.
#[derive(Default)]
struct PlaneScratch {
    rows: Vec<f32>,
    plane: Vec<f32>,
}

/// Output channel `co` of image `image` of a group into `plane` (oh, ow), from the products
/// `m` (XI, cout, group x slots): the inverse transform, then the channel's bias and slope;
/// with `pool`, the plane is computed into scratch and `plane` gets it pooled.
#[allow(clippy::too_many_arguments)]
fn output_channel(
    tiling: Tiling,
    m: &[f32],
    s: &ConvShape,
    group: usize,
    co: usize,
    image: usize,
    channel: &impl Fn(usize) -> (f32, f32),
    pool: Option<PoolShape>,
    plane: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    let (bias, slope) = channel(co);
    let rows = &mut scratch.rows;
    let Some(pool) = pool else {
        return tiling.output_channel(m, s, group, image, co, bias, slope, plane, rows);
    };
    let full = &mut scratch.plane;
    full.resize(s.out_h() * s.out_w(), 0.0);
    tiling.output_channel(m, s, group, image, co, bias, slope, full, rows);
    pool_planes(full, &pool, plane);
}

/// Side of [`transpose`]'s blocks: 16 x 16 f32, read row by row into a fixed-size block and
/// written column by column, which the compiler turns into shuffles in registers.
const TRANSPOSE_BLOCK: usize = 16;

/// `dst` (columns, rows) = the transpose of `src` (rows, columns), both row-major: whole
/// blocks in registers, then the edges value by value (2-3x faster than a value-by-value
/// loop over 16 x 16 blocks: results/bench/transpose-blocks.txt).
fn transpose(src: &[f32], rows: usize, columns: usize, dst: &mut [f32]) {
    const B: usize = TRANSPOSE_BLOCK;
    assert!(src.len() == rows * columns && dst.len() == rows * columns);
    let (whole_rows, whole_columns) = (rows / B * B, columns / B * B);
    for r0 in (0..whole_rows).step_by(B) {
        for c0 in (0..whole_columns).step_by(B) {
            let block: [[f32; B]; B] = std::array::from_fn(|i| {
                src[(r0 + i) * columns + c0..][..B]
                    .try_into()
                    .expect("a whole block row")
            });
            for j in 0..B {
                let out: &mut [f32; B] = (&mut dst[(c0 + j) * rows + r0..][..B])
                    .try_into()
                    .expect("a whole block column");
                for (i, value) in out.iter_mut().enumerate() {
                    *value = block[i][j];
                }
            }
        }
    }
    // The edges: the whole-block rows' last columns, then every column of the last rows.
    for r in 0..rows {
        let first = if r < whole_rows { whole_columns } else { 0 };
        for c in first..columns {
            dst[c * rows + r] = src[r * columns + c];
        }
    }
}

/// Convolution weight gradient `dw` (cout, cin, 3, 3) from the input `x` (batch, cin, h, w)
/// and the output's gradient `dy` (batch, cout, oh, ow) (chosen for the shapes that
/// [`suits_grad_weight`]): summed
/// over fixed groups of [`GRADIENT_GROUP`] images, then over the groups in order.
pub(crate) fn grad_weight(x: &[f32], dy: &[f32], s: ConvShape, dw: &mut [f32]) {
    assert!(s.k == 3 && s.supported(), "a 3x3 convolution");
    let tiling = Tiling::for_shape(&s);
    let (ohw, in_img) = (s.out_h() * s.out_w(), s.cin * s.h * s.w);
    let out_img = s.cout * ohw;
    assert_eq!(x.len(), s.batch * in_img);
    assert_eq!(dy.len(), s.batch * out_img);
    assert_eq!(dw.len(), s.cout * s.cin * 9);
    let (positions, len) = (tiling.positions(), tiling.slots(&s));
    let group = images_per_gemm(len, positions).min(GRADIENT_GROUP);
    let n = group * len;
    let (v_len, dm_len) = (positions * s.cin * n, positions * n * s.cout);
    // dUᵀ (positions, cin, cout) of each group of GRADIENT_GROUP images.
    let partials: Vec<Vec<f32>> = x
        .par_chunks(GRADIENT_GROUP * in_img)
        .zip(dy.par_chunks(GRADIENT_GROUP * out_img))
        .map(|(x, dy)| {
            let mut du_t = vec![0f32; positions * s.cin * s.cout];
            with_scratch(v_len + dm_len + out_img, |buffer| {
                let (v, rest) = buffer.split_at_mut(v_len);
                let (dm, dy_t) = rest.split_at_mut(dm_len);
                let mut scratch = tiling::InputScratch::default();
                let images = x.len() / in_img;
                for first in (0..images).step_by(group) {
                    let count = group.min(images - first);
                    // V (positions, cin, group x slots), with zeros for a partial group's
                    // missing images, whose dm is zero too.
                    let mut v_rows = PositionRows::new(v, positions, len);
                    let mut index = 0;
                    while let Some(rows) = v_rows.next_rows() {
                        let (ci, image) = (index / group, index % group);
                        index += 1;
                        if image < count {
                            let plane =
                                &x[(first + image) * in_img + ci * s.h * s.w..][..s.h * s.w];
                            tiling.transform_input(plane, &s, rows, &mut scratch);
                        } else {
                            rows.iter_mut().for_each(|row| row.fill(0.0));
                        }
                    }
                    // dM (positions, group x slots, cout): each image's slots, channels last.
                    let mut dm_rows = PositionRows::new(dm, positions, len * s.cout);
                    let mut image = 0;
                    while let Some(rows) = dm_rows.next_rows() {
                        if image < count {
                            let dyi = &dy[(first + image) * out_img..][..out_img];
                            transpose(dyi, s.cout, ohw, dy_t);
                            tiling.transform_output_gradient(dy_t, &s, rows);
                        } else {
                            rows.iter_mut().for_each(|row| row.fill(0.0));
                        }
                        image += 1;
                    }
                    // dUᵀ[xi] (cin, cout) += V[xi] (cin, n) dM[xi] (n, cout).
                    for (xi, du) in du_t.chunks_mut(s.cin * s.cout).enumerate() {
                        matmul(
                            (s.cin, s.cout, n),
                            du,
                            s.cout,
                            true,
                            &v[xi * s.cin * n..][..s.cin * n],
                            (n, 1),
                            &dm[xi * n * s.cout..][..n * s.cout],
                            (s.cout, 1),
                            Parallelism::None,
                        );
                    }
                }
            });
            du_t
        })
        .collect();
    // Groups summed in order, then dg = Gᵀ dU G per filter.
    let (cin, cout) = (s.cin, s.cout);
    let mut du_t = vec![0f32; positions * cin * cout];
    ordered_sum(partials.iter().map(Vec::as_slice), &mut du_t);
    dw.par_chunks_mut(cin * 9)
        .enumerate()
        .for_each(|(co, filters)| {
            for (ci, g) in filters.chunks_mut(9).enumerate() {
                let du: [f32; tiling::MAX_POSITIONS] =
                    std::array::from_fn(|xi| match xi < positions {
                        true => du_t[(xi * cin + ci) * cout + co],
                        false => 0.0,
                    });
                g.copy_from_slice(&tiling.filter_gradient(&du[..positions]));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Input pixel (b, ci) at padded coordinates (py, px): zero in the padding.
    fn input_at(x: &[f32], s: &ConvShape, b: usize, ci: usize, py: usize, px: usize) -> f32 {
        let inside = |p: usize, side: usize| p.checked_sub(s.pad).filter(|&i| i < side);
        match (inside(py, s.h), inside(px, s.w)) {
            (Some(iy), Some(ix)) => x[((b * s.cin + ci) * s.h + iy) * s.w + ix],
            _ => 0.0,
        }
    }

    /// The direct definition: out[b][co][y][x] = Σ x[b][ci][y + ky - pad][x + kx - pad] w.
    fn reference_forward(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut out = vec![0f32; s.batch * s.cout * oh * ow];
        for b in 0..s.batch {
            for co in 0..s.cout {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut sum = 0f64;
                        for ci in 0..s.cin {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    sum += (input_at(x, s, b, ci, y + ky, xo + kx)
                                        * w[((co * s.cin + ci) * 3 + ky) * 3 + kx])
                                        as f64;
                                }
                            }
                        }
                        out[((b * s.cout + co) * oh + y) * ow + xo] = sum as f32;
                    }
                }
            }
        }
        out
    }

    /// dw[co][ci][ky][kx] = Σ over images and outputs of dy[b][co][y][x] x[b][ci][..].
    fn reference_grad_weight(x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut dw = vec![0f32; s.cout * s.cin * 9];
        for co in 0..s.cout {
            for ci in 0..s.cin {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let mut sum = 0f64;
                        for b in 0..s.batch {
                            for y in 0..oh {
                                for xo in 0..ow {
                                    sum += (dy[((b * s.cout + co) * oh + y) * ow + xo]
                                        * input_at(x, s, b, ci, y + ky, xo + kx))
                                        as f64;
                                }
                            }
                        }
                        dw[((co * s.cin + ci) * 3 + ky) * 3 + kx] = sum as f32;
                    }
                }
            }
        }
        dw
    }

    /// Within `tolerance` of the largest expected value.
    fn close_within(tolerance: f32, actual: &[f32], expected: &[f32], what: &str) {
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in actual.iter().zip(expected).enumerate() {
            assert!((a - b).abs() <= tolerance * scale, "{what} {i}: {a} vs {b}");
        }
    }

    /// Batches that fill several gemm groups and a partial one, batch 1 (the split path),
    /// odd sizes (partial tiles), no padding, and the vgg-bn layer shapes; F(4x4, 3x3) from
    /// 24 x 24 outputs (partial tiles, no padding, and 128 input channels, the most it takes)
    /// and F(2x2, 3x3) below.
    fn shapes() -> Vec<ConvShape> {
        let shape = |batch, cin, h, w, cout, pad| ConvShape {
            batch,
            cin,
            h,
            w,
            cout,
            k: 3,
            pad,
        };
        vec![
            shape(11, 8, 12, 12, 16, 1),
            shape(1, 16, 24, 24, 8, 1),
            shape(3, 9, 7, 9, 10, 1),
            shape(5, 8, 6, 5, 8, 0),
            shape(2, 32, 48, 48, 32, 1),
            shape(19, 16, 6, 6, 24, 1),
            shape(3, 8, 25, 27, 9, 1),
            shape(2, 8, 26, 30, 8, 0),
            shape(1, 128, 24, 24, 16, 1),
        ]
    }

    /// Every value lands at its transposed place, for whole blocks, partial blocks on either
    /// side, and fewer rows or columns than one block.
    #[test]
    fn transpose_moves_every_value_to_its_transposed_place() {
        for (rows, columns) in [(32, 2304), (64, 576), (17, 33), (5, 40), (40, 5), (1, 1)] {
            let src: Vec<f32> = (0..rows * columns).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * columns];
            transpose(&src, rows, columns, &mut dst);
            for r in 0..rows {
                for c in 0..columns {
                    let (got, want) = (dst[c * rows + r], src[r * columns + c]);
                    assert_eq!(got, want, "{rows}x{columns} at ({r}, {c})");
                }
            }
        }
    }

    /// Forward with bias and PReLU, and with a scale folded in and ReLU, against the direct
    /// definition: within 1e-5 of the largest output.
    #[test]
    fn forward_matches_the_definition() {
        for (n, s) in shapes().into_iter().enumerate() {
            let x = values(s.batch * s.cin * s.h * s.w, 10 + n as u64);
            let w = values(s.cout * s.cin * 9, 20 + n as u64);
            let (bias, slope) = (values(s.cout, 30), values(s.cout, 31));
            let scale = values(s.cout, 32);
            let conv = reference_forward(&x, &w, &s);
            let hw = s.out_h() * s.out_w();
            let mut out = vec![f32::NAN; conv.len()];
            forward(&x, &w, None, |co| (bias[co], slope[co]), s, None, &mut out);
            let expected: Vec<f32> = conv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let co = (i / hw) % s.cout;
                    let v = v + bias[co];
                    if v > 0.0 { v } else { v * slope[co] }
                })
                .collect();
            close_within(1e-5, &out, &expected, &format!("{s:?} prelu"));
            forward(
                &x,
                &w,
                Some(&scale),
                |co| (bias[co], 0.0),
                s,
                None,
                &mut out,
            );
            let expected: Vec<f32> = conv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let co = (i / hw) % s.cout;
                    (v * scale[co] + bias[co]).max(0.0)
                })
                .collect();
            close_within(1e-5, &out, &expected, &format!("{s:?} scale relu"));
        }
    }

    /// The weight gradient against the direct definition, within 1e-5 of the largest value
    /// (3e-5 by F(4x4, 3x3)).
    #[test]
    fn grad_weight_matches_the_definition() {
        for (n, s) in shapes().into_iter().enumerate() {
            let x = values(s.batch * s.cin * s.h * s.w, 40 + n as u64);
            let dy = values(s.batch * s.cout * s.out_h() * s.out_w(), 50 + n as u64);
            let mut dw = vec![f32::NAN; s.cout * s.cin * 9];
            grad_weight(&x, &dy, s, &mut dw);
            // F(4x4, 3x3) rounds more over the long sums of a weight gradient: 1.2e-5 of the
            // largest value for 32 channels on 48 x 48 over two images (F(2x2, 3x3): below
            // 1e-6).
            let tolerance = match Tiling::for_shape(&s) {
                Tiling::F2 => 1e-5,
                Tiling::F4 => 3e-5,
            };
            let expected = reference_grad_weight(&x, &dy, &s);
            close_within(tolerance, &dw, &expected, &format!("{s:?}"));
        }
    }

    /// The same bits whatever the number of threads.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // By F(2x2, 3x3) (12 x 12) and by F(4x4, 3x3) (24 x 24).
        for side in [12, 24] {
            let s = ConvShape {
                batch: 13,
                cin: 16,
                h: side,
                w: side,
                cout: 16,
                k: 3,
                pad: 1,
            };
            let plane = side * side;
            let x = values(s.batch * s.cin * plane, 60);
            let w = values(s.cout * s.cin * 9, 61);
            let dy = values(s.batch * s.cout * plane, 62);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut out = vec![0f32; dy.len()];
                    forward(&x, &w, None, |_| (0.0, 1.0), s, None, &mut out);
                    let mut dw = vec![0f32; w.len()];
                    grad_weight(&x, &dy, s, &mut dw);
                    (out, dw)
                })
            };
            let (one, three) = (run(1), run(3));
            let same =
                |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same(&one.0, &three.0), "forward, {side} x {side}");
            assert!(same(&one.1, &three.1), "grad-weight, {side} x {side}");
        }
        let s = ConvShape {
            batch: 13,
            cin: 16,
            h: 12,
            w: 12,
            cout: 16,
            k: 3,
            pad: 1,
        };
        let w = values(s.cout * s.cin * 9, 61);
        // Two images: grouped in one gemm on one thread, split inside each image on three;
        // by F(2x2, 3x3) (12 x 12) and by F(4x4, 3x3) (24 x 24).
        for side in [12, 24] {
            let s = ConvShape {
                batch: 2,
                h: side,
                w: side,
                ..s
            };
            let x = values(s.batch * s.cin * side * side, 63);
            let plane = side * side;
            let forward_with = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![0f32; s.batch * s.cout * plane];
                pool.install(|| forward(&x, &w, None, |_| (0.0, 1.0), s, None, &mut out));
                out
            };
            let (one, three) = (forward_with(1), forward_with(3));
            assert!(
                one.iter()
                    .zip(&three)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{side} x {side}"
            );
        }
    }
}
