//! CPU kernels on f32 NCHW slices: convolution by im2col + gemm (forward, grad-input,
//! grad-weight), PReLU with its gradient in one pass, zero-padded max/avg pooling (with window
//! indices for training, values only for inference), and a direct single-plane convolution
//! for the first layer at batch 1.
//!
//! Invariants: every kernel is deterministic whatever the thread count or scheduling. Work is
//! split over images (or fixed groups of images) on rayon's pool; a batch smaller than the pool
//! (batch-1 latency) is split inside each image instead, by im2col rows and output channels,
//! so each output is still one dot product over the whole patch; reductions across images
//! (weight, bias and slope gradients) are made per fixed group and summed in group order, and
//! gemm only splits its output, never its inner dimension. Shapes are checked by the callers
//! ([`crate::ops`]); the kernels assert slice lengths (an internal invariant, not user input).

use gemm::Parallelism;
use rayon::prelude::*;

thread_local! {
    /// im2col scratch of the calling thread, reused across calls (never shared).
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch of at least `len` floats (contents unspecified). The
/// buffer is taken out of the thread's slot for the call, so a nested call (rayon work stolen
/// while `f` waits) gets a buffer of its own instead of sharing this one.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buffer = SCRATCH.take();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    SCRATCH.set(buffer);
    result
}

/// Images per group whose weight gradients are summed together before the ordered reduction.
const GRAD_GROUP: usize = 8;

