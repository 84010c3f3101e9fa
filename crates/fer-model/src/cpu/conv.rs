//! Convolution on the CPU: forward (with bias and PReLU, or a frozen batch norm and ReLU, fused
//! for inference, optionally with the max pool after it) by im2col + gemm, or for 3x3 kernels
//! by Winograd ([`winograd_conv`]),
//! grad-input as a flipped-kernel convolution, grad-weight as im2col + gemm, and the direct
//! single-plane convolution of a first layer at batch 1.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::{matmul, matmul_overwrite, with_scratch};
use super::pool::pool_forward;
use super::portable;
use super::prelu::prelu_planes;
use super::reduce::ordered_sum;
use super::shape::{ConvShape, PoolShape};
use super::uninit::{self, Slot};
use super::winograd_conv;

/// Images per group whose weight gradients are summed together before the ordered reduction.
const GRAD_GROUP: usize = 8;

/// Unfolds one image (cin, h, w) into `col` (cin*k*k, oh*ow), zeros where the window reads the
/// padding.
fn im2col(x: &[f32], s: &ConvShape, col: &mut [f32]) {
    let hw = s.out_h() * s.out_w();
    for (r, row) in col.chunks_mut(hw).enumerate() {
        im2col_row(x, s, r, row);
    }
}

/// Row `r` = (ci, ky, kx) of the im2col matrix: input channel ci shifted by (ky, kx).
pub(crate) fn im2col_row(x: &[f32], s: &ConvShape, r: usize, row: &mut [f32]) {
    if s.out_w() == s.w {
        im2col_row_same(x, s, r, row);
    } else {
        im2col_row_by_lines(x, s, r, row);
    }
}

/// The plane of row `r`'s input channel, and the output columns [x0, x1) whose input column
/// lies inside the image (the rest read the padding).
fn im2col_row_source<'a>(x: &'a [f32], s: &ConvShape, r: usize) -> (&'a [f32], usize, usize) {
    let (h, w, k, pad) = (s.h, s.w, s.k, s.pad);
    let (ci, kx) = (r / (k * k), r % k);
    let ow = s.out_w();
    let x0 = pad.saturating_sub(kx).min(ow);
    let x1 = (w + pad).saturating_sub(kx).min(ow).max(x0);
    (&x[ci * h * w..(ci + 1) * h * w], x0, x1)
}

/// [`im2col_row`], one output line at a time: any geometry.
fn im2col_row_by_lines(x: &[f32], s: &ConvShape, r: usize, row: &mut [f32]) {
    let (h, w, k, pad) = (s.h, s.w, s.k, s.pad);
    let (oh, ow) = (s.out_h(), s.out_w());
    let (ky, kx) = ((r / k) % k, r % k);
    let (plane, x0, x1) = im2col_row_source(x, s, r);
    for oy in 0..oh {
        let dst = &mut row[oy * ow..(oy + 1) * ow];
        let iy = oy + ky;
        if iy < pad || iy - pad >= h {
            dst.fill(0.0);
            continue;
        }
        let src = &plane[(iy - pad) * w..(iy - pad + 1) * w];
        dst[..x0].fill(0.0);
        dst[x1..].fill(0.0);
        if x1 > x0 {
            let ix0 = x0 + kx - pad;
            dst[x0..x1].copy_from_slice(&src[ix0..ix0 + (x1 - x0)]);
        }
    }
}

/// [`im2col_row`] for a "same" convolution (output as wide as the input): the output lines
/// whose input line is inside the image are, end to end, one run of the plane shifted by
/// ky - pad lines and kx - pad columns. One copy, then the columns that read across the
/// image's side edges are zeroed; several times faster than line by line on 48-wide planes.
fn im2col_row_same(x: &[f32], s: &ConvShape, r: usize, row: &mut [f32]) {
    let (h, w, k, pad) = (s.h, s.w, s.k, s.pad);
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(ow, w);
    let (ky, kx) = ((r / k) % k, r % k);
    let (plane, x0, x1) = im2col_row_source(x, s, r);
    let inside_lo = pad.saturating_sub(ky).min(oh);
    let inside_hi = (h + pad).saturating_sub(ky).clamp(inside_lo, oh);
    row[..inside_lo * ow].fill(0.0);
    row[inside_hi * ow..].fill(0.0);
    let dst = &mut row[inside_lo * ow..inside_hi * ow];
    if dst.is_empty() {
        return;
    }
    // The plane index of dst[0]; dst's run may reach beyond either end of the plane, and the
    // values there are side-edge columns, zeroed below.
    let start = ((inside_lo + ky - pad) * w + kx) as isize - pad as isize;
    let (end, len) = (start + dst.len() as isize, plane.len() as isize);
    let from = start.clamp(0, len);
    let to = end.clamp(from, len);
    let skip = ((from - start) as usize).min(dst.len());
    dst[skip..skip + (to - from) as usize].copy_from_slice(&plane[from as usize..to as usize]);
    for line in dst.chunks_exact_mut(ow) {
        line[..x0].fill(0.0);
        line[x1..].fill(0.0);
    }
}