/// Geometry of a stride-1 2-D convolution with zero padding `pad` on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub pad: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.h + 2 * self.pad + 1 - self.k
    }

    pub fn out_w(&self) -> usize {
        self.w + 2 * self.pad + 1 - self.k
    }

    /// Rows of the im2col matrix: cin * k * k.
    pub fn patch(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// Whether the geometry is one these kernels compute (else the caller falls back).
    pub fn supported(&self) -> bool {
        self.k > 0
            && self.pad < self.k
            && self.h + 2 * self.pad >= self.k
            && self.w + 2 * self.pad >= self.k
            && self.batch * self.cin * self.cout > 0
    }

    fn direct(&self) -> bool {
        self.k == 1 && self.pad == 0
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)` with explicit (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, dst_rs, 1) < dst.len(), "gemm dst out of bounds");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        last(m, k, lhs_rs, lhs_cs) < lhs.len(),
        "gemm lhs out of bounds"
    );
    assert!(
        last(k, n, rhs_rs, rhs_cs) < rhs.len(),
        "gemm rhs out of bounds"
    );
    // SAFETY: the three assertions above keep every index gemm touches inside the slices, and
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Unfolds one image (cin, h, w) into `col` (cin*k*k, oh*ow), zeros where the window reads the
/// padding.
fn im2col(x: &[f32], s: &ConvShape, col: &mut [f32]) {
    let hw = s.out_h() * s.out_w();
    for (r, row) in col.chunks_mut(hw).enumerate() {
        im2col_row(x, s, r, row);
    }
}

/// Row `r` = (ci, ky, kx) of the im2col matrix: input channel ci shifted by (ky, kx).
fn im2col_row(x: &[f32], s: &ConvShape, r: usize, row: &mut [f32]) {
    let (h, w, k, pad) = (s.h, s.w, s.k, s.pad);
    let (oh, ow) = (s.out_h(), s.out_w());
    let (ci, ky, kx) = (r / (k * k), (r / k) % k, r % k);
    let plane = &x[ci * h * w..(ci + 1) * h * w];
    // Output columns whose input column ox + kx - pad lies inside the image.
    let x0 = pad.saturating_sub(kx).min(ow);
    let x1 = (w + pad).saturating_sub(kx).min(ow).max(x0);
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
        let ix0 = x0 + kx - pad;
        dst[x0..x1].copy_from_slice(&src[ix0..ix0 + (x1 - x0)]);
    }
}

/// PReLU in place on (channels, hw) planes: slope `alpha[c]` on channel c, or `alpha[0]` on
/// all when `alpha` has one value.
fn prelu_planes(planes: &mut [f32], hw: usize, alpha: &[f32]) {
    for (c, plane) in planes.chunks_mut(hw).enumerate() {
        let a = alpha[if alpha.len() == 1 { 0 } else { c }];
        for v in plane {
            *v = if *v > 0.0 { *v } else { a * *v };
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
    out: &mut [f32],
) {
    conv2d_activation_forward(x, weight, bias, None, s, out);
}

/// Convolution, bias and PReLU forward in one pass over each output: `alpha` holds one slope
/// or one per output channel. Equals [`conv2d_forward`] followed by [`prelu_forward`].
pub(crate) fn conv2d_prelu_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: ConvShape,
    out: &mut [f32],
) {
    assert!(
        alpha.len() == 1 || alpha.len() == s.cout,
        "one slope or one per channel"
    );
    conv2d_activation_forward(x, weight, Some(bias), Some(alpha), s, out);
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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (and so FMA), checked just above.
        return unsafe { conv_single_plane_avx512(x, weight, bias, alpha, s, c0, out) };
    }
    conv_single_plane_any::<false>(x, weight, bias, alpha, s, c0, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn conv_single_plane_avx512(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    c0: usize,
    out: &mut [f32],
) {
    conv_single_plane_any::<true>(x, weight, bias, alpha, s, c0, out)
}

/// [`conv_single_plane`]; `FUSED`: multiply-adds rounded once (FMA instructions).
#[inline(always)]
fn conv_single_plane_any<const FUSED: bool>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    c0: usize,
    out: &mut [f32],
) {
    const GROUP: usize = 4;
    let plane = s.out_h() * s.out_w();
    let channels = out.len() / plane;
    let full = channels / GROUP * GROUP;
    let (grouped, rest) = out.split_at_mut(full * plane);
    for (i, o) in grouped.chunks_mut(GROUP * plane).enumerate() {
        let co = c0 + i * GROUP;
        match s.k {
            3 => plane_group::<3, GROUP, FUSED>(x, weight, bias, alpha, s, co, o),
            _ => plane_group::<5, GROUP, FUSED>(x, weight, bias, alpha, s, co, o),
        }
    }
    for (i, o) in rest.chunks_mut(plane).enumerate() {
        let co = c0 + full + i;
        match s.k {
            3 => plane_group::<3, 1, FUSED>(x, weight, bias, alpha, s, co, o),
            _ => plane_group::<5, 1, FUSED>(x, weight, bias, alpha, s, co, o),
        }
    }
}

/// `G` output channels from `co` of [`conv_single_plane`], for a K x K kernel: every loop
/// bound is a constant, so the accumulators stay in registers.
#[inline(always)]
fn plane_group<const K: usize, const G: usize, const FUSED: bool>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    co: usize,
    out: &mut [f32],
) {
    const LANES: usize = 16;
    let (oh, ow, w) = (s.out_h(), s.out_w(), s.w);
    let plane = oh * ow;
    let mut weights = [[[0f32; K]; K]; G];
    for (g, filter) in weights.iter_mut().enumerate() {
        for (ky, row) in filter.iter_mut().enumerate() {
            row.copy_from_slice(&weight[((co + g) * K + ky) * K..][..K]);
        }
    }
    let biases: [f32; G] = std::array::from_fn(|g| bias[co + g]);
    let slopes: [f32; G] =
        std::array::from_fn(|g| alpha[if alpha.len() == 1 { 0 } else { co + g }]);
    // Column starts of whole vectors; the last ends at ow and may overlap the one before.
    let starts = (0..ow - LANES).step_by(LANES).chain([ow - LANES]);
    for base in starts {
        for oy in 0..oh {
            let mut acc: [[f32; LANES]; G] = std::array::from_fn(|g| [biases[g]; LANES]);
            for ky in 0..K {
                let row = &x[(oy + ky) * w + base..][..LANES + K - 1];
                for kx in 0..K {
                    let v: &[f32; LANES] = row[kx..kx + LANES].try_into().expect("16 lanes");
                    for (acc, filter) in acc.iter_mut().zip(&weights) {
                        let wt = filter[ky][kx];
                        for (a, &v) in acc.iter_mut().zip(v) {
                            *a = if FUSED {
                                wt.mul_add(v, *a)
                            } else {
                                *a + wt * v
                            };
                        }
                    }
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                let dst = &mut out[g * plane + oy * ow + base..][..LANES];
                for (d, &v) in dst.iter_mut().zip(acc) {
                    *d = if v > 0.0 { v } else { slopes[g] * v };
                }
            }
        }
    }
}

fn conv2d_activation_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    alpha: Option<&[f32]>,
    s: ConvShape,
    out: &mut [f32],
) {
    let hw = s.out_h() * s.out_w();
    let (in_img, out_img, patch) = (s.cin * s.h * s.w, s.cout * hw, s.patch());
    assert_eq!(x.len(), s.batch * in_img);
    assert_eq!(weight.len(), s.cout * patch);
    assert_eq!(out.len(), s.batch * out_img);
    // Channels [c0, c0 + o.len() / hw) of one image's output from its im2col matrix `src`.
    let channels = |src: &[f32], c0: usize, o: &mut [f32], par: Parallelism| {
        let rows = o.len() / hw;
        if let Some(bias) = bias {
            for (row, &b) in o.chunks_mut(hw).zip(&bias[c0..c0 + rows]) {
                row.fill(b);
            }
        }
        matmul(
            (rows, hw, patch),
            o,
            hw,
            bias.is_some(),
            &weight[c0 * patch..(c0 + rows) * patch],
            (patch, 1),
            src,
            (hw, 1),
            par,
        );
        if let Some(alpha) = alpha {
            let slopes = if alpha.len() == 1 {
                alpha
            } else {
                &alpha[c0..c0 + rows]
            };
            prelu_planes(o, hw, slopes);
        }
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
                    channels(src, 0, o, Parallelism::None)
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
                .for_each(|(task, o)| channels(src, task * block, o, Parallelism::None));
        }
    });
}

/// Convolution grad-input: `dx` (batch, cin, h, w) from `dy` (batch, cout, oh, ow): a
/// convolution of `dy`, padded by k - 1 - pad, with the flipped and transposed kernel.
pub(crate) fn conv2d_grad_input(dy: &[f32], weight: &[f32], s: ConvShape, dx: &mut [f32]) {
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

/// Convolution grad-weight and grad-bias: `dw` (cout, cin, k, k) and `db` (cout) from the
/// input `x` and `dy`, summed over the batch in fixed groups, then in group order.
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
    let col_len = if s.direct() { 0 } else { patch * hw };
    let groups = s.batch.div_ceil(GRAD_GROUP);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..groups)
        .into_par_iter()
        .map(|g| {
            with_scratch(col_len, |col| {
                let mut pw = vec![0f32; s.cout * patch];
                let mut pb = vec![0f32; s.cout];
                for i in g * GRAD_GROUP..((g + 1) * GRAD_GROUP).min(s.batch) {
                    let xi = &x[i * in_img..(i + 1) * in_img];
                    let dyi = &dy[i * out_img..(i + 1) * out_img];
                    let src: &[f32] = if s.direct() {
                        xi
                    } else {
                        im2col(xi, &s, col);
                        col
                    };
                    // pw (cout x patch) += dy_i (cout x hw) * src^T (hw x patch)
                    matmul(
                        (s.cout, patch, hw),
                        &mut pw,
                        patch,
                        true,
                        dyi,
                        (hw, 1),
                        src,
                        (1, hw),
                        Parallelism::None,
                    );
                    for (b, row) in pb.iter_mut().zip(dyi.chunks(hw)) {
                        *b += row.iter().sum::<f32>();
                    }
                }
                (pw, pb)
            })
        })
        .collect();
    ordered_sum(partials.iter().map(|p| p.0.as_slice()), dw);
    if let Some(db) = db {
        ordered_sum(partials.iter().map(|p| p.1.as_slice()), db);
    }
}

/// `out[j] = sum over parts, in order, of part[j]`, parallel over j.
fn ordered_sum<'a>(parts: impl Iterator<Item = &'a [f32]> + Clone + Send + Sync, out: &mut [f32]) {
    const CHUNK: usize = 4096;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            chunk.fill(0.0);
            for part in parts.clone() {
                let part = &part[c * CHUNK..c * CHUNK + chunk.len()];
                for (o, &p) in chunk.iter_mut().zip(part) {
                    *o += p;
                }
            }
        });
}

/// Elements per parallel task of the element-wise kernels.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// PReLU forward on `x` viewed as (outer, slopes, inner): slope `alpha[c]` on channel c, or
/// `alpha[0]` everywhere when `alpha` has one value.
pub(crate) fn prelu_forward(x: &[f32], alpha: &[f32], inner: usize, out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    let (slopes, inner) = (alpha.len(), inner.max(1));
    let run = if slopes == 1 {
        ELEMENTWISE_CHUNK
    } else {
        inner
    };
    let item = prelu_item(run * slopes);
    out.par_chunks_mut(item)
        .zip(x.par_chunks(item))
        .for_each(|(o, x)| {
            for (c, (o, x)) in o.chunks_mut(run).zip(x.chunks(run)).enumerate() {
                let a = alpha[c % slopes];
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = if v > 0.0 { v } else { a * v };
                }
            }
        });
}

/// Elements per parallel task: whole (slopes x inner) blocks, about [`ELEMENTWISE_CHUNK`].
fn prelu_item(block: usize) -> usize {
    block * (ELEMENTWISE_CHUNK / block).max(1)
}

/// PReLU backward in one pass: writes `dx` and returns the slope gradient (one value per
/// slope), the sum of `dy * min(x, 0)` reduced per outer item, then in item order.
/// `inner` is the number of elements per (item, channel).
pub(crate) fn prelu_backward(
    x: &[f32],
    alpha: &[f32],
    dy: &[f32],
    inner: usize,
    dx: &mut [f32],
) -> Vec<f32> {
    assert_eq!(x.len(), dy.len());
    assert_eq!(x.len(), dx.len());
    let slopes = alpha.len();
    let inner = inner.max(1);
    // One item: every slope's elements once, or a fixed-size run for a shared slope.
    let run = if slopes == 1 {
        ELEMENTWISE_CHUNK
    } else {
        inner
    };
    let item = prelu_item(run * slopes);
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(item)
        .zip(x.par_chunks(item).zip(dy.par_chunks(item)))
        .map(|(dx, (x, dy))| {
            let mut grad = vec![0f32; slopes];
            for (c, ((dx, x), dy)) in dx
                .chunks_mut(run)
                .zip(x.chunks(run))
                .zip(dy.chunks(run))
                .enumerate()
            {
                let slot = c % slopes;
                let a = alpha[slot];
                let mut sum = 0f32;
                for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
                    if x > 0.0 {
                        *dx = g;
                    } else {
                        *dx = a * g;
                        sum += g * x;
                    }
                }
                grad[slot] += sum;
            }
            grad
        })
        .collect();
    let mut grad = vec![0f32; slopes];
    for part in &partials {
        for (g, p) in grad.iter_mut().zip(part) {
            *g += p;
        }
    }
    grad
}

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Geometry of a pooling window over `planes` planes of h x w, zero-padded by `pad`
/// (`nn.ZeroPad2d(pad)` then the pool: padded zeros take part in the max and the average).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolShape {
    pub kind: PoolKind,
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl PoolShape {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// In-image column range [x0, x1) of the window at output column ox.
    fn columns(&self, ox: usize) -> (usize, usize) {
        let start = ox * self.stride;
        let x0 = start.saturating_sub(self.pad).min(self.w);
        let x1 = (start + self.k)
            .saturating_sub(self.pad)
            .min(self.w)
            .max(x0);
        (x0, x1)
    }
}

/// Index marking a window maximum that is a padded zero.
pub(crate) const PADDED: u32 = u32::MAX;

/// Max pooling of one plane: values into `out` and the input index of each window's first
/// maximum in scan order (NaN wins; [`PADDED`] for a padded zero) into `index`. Separable: a
/// row pass keeps each row's first maximum, a column pass the first row holding the maximum,
/// which is the first maximum in row-major scan order.
fn max_plane(
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
struct MaxScratch {
    line_v: Vec<f32>,
    line_i: Vec<u32>,
    best_v: Vec<f32>,
    best_i: Vec<u32>,
    rows_v: Vec<f32>,
    rows_i: Vec<u32>,
}

/// Pooling forward of `s.planes` planes on the calling thread, values only (no window
/// indices): the same values as [`pool_forward`].
pub(crate) fn pool_planes(x: &[f32], s: &PoolShape, out: &mut [f32]) {
    let (plane_in, plane_out) = (s.h * s.w, s.out_h() * s.out_w());
    assert_eq!(x.len(), s.planes * plane_in);
    assert_eq!(out.len(), s.planes * plane_out);
    let mut scratch = PlaneScratch::default();
    for (o, plane) in out.chunks_mut(plane_out).zip(x.chunks(plane_in)) {
        pool_plane_values(plane, s, o, &mut scratch);
    }
}

/// Reused buffers of [`pool_plane_values`] (one per rayon task).
#[derive(Default)]
struct PlaneScratch {
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

/// Max or average pooling of one plane, values only (no window indices). Separable: a row
/// pass reduces each zero-padded row at stride 1 (each window read straight from the row,
/// so it vectorises across windows) and keeps every stride-th window, then a column pass
/// reduces whole output rows. The average adds a window's values row by row, in scan order,
/// then divides by k * k.
fn pool_plane_values(plane: &[f32], s: &PoolShape, out: &mut [f32], scratch: &mut PlaneScratch) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        if average_3x3_stride_2_fits(s) {
            // SAFETY: the CPU has AVX-512F (checked above); the shape fits (checked).
            return unsafe { average_3x3_stride_2_avx512(plane, s, out) };
        }
        // SAFETY: the CPU has AVX-512F (checked above); the shape fits (checked).
        if max_stride_2_fits(s) && unsafe { max_stride_2_avx512(plane, s, out) } {
            return;
        }
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { pool_plane_values_avx512(plane, s, out, scratch) };
    }
    pool_plane_values_for_k(plane, s, out, scratch)
}

/// Whether [`average_3x3_stride_2_avx512`] takes shape `s`: a 3x3 average at stride 2 whose
/// padded rows fit two vectors and whose output rows fit one (the seed CNN's pool2, pool3).
fn average_3x3_stride_2_fits(s: &PoolShape) -> bool {
    (s.kind, s.k, s.stride) == (PoolKind::Avg, 3, 2)
        && s.w + 2 * s.pad <= 32
        && s.out_w() <= 15
        && s.h + 2 * s.pad <= 64
}

/// Whether [`max_stride_2_avx512`] takes shape `s`: a max pool at stride 2 whose padded rows
/// fit four vectors and whose windows fit five columns (the seed CNN's pool1).
fn max_stride_2_fits(s: &PoolShape) -> bool {
    (s.kind, s.stride) == (PoolKind::Max, 2)
        && s.k <= 5
        && s.pad < s.k
        && s.w + 2 * s.pad <= 64
        && s.out_w() <= 32
}

/// The AVX-512 lane masks (16 lanes per vector, four vectors) of padded row positions
/// `pad..pad + len`: the lanes of a zero-padded row that hold its `len` values.
#[cfg(target_arch = "x86_64")]
pub(crate) fn lanes_inside(pad: usize, len: usize) -> [u16; 4] {
    assert!(pad + len <= 64, "a padded row of at most four vectors");
    let bits = if len == 0 {
        0
    } else {
        (u64::MAX >> (64 - len)) << pad
    };
    std::array::from_fn(|g| (bits >> (16 * g)) as u16)
}

/// The stride-2 max of one plane ([`max_stride_2_fits`]) if no window holds a NaN (else
/// false, and `out` is to be computed again by the NaN-aware pass), with the values of
/// [`max_plane_columns_first`] (the same comparisons in the same order, so the same zero
/// signs), in registers: per output row, the column pass over the window's rows gives the
/// zero-padded line (four vectors, masked loads), then its even and odd lanes (two
/// permutations per pair of vectors), from which window tap `j` of every output is the even
/// (`j` even) or odd lanes shifted by `j / 2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn max_stride_2_avx512(plane: &[f32], s: &PoolShape, out: &mut [f32]) -> bool {
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
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn max_into(
    acc: std::arch::x86_64::__m512,
    v: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    std::arch::x86_64::_mm512_max_ps(v, acc)
}

/// Lanes `by..by + 16` of the pair (lo, hi), for `by` in 0..=2.
#[cfg(target_arch = "x86_64")]
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

/// [`max_stride_2_avx512`] for window size `K` (0: any, read from the shape), so that the
/// seed CNN's windows are unrolled.
#[cfg(target_arch = "x86_64")]
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
    let inside = lanes_inside(pad, w);
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
/// and order of additions of [`pool_plane_values_with`]: each padded row's window sums
/// `(p[2x] + p[2x + 1]) + p[2x + 2]` come from two vectors by three lane permutations (the
/// even, odd and next even lanes), then each output row adds three row sums and divides by 9.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn average_3x3_stride_2_avx512(plane: &[f32], s: &PoolShape, out: &mut [f32]) {
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

/// [`pool_plane_values`] compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pool_plane_values_avx512(
    plane: &[f32],
    s: &PoolShape,
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    pool_plane_values_for_k(plane, s, out, scratch)
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
fn pool_plane_values_for_k(
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
fn max_plane_columns_first(
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
fn pool_plane_values_with(
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

/// Pooling forward: `out` (planes, oh, ow) from `x` (planes, h, w); for a max pool, `argmax`
/// (same length as `out`) receives each window's input index for [`max_pool_backward`].
pub(crate) fn pool_forward(x: &[f32], s: PoolShape, out: &mut [f32], argmax: Option<&mut [u32]>) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(x.len(), s.planes * s.h * s.w);
    assert_eq!(out.len(), s.planes * oh * ow);
    // Whole planes per task, an even share per thread: one scratch per task.
    let share = s.planes.div_ceil(rayon::current_num_threads()).max(1);
    if let (PoolKind::Max, Some(argmax)) = (s.kind, argmax) {
        assert_eq!(argmax.len(), out.len());
        out.par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(x.par_chunks(s.h * s.w))
            .with_min_len(share)
            .for_each_init(MaxScratch::default, |scratch, ((o, i), plane)| {
                max_plane(plane, &s, o, i, scratch)
            });
        return;
    }
    // Values only: inference, and the average (whose backward needs no indices).
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(s.h * s.w))
        .with_min_len(share)
        .for_each_init(PlaneScratch::default, |scratch, (o, plane)| {
            pool_plane_values(plane, &s, o, scratch)
        });
}

/// Max pooling backward from the forward's window indices: `dx` (planes, h, w).
pub(crate) fn max_pool_backward(argmax: &[u32], dy: &[f32], s: PoolShape, dx: &mut [f32]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(argmax.len(), dy.len());
    assert_eq!(dy.len(), s.planes * oh * ow);
    assert_eq!(dx.len(), s.planes * s.h * s.w);
    dx.par_chunks_mut(s.h * s.w)
        .zip(argmax.par_chunks(oh * ow).zip(dy.par_chunks(oh * ow)))
        .for_each(|(g, (index, go))| {
            g.fill(0.0);
            for (&i, &d) in index.iter().zip(go) {
                if i != PADDED {
                    g[i as usize] += d;
                }
            }
        });
}

/// Pooling backward: `dx` (planes, h, w) from the input `x` and `dy` (planes, oh, ow). The max
/// routes each gradient to its window's first maximum; the average spreads it evenly (padded
/// cells absorb their share).
pub(crate) fn pool_backward(x: &[f32], dy: &[f32], s: PoolShape, dx: &mut [f32]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(x.len(), s.planes * s.h * s.w);
    assert_eq!(dx.len(), x.len());
    assert_eq!(dy.len(), s.planes * oh * ow);
    if s.kind == PoolKind::Max {
        let mut argmax = vec![0u32; dy.len()];
        let mut out = vec![0f32; dy.len()];
        pool_forward(x, s, &mut out, Some(&mut argmax));
        max_pool_backward(&argmax, dy, s, dx);
        return;
    }
    let area = (s.k * s.k) as f32;
    dx.par_chunks_mut(s.h * s.w)
        .zip(x.par_chunks(s.h * s.w).zip(dy.par_chunks(oh * ow)))
        .for_each(|(g, (_plane, go))| {
            g.fill(0.0);
            for oy in 0..oh {
                for ox in 0..ow {
                    let upstream = go[oy * ow + ox];
                    let share = upstream / area;
                    let (x0, x1) = s.columns(ox);
                    for ky in 0..s.k {
                        let y = (oy * s.stride + ky).wrapping_sub(s.pad);
                        if y < s.h {
                            for v in &mut g[y * s.w + x0..y * s.w + x1] {
                                *v += share;
                            }
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition: each window scanned in row-major order keeps its first maximum, a NaN
    /// beats any number, a padded cell is a zero at index [`PADDED`].
    fn reference(plane: &[f32], s: &PoolShape) -> (Vec<f32>, Vec<u32>) {
        let (mut out, mut index) = (Vec::new(), Vec::new());
        for oy in 0..s.out_h() {
            for ox in 0..s.out_w() {
                let mut best: Option<(f32, u32)> = None;
                for ky in 0..s.k {
                    for kx in 0..s.k {
                        let y = (oy * s.stride + ky).wrapping_sub(s.pad);
                        let x = (ox * s.stride + kx).wrapping_sub(s.pad);
                        let cell = if y < s.h && x < s.w {
                            (plane[y * s.w + x], (y * s.w + x) as u32)
                        } else {
                            (0.0, PADDED)
                        };
                        best = match best {
                            Some(b) if !(cell.0 > b.0 || (cell.0.is_nan() && !b.0.is_nan())) => {
                                Some(b)
                            }
                            _ => Some(cell),
                        };
                    }
                }
                let (v, i) = best.unwrap();
                out.push(v);
                index.push(i);
            }
        }
        (out, index)
    }

    /// The definition of the average: each window row's in-image values summed left to right,
    /// the row sums added top to bottom (padded zeros add nothing), divided by k * k.
    fn average_reference(plane: &[f32], s: &PoolShape) -> Vec<f32> {
        let mut out = Vec::new();
        for oy in 0..s.out_h() {
            for ox in 0..s.out_w() {
                let mut sum = 0f32;
                let (x0, x1) = s.columns(ox);
                for ky in 0..s.k {
                    let y = (oy * s.stride + ky).wrapping_sub(s.pad);
                    if y < s.h {
                        let mut row = 0f32;
                        for &v in &plane[y * s.w + x0..y * s.w + x1] {
                            row += v;
                        }
                        sum += row;
                    }
                }
                out.push(sum / (s.k * s.k) as f32);
            }
        }
        out
    }

    /// Inference pooling (values only, the separable vectorised pass) gives the definition's
    /// values: the max with NaNs winning and padded zeros taking part, and the average in the
    /// same order of additions, bit for bit; on several planes split over 1 to 3 threads.
    #[test]
    fn pooled_values_equal_the_definition_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let shapes = [
            (44, 44, 5, 2, 2), // the seed CNN's pools
            (22, 22, 3, 2, 0),
            (10, 10, 3, 2, 1),
            (11, 9, 3, 2, 1),
            (6, 40, 2, 1, 0), // more windows than a vector, stride 1
            (7, 7, 7, 3, 3),
            (20, 17, 3, 2, 1), // a row of more than one vector, not a whole number of them
        ];
        for (h, w, k, stride, pad) in shapes {
            for kind in [PoolKind::Max, PoolKind::Avg] {
                let planes = 5;
                let s = PoolShape {
                    kind,
                    planes,
                    h,
                    w,
                    k,
                    stride,
                    pad,
                };
                let x: Vec<f32> = (0..planes * h * w)
                    .map(|i| match rng.random_range(0..60) {
                        // NaNs in even planes only: odd ones take the NaN-free max.
                        0 if kind == PoolKind::Max && (i / (h * w)) % 2 == 0 => f32::NAN,
                        r if i % (h * w) < h * w / 2 => -1.0 - r as f32 / 7.0, // below the padding
                        r => r as f32 / 7.0 - 4.0,
                    })
                    .collect();
                let hw = s.out_h() * s.out_w();
                let mut expected = Vec::new();
                for plane in x.chunks(h * w) {
                    let one = PoolShape { planes: 1, ..s };
                    expected.extend(match kind {
                        PoolKind::Max => reference(plane, &one).0,
                        PoolKind::Avg => average_reference(plane, &one),
                    });
                }
                for threads in [1, 2, 3] {
                    let mut out = vec![f32::INFINITY; planes * hw];
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap()
                        .install(|| pool_forward(&x, s, &mut out, None));
                    for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                        assert!(
                            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || a == b,
                            "{s:?}, {threads} threads, output {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// Ties, NaNs, negative planes (where a padded zero wins) and windows wider than a chunk.
    #[test]
    fn max_pooling_keeps_the_first_maximum_of_each_window_in_scan_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (h, w, k, stride, pad) in [(48, 48, 5, 2, 2), (11, 9, 3, 2, 1), (6, 150, 2, 1, 0)] {
            let s = PoolShape {
                kind: PoolKind::Max,
                planes: 1,
                h,
                w,
                k,
                stride,
                pad,
            };
            for trial in 0..20 {
                let plane: Vec<f32> = (0..h * w)
                    .map(|_| match rng.random_range(0..40) {
                        0 => f32::NAN,
                        r if trial % 2 == 0 => (r % 3) as f32, // many ties
                        r => -1.0 - (r % 3) as f32,            // all below the padding
                    })
                    .collect();
                let (oh, ow) = (s.out_h(), s.out_w());
                let (mut out, mut index) = (vec![0f32; oh * ow], vec![0u32; oh * ow]);
                max_plane(&plane, &s, &mut out, &mut index, &mut MaxScratch::default());
                let (expected, expected_index) = reference(&plane, &s);
                assert_eq!(index, expected_index, "shape {h}x{w} k{k} s{stride} p{pad}");
                for (a, b) in out.iter().zip(&expected) {
                    assert!(a == b || (a.is_nan() && b.is_nan()), "{a} vs {b}");
                }
            }
        }
    }

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
}