/// The transposed im2col matrix of one image for a 3x3 kernel: `colt` (oh*ow, cin*9), row
/// (oy, ox) holding the patch of that output pixel in (ci, ky, kx) order, zeros where the
/// window reads the padding. Grad-weight's gemm runs several times faster on this layout
/// (its inner dimension, the pixels, then walks the patch matrix along rows).
fn im2col_transposed_3x3(x: &[f32], s: &ConvShape, colt: &mut [f32]) {
    const K: usize = 3;
    assert_eq!(s.k, K);
    let (h, w, pad) = (s.h, s.w, s.pad);
    let (oh, ow, patch) = (s.out_h(), s.out_w(), s.patch());
    assert_eq!(colt.len(), oh * ow * patch);
    for (p, row) in colt.chunks_exact_mut(patch).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        // The window's three columns all inside the image: plain copies.
        let inside = ox >= pad && ox + K <= w + pad;
        for (ci, rows) in row.chunks_exact_mut(K * K).enumerate() {
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for (ky, dst) in rows.chunks_exact_mut(K).enumerate() {
                let iy = oy + ky;
                if iy < pad || iy - pad >= h {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[(iy - pad) * w..(iy - pad + 1) * w];
                if inside {
                    let window: &[f32; K] = src[ox - pad..ox - pad + K].try_into().expect("3");
                    dst.copy_from_slice(window);
                } else {
                    for (kx, d) in dst.iter_mut().enumerate() {
                        let ix = ox + kx;
                        *d = if ix >= pad && ix - pad < w {
                            src[ix - pad]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Convolution forward: `out` (batch, cout, oh, ow) from `x` (batch, cin, h, w), `weight`
/// (cout, cin, k, k) and an optional `bias` (cout).
pub(crate) fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    s: ConvShape,
    out: &mut [impl Slot],
) {
    conv2d_activation_forward(x, weight, Epilogue::Bias { bias, alpha: None }, s, out);
}

/// Convolution, bias and PReLU forward in one pass over each output: `alpha` holds one slope
/// or one per output channel. Equals [`conv2d_forward`] followed by
/// [`prelu_forward`](crate::cpu::prelu::prelu_forward).
pub(crate) fn conv2d_prelu_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: ConvShape,
    out: &mut [impl Slot],
) {
    assert!(
        alpha.len() == 1 || alpha.len() == s.cout,
        "one slope or one per channel"
    );
    let epilogue = Epilogue::Bias {
        bias: Some(bias),
        alpha: Some(alpha),
    };
    conv2d_activation_forward(x, weight, epilogue, s, out);
}

/// Convolution (no bias), then `* scale + shift` per output channel, then ReLU, in one pass
/// over each output: a batch norm with frozen statistics folded into the convolution's
/// output, as in inference. Equals [`conv2d_forward`] followed by the affine map and ReLU.
///
/// With `max_pool`, each output plane is then max-pooled over 2 x 2 windows at stride 2
/// (floor: an odd last row or column is dropped) and `out` is (batch, cout, oh / 2, ow / 2).
/// Winograd shapes pool each plane as soon as it is computed, while it is in cache, so the
/// whole output is never written; the others compute it, then pool it. The same values as
/// the two passes.
pub(crate) fn conv2d_scale_shift_relu_forward(
    x: &[f32],
    weight: &[f32],
    scale: &[f32],
    shift: &[f32],
    s: ConvShape,
    max_pool: bool,
    out: &mut [impl Slot],
) {
    assert!(scale.len() == s.cout && shift.len() == s.cout);
    let epilogue = Epilogue::ScaleShiftRelu { scale, shift };
    if !max_pool {
        return conv2d_activation_forward(x, weight, epilogue, s, out);
    }
    let pool = PoolShape::max_2x2(1, s.out_h(), s.out_w());
    assert!(
        s.out_h() >= 2 && s.out_w() >= 2,
        "an output of at least 2 x 2"
    );
    let pooled = pool.out_h() * pool.out_w();
    assert_eq!(out.len(), s.batch * s.cout * pooled);
    if winograd_conv::suits(&s) {
        let channel = |co: usize| (shift[co], 0.0);
        return winograd_conv::forward(x, weight, Some(scale), channel, s, Some(pool), out);
    }
    // SAFETY: the forward kernel initialises its whole output.
    let full = unsafe {
        uninit::written(s.batch * s.cout * s.out_h() * s.out_w(), |full| {
            conv2d_activation_forward(x, weight, epilogue, s, full)
        })
    };
    let planes = PoolShape::max_2x2(s.batch * s.cout, s.out_h(), s.out_w());
    pool_forward(&full, planes, out, None);
}

/// What is applied to each output channel's plane right after its gemm, while it is in cache.
#[derive(Debug, Clone, Copy)]
enum Epilogue<'a> {
    /// `+ bias` (one per output channel), then PReLU with `alpha` (one slope or one per
    /// output channel) when given.
    Bias {
        bias: Option<&'a [f32]>,
        alpha: Option<&'a [f32]>,
    },
    /// `relu(value * scale + shift)`, one scale and shift per output channel.
    ScaleShiftRelu { scale: &'a [f32], shift: &'a [f32] },
}

impl Epilogue<'_> {
    /// Whether the gemm adds to the output (prefilled with the bias) rather than replacing it.
    fn accumulates(&self) -> bool {
        matches!(self, Epilogue::Bias { bias: Some(_), .. })
    }

    /// Before the gemm: output channels `[c0, c0 + rows)`, planes of `hw`, get their bias.
    fn prefill(&self, c0: usize, planes: &mut [f32], hw: usize) {
        if let Epilogue::Bias {
            bias: Some(bias), ..
        } = self
        {
            for (plane, &b) in planes.chunks_mut(hw).zip(&bias[c0..]) {
                plane.fill(b);
            }
        }
    }

    /// After the gemm: the activation of output channels from `c0`.
    fn finish(&self, c0: usize, planes: &mut [f32], hw: usize) {
        let rows = planes.len() / hw;
        match *self {
            Epilogue::Bias { alpha: None, .. } => {}
            Epilogue::Bias {
                alpha: Some(alpha), ..
            } => {
                let slopes = if alpha.len() == 1 {
                    alpha
                } else {
                    &alpha[c0..c0 + rows]
                };
                prelu_planes(planes, hw, slopes);
            }
            Epilogue::ScaleShiftRelu { scale, shift } => {
                for ((plane, &a), &b) in planes.chunks_mut(hw).zip(&scale[c0..]).zip(&shift[c0..]) {
                    for v in plane {
                        let y = *v * a + b;
                        *v = if y > 0.0 { y } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Output channels per task when one image is split over the pool: a multiple of 16 (an
/// AVX-512 register of f32), about an even share per thread.
fn channel_block(cout: usize, threads: usize) -> usize {
    cout.div_ceil(threads).div_ceil(16) * 16
}

/// Output channels `[c0, c0 + out.len() / (oh * ow))` of a convolution of ONE input plane
/// `x` (h, w) without padding, straight from the plane (no im2col): bias, the k x k
/// multiply-adds in (ky, kx) order, then PReLU (one slope, or one per output channel). Four
/// channels share each input load; 16 output columns per register. The first layer at batch
/// 1, where im2col's gemm has an inner dimension of only k * k.
pub(crate) fn conv_single_plane(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    c0: usize,
    out: &mut [f32],
) {
    assert!(s.cin == 1 && s.pad == 0 && s.batch == 1 && s.out_w() >= 16);
    assert!(s.k == 3 || s.k == 5, "3x3 or 5x5 kernels");
    assert_eq!(x.len(), s.h * s.w);
    assert_eq!(weight.len(), s.cout * s.k * s.k);
    simd_return!(conv::conv_single_plane(x, weight, bias, alpha, s, c0, out));
    portable::conv::conv_single_plane_with::<false>(x, weight, bias, alpha, s, c0, out)
}

fn conv2d_activation_forward(
    x: &[f32],
    weight: &[f32],
    epilogue: Epilogue,
    s: ConvShape,
    out: &mut [impl Slot],
) {
    let hw = s.out_h() * s.out_w();
    let (in_img, out_img, patch) = (s.cin * s.h * s.w, s.cout * hw, s.patch());
    assert_eq!(x.len(), s.batch * in_img);
    assert_eq!(weight.len(), s.cout * patch);
    assert_eq!(out.len(), s.batch * out_img);
    if winograd_conv::suits(&s) {
        return match epilogue {
            Epilogue::Bias { bias, alpha } => {
                let slope = |co: usize| match alpha {
                    None => 1.0,
                    Some([one]) => *one,
                    Some(slopes) => slopes[co],
                };
                let bias = |co: usize| bias.map_or(0.0, |b| b[co]);
                winograd_conv::forward(x, weight, None, |co| (bias(co), slope(co)), s, None, out)
            }
            Epilogue::ScaleShiftRelu { scale, shift } => {
                winograd_conv::forward(x, weight, Some(scale), |co| (shift[co], 0.0), s, None, out)
            }
        };
    }
    // Channels [c0, c0 + o.len() / hw) of one image's output from its im2col matrix `src`.
    // Without a bias to add to, gemm overwrites the output: no zeroing first.
    let channels = |src: &[f32], c0: usize, o: &mut [MaybeUninit<f32>], par: Parallelism| {
        let rows = o.len() / hw;
        let lhs = &weight[c0 * patch..(c0 + rows) * patch];
        let o = if epilogue.accumulates() {
            let o = Slot::zeroed(o);
            epilogue.prefill(c0, o, hw);
            matmul(
                (rows, hw, patch),
                o,
                hw,
                true,
                lhs,
                (patch, 1),
                src,
                (hw, 1),
                par,
            );
            o
        } else {
            matmul_overwrite((rows, hw, patch), o, lhs, (patch, 1), src, (hw, 1), par)
        };
        epilogue.finish(c0, o, hw);
    };
    let threads = rayon::current_num_threads();
    let col_len = if s.direct() { 0 } else { patch * hw };
    if s.batch >= threads {
        out.par_chunks_mut(out_img)
            .zip(x.par_chunks(in_img))
            .for_each(|(o, xi)| {
                with_scratch(col_len, |col| {
                    let src: &[f32] = if s.direct() {
                        xi
                    } else {
                        im2col(xi, &s, col);
                        col
                    };
                    // SAFETY: `channels` writes only values.
                    channels(src, 0, unsafe { Slot::as_uninit(o) }, Parallelism::None)
                });
            });
        return;
    }
    // Few images (batch-1 latency): each image's im2col rows, then its output channels, are
    // split over the pool. Every output value is still one gemm dot product over the whole
    // patch, so the split changes no result.
    let rows_per_task = patch.div_ceil(threads);
    let block = channel_block(s.cout, threads);
    with_scratch(col_len, |col| {
        for (o, xi) in out.chunks_mut(out_img).zip(x.chunks(in_img)) {
            let src: &[f32] = if s.direct() {
                xi
            } else {
                col.par_chunks_mut(rows_per_task * hw)
                    .enumerate()
                    .for_each(|(task, rows)| {
                        for (r, row) in rows.chunks_mut(hw).enumerate() {
                            im2col_row(xi, &s, task * rows_per_task + r, row);
                        }
                    });
                col
            };
            o.par_chunks_mut(block * hw)
                .enumerate()
                .for_each(|(task, o)| {
                    // SAFETY: `channels` writes only values.
                    let o = unsafe { Slot::as_uninit(o) };
                    channels(src, task * block, o, Parallelism::None)
                });
        }
    });
}

/// Convolution grad-input: `dx` (batch, cin, h, w) from `dy` (batch, cout, oh, ow): a
/// convolution of `dy`, padded by k - 1 - pad, with the flipped and transposed kernel.
pub(crate) fn conv2d_grad_input(dy: &[f32], weight: &[f32], s: ConvShape, dx: &mut [impl Slot]) {
    let k = s.k;
    let mut flipped = vec![0f32; weight.len()];
    for co in 0..s.cout {
        for ci in 0..s.cin {
            for ky in 0..k {
                for kx in 0..k {
                    flipped[((ci * s.cout + co) * k + (k - 1 - ky)) * k + (k - 1 - kx)] =
                        weight[((co * s.cin + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    let transposed = ConvShape {
        batch: s.batch,
        cin: s.cout,
        h: s.out_h(),
        w: s.out_w(),
        cout: s.cin,
        k,
        pad: k - 1 - s.pad,
    };
    conv2d_forward(dy, &flipped, None, transposed, dx);
}

/// Convolution grad-weight and, when `db` is given, grad-bias: `dw` (cout, cin, k, k) and `db`
/// (cout) from the input `x` and `dy`, summed over the batch in fixed groups, then in group
/// order.
pub(crate) fn conv2d_grad_weight(
    x: &[f32],
    dy: &[f32],
    s: ConvShape,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let hw = s.out_h() * s.out_w();
    let (in_img, out_img, patch) = (s.cin * s.h * s.w, s.cout * hw, s.patch());
    assert_eq!(x.len(), s.batch * in_img);
    assert_eq!(dy.len(), s.batch * out_img);
    assert_eq!(dw.len(), s.cout * patch);
    if winograd_conv::suits_grad_weight(&s) {
        winograd_conv::grad_weight(x, dy, s, dw);
        if let Some(db) = db {
            // Each channel's sum over the images in order, then over its plane.
            db.par_iter_mut().enumerate().for_each(|(co, b)| {
                *b = dy
                    .chunks(out_img)
                    .map(|image| image[co * hw..(co + 1) * hw].iter().sum::<f32>())
                    .sum();
            });
        }
        return;
    }
    let col_len = if s.direct() { 0 } else { patch * hw };
    let with_bias = db.is_some();
    let groups = s.batch.div_ceil(GRAD_GROUP);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..groups)
        .into_par_iter()
        .map(|g| {
            with_scratch(col_len, |col| {
                let mut pb = vec![0f32; s.cout];
                let fill = |slots: &mut [MaybeUninit<f32>]| {
                    // The group's first product overwrites pw (no zeroing pass); the others add.
                    let mut first = Some(slots);
                    let mut pw: &mut [f32] = &mut [];
                    for i in g * GRAD_GROUP..((g + 1) * GRAD_GROUP).min(s.batch) {
                        let xi = &x[i * in_img..(i + 1) * in_img];
                        let dyi = &dy[i * out_img..(i + 1) * out_img];
                        // pw (cout x patch) += dy_i (cout x hw) * col^T (hw x patch), with col^T
                        // built as such for 3x3 kernels, else read transposed from im2col.
                        let (src, strides): (&[f32], _) = if s.direct() {
                            (xi, (1, hw))
                        } else if s.k == 3 {
                            im2col_transposed_3x3(xi, &s, col);
                            (col, (patch, 1))
                        } else {
                            im2col(xi, &s, col);
                            (col, (1, hw))
                        };
                        let dims = (s.cout, patch, hw);
                        match first.take() {
                            Some(slots) => {
                                pw = matmul_overwrite(
                                    dims,
                                    slots,
                                    dyi,
                                    (hw, 1),
                                    src,
                                    strides,
                                    Parallelism::None,
                                )
                            }
                            None => matmul(
                                dims,
                                pw,
                                patch,
                                true,
                                dyi,
                                (hw, 1),
                                src,
                                strides,
                                Parallelism::None,
                            ),
                        }
                        if with_bias {
                            for (b, row) in pb.iter_mut().zip(dyi.chunks(hw)) {
                                *b += row.iter().sum::<f32>();
                            }
                        }
                    }
                };
                // SAFETY: a group has at least one image, whose product writes all of pw.
                let pw = unsafe { uninit::written(s.cout * patch, fill) };
                (pw, pb)
            })
        })
        .collect();
    ordered_sum(partials.iter().map(|p| p.0.as_slice()), dw);
    if let Some(db) = db {
        ordered_sum(partials.iter().map(|p| p.1.as_slice()), db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::prelu::prelu_forward;
    use rand::{Rng, SeedableRng};

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// The direct single-plane convolution (the first layer at batch 1) against im2col + gemm +
    /// PReLU, relative error <= 1e-5 of the largest output, on blocks of channels that are not
    /// a whole number of its groups of four.
    #[test]
    fn single_plane_convolution_matches_im2col() {
        for (h, w, cout, k) in [(48, 48, 64, 5), (20, 23, 7, 3)] {
            let s = ConvShape {
                batch: 1,
                cin: 1,
                h,
                w,
                cout,
                k,
                pad: 0,
            };
            let (x, weight, bias) = (values(h * w, 1), values(cout * k * k, 2), values(cout, 3));
            let alpha = values(cout, 4);
            let hw = s.out_h() * s.out_w();
            let mut expected = vec![0f32; cout * hw];
            conv2d_prelu_forward(&x, &weight, &bias, &alpha, s, &mut expected);
            let mut out = vec![f32::NAN; cout * hw];
            let split = 6.min(cout - 1);
            let (first, second) = out.split_at_mut(split * hw);
            conv_single_plane(&x, &weight, &bias, &alpha, &s, 0, first);
            conv_single_plane(&x, &weight, &bias, &alpha, &s, split, second);
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{s:?} output {i}: {a} vs {b}"
                );
            }
        }
    }

    /// The fused convolution + PReLU gives the bits of the convolution followed by PReLU, for
    /// one image split over 2 or 3 threads as for a batch split over images.
    #[test]
    fn fused_conv_prelu_equals_conv_then_prelu_bit_for_bit_on_any_split() {
        let shapes = [
            (1, 1, 48, 48, 64, 5, 0), // the seed CNN's first layer
            (1, 64, 22, 22, 128, 3, 1),
            (3, 8, 10, 10, 40, 3, 1), // 40 channels: a partial last block of 16
            (2, 4, 7, 5, 9, 1, 0),    // 1x1: no im2col
        ];
        for (case, &(batch, cin, h, w, cout, k, pad)) in shapes.iter().enumerate() {
            let s = ConvShape {
                batch,
                cin,
                h,
                w,
                cout,
                k,
                pad,
            };
            let seed = 10 * case as u64;
            let x = values(batch * cin * h * w, seed);
            let weight = values(cout * s.patch(), seed + 1);
            let bias = values(cout, seed + 2);
            let hw = s.out_h() * s.out_w();
            for alpha in [vec![0.25], values(cout, seed + 3)] {
                let in_pool = |threads: usize, f: &(dyn Fn(&mut [f32]) + Sync)| {
                    let mut out = vec![f32::NAN; batch * cout * hw];
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap()
                        .install(|| f(&mut out));
                    out
                };
                let expected = in_pool(1, &|out| {
                    let mut conv = vec![0f32; out.len()];
                    conv2d_forward(&x, &weight, Some(&bias), s, &mut conv);
                    let inner = if alpha.len() == 1 { 1 } else { hw };
                    for (o, c) in out.chunks_mut(cout * hw).zip(conv.chunks(cout * hw)) {
                        prelu_forward(c, &alpha, inner, o);
                    }
                });
                assert!(expected.iter().any(|&v| v < 0.0) && expected.iter().any(|&v| v > 0.0));
                let reference = in_pool(1, &|out| conv2d_forward(&x, &weight, Some(&bias), s, out));
                for threads in [1, 2, 3] {
                    let fused = in_pool(threads, &|out| {
                        conv2d_prelu_forward(&x, &weight, &bias, &alpha, s, out)
                    });
                    assert_eq!(fused, expected, "{s:?}, {threads} threads");
                    let plain = in_pool(threads, &|out| {
                        conv2d_forward(&x, &weight, Some(&bias), s, out)
                    });
                    assert_eq!(plain, reference, "{s:?}, {threads} threads, no PReLU");
                }
            }
        }
    }

    /// The one-copy im2col of a "same" convolution equals the line-by-line one, for every
    /// row of the matrix, kernels 1 to 5, planes down to one pixel wide or high.
    #[test]
    fn same_convolution_im2col_equals_line_by_line() {
        let mut cases = 0;
        for (k, pad) in [(3, 1), (5, 2), (1, 0)] {
            for (h, w) in [(48, 48), (7, 5), (1, 1), (2, 1), (1, 3), (4, 2)] {
                let s = ConvShape {
                    batch: 1,
                    cin: 2,
                    h,
                    w,
                    cout: 1,
                    k,
                    pad,
                };
                if !s.supported() {
                    continue;
                }
                assert_eq!(s.out_w(), w);
                let x = values(s.cin * h * w, 6);
                let hw = s.out_h() * s.out_w();
                for r in 0..s.patch() {
                    let mut fast = vec![f32::NAN; hw];
                    let mut lines = vec![f32::NAN; hw];
                    im2col_row_same(&x, &s, r, &mut fast);
                    im2col_row_by_lines(&x, &s, r, &mut lines);
                    assert_eq!(fast, lines, "{s:?} row {r}");
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 18);
    }

    /// The transposed 3x3 im2col is im2col's matrix transposed, padding and odd sizes included.
    #[test]
    fn transposed_im2col_is_the_transpose_of_im2col() {
        for (cin, h, w, pad) in [(3, 7, 5, 1), (2, 4, 6, 0), (1, 3, 3, 2)] {
            let s = ConvShape {
                batch: 1,
                cin,
                h,
                w,
                cout: 1,
                k: 3,
                pad,
            };
            let x = values(cin * h * w, 5);
            let (hw, patch) = (s.out_h() * s.out_w(), s.patch());
            let mut col = vec![f32::NAN; patch * hw];
            im2col(&x, &s, &mut col);
            let mut colt = vec![f32::NAN; hw * patch];
            im2col_transposed_3x3(&x, &s, &mut colt);
            for r in 0..patch {
                for p in 0..hw {
                    assert_eq!(colt[p * patch + r], col[r * hw + p], "{s:?} ({r}, {p})");
                }
            }
        }
    }
}
