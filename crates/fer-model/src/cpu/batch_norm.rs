//! Batch normalisation + ReLU on the CPU: per-channel statistics (each plane summed in 16 f32
//! lanes, the planes in f64, all in a fixed order), the normalise-scale-shift-ReLU pass, and
//! the fused backward; each also followed by a 2 x 2 max pool whose full-size input is never
//! stored.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::pool::{max_2x2_backward_plane, pool_planes};
use super::portable::batch_norm as portable;
use super::shape::PoolShape;
use super::uninit::{self, Slot};

/// The per-plane reductions, on AVX-512 or AVX2 where the CPU has it (the same bits either
/// way).
fn plane_sum(plane: &[f32]) -> f32 {
    simd_return!(batch_norm::plane_sum(plane));
    portable::plane_sum(plane)
}

fn plane_squared_deviations(plane: &[f32], mean: f32) -> f32 {
    simd_return!(batch_norm::plane_squared_deviations(plane, mean));
    portable::plane_squared_deviations(plane, mean)
}

fn plane_relu_grad_sums(
    x: &[f32],
    dy: &[f32],
    statistics: [f32; 2],
    affine: [f32; 2],
) -> (f32, f32) {
    simd_return!(batch_norm::plane_relu_grad_sums(x, dy, statistics, affine));
    portable::plane_relu_grad_sums(x, dy, statistics, affine)
}

/// Geometry of an NCHW tensor as batch norm sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planes {
    pub batch: usize,
    pub channels: usize,
    /// Values per (image, channel) plane: height x width.
    pub plane: usize,
}

impl Planes {
    /// Values per channel over the batch.
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The values of channel `c`, plane by plane.
    fn channel<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch).map(move |n| {
            let start = (n * self.channels + c) * self.plane;
            &data[start..start + self.plane]
        })
    }
}

/// Mean and biased variance of every channel (two passes, f64 sums, in a fixed order).
pub(crate) fn channel_statistics(x: &[f32], p: Planes) -> (Vec<f32>, Vec<f32>) {
    (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let count = p.count() as f64;
            let sum: f64 = p
                .channel(x, c)
                .map(|plane| f64::from(plane_sum(plane)))
                .sum();
            let mean = sum / count;
            let squares: f64 = p
                .channel(x, c)
                .map(|plane| f64::from(plane_squared_deviations(plane, mean as f32)))
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .unzip()
}

/// `out = relu(x * scale[c] + shift[c])`, plane by plane in parallel.
pub(crate) fn scale_shift_relu(
    x: &[f32],
    p: Planes,
    scale: &[f32],
    shift: &[f32],
    out: &mut [impl Slot],
) {
    out.par_chunks_mut(p.plane)
        .zip(x.par_chunks(p.plane))
        .enumerate()
        .for_each(|(i, (o, x))| {
            let c = i % p.channels;
            let (a, b) = (scale[c], shift[c]);
            for (o, &v) in o.iter_mut().zip(x) {
                o.set(scale_shift_relu_value(v, a, b));
            }
        });
}

/// One value of [`scale_shift_relu`]: every pass that needs the ReLU's output rebuilds it with
/// these operations, so the bits are the same everywhere.
#[inline(always)]
fn scale_shift_relu_value(v: f32, scale: f32, shift: f32) -> f32 {
    (v * scale + shift).max(0.0)
}

/// `relu(x * scale + shift)` of one plane into `out` (a scratch plane).
fn scale_shift_relu_plane(x: &[f32], scale: f32, shift: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend(x.iter().map(|&v| scale_shift_relu_value(v, scale, shift)));
}

/// The 2 x 2, stride-2 max pool (floor: an odd last row or column is dropped) of one plane of
/// `p` whose rows are `width` long.
fn max_pool_of(p: Planes, width: usize) -> PoolShape {
    assert!(
        width > 0 && p.plane.is_multiple_of(width),
        "planes of whole rows"
    );
    PoolShape::max_2x2(1, p.plane / width, width)
}

/// [`scale_shift_relu`], then a 2 x 2 max pool at stride 2 (`nn.MaxPool2d(2)`): `out` is
/// (batch, channels, h / 2, w / 2) for planes `width` wide. Each plane goes through a scratch
/// plane in cache, so the full-size output is never stored; the same bits as the two passes.
pub(crate) fn scale_shift_relu_max_pool(
    x: &[f32],
    p: Planes,
    width: usize,
    scale: &[f32],
    shift: &[f32],
    out: &mut [impl Slot],
) {
    let pool = max_pool_of(p, width);
    let pooled = pool.out_h() * pool.out_w();
    assert_eq!(x.len(), p.batch * p.channels * p.plane);
    assert_eq!(out.len(), p.batch * p.channels * pooled);
    out.par_chunks_mut(pooled)
        .zip(x.par_chunks(p.plane))
        .enumerate()
        .for_each_init(Vec::new, |relu, (i, (o, x))| {
            let c = i % p.channels;
            scale_shift_relu_plane(x, scale[c], shift[c], relu);
            pool_planes(relu, &pool, Slot::zeroed(o));
        });
}

/// `1 / sqrt(var + eps)` of every channel, in f64.
pub(crate) fn inverse_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect()
}

/// Batch norm as an affine map per channel, `batch_norm(x) = x * scale + shift`, given the
/// channels' `mean` and inverse standard deviation `inv`: `scale = gamma * inv` and
/// `shift = beta - mean * scale`. Training passes the batch's statistics; evaluation the
/// running ones (see [`frozen_affine`]).
pub(crate) fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(inv).map(|(g, i)| g * i).collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), a)| b - m * a)
        .collect();
    (scale, shift)
}

/// [`affine`] with the running statistics: evaluation mode's scale and shift.
pub(crate) fn frozen_affine(
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    affine(gamma, beta, running_mean, &inverse_std(running_var, eps))
}

/// The backward of `relu(batch_norm(x))` given its input `x` and output gradient `dy`, the
/// forward's per-channel `mean` and inverse standard deviation `inv`, and the scale `gamma`
/// and shift `beta`: grad-x, grad-gamma and grad-beta packed in one vector (in that order).
/// Where the output was positive is recomputed from `x` with the forward's own [`affine`]
/// map (the same operations, so the same mask), instead of reading the output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn relu_backward(
    x: &[f32],
    dy: &[f32],
    p: Planes,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv: &[f32],
) -> Vec<f32> {
    assert_eq!(dy.len(), x.len());
    let gradient = Dense { dy, plane: p.plane };
    let (scale, shift) = affine(gamma, beta, mean, inv);
    relu_backward_from(x, &gradient, p, gamma, mean, inv, (&scale, &shift))
}

/// The backward of [`scale_shift_relu_max_pool`] in training: [`relu_backward`] of the
/// gradient the pool's backward gives from `dy` (batch, channels, h / 2, w / 2), for planes
/// `width` wide. That full-size gradient is never stored: each plane's ReLU output and its
/// pooled gradient routed to the windows' first maxima are rebuilt in scratch planes (once
/// for the sums, once for grad-x) by the pool's own kernels, so the bits are those of the
/// pool's backward followed by [`relu_backward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn relu_max_pool_backward(
    x: &[f32],
    dy: &[f32],
    p: Planes,
    width: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv: &[f32],
) -> Vec<f32> {
    let pool = max_pool_of(p, width);
    let pooled = pool.out_h() * pool.out_w();
    assert_eq!(dy.len(), p.batch * p.channels * pooled);
    let (scale, shift) = affine(gamma, beta, mean, inv);
    let gradient = MaxPooled {
        dy,
        pool,
        channels: p.channels,
        scale: &scale,
        shift: &shift,
    };
    relu_backward_from(x, &gradient, p, gamma, mean, inv, (&scale, &shift))
}

/// Planes that a backward pass rebuilds, one per rayon task.
#[derive(Default)]
struct Scratch {
    relu: Vec<f32>,
    gradient: Vec<f32>,
}

/// Where [`relu_backward_from`] reads the gradient of `relu(batch_norm(x))`, plane by plane.
trait OutputGradient: Sync {
    /// The gradient of plane `index` (image * channels + channel), whose input is `x`.
    fn plane<'s>(&'s self, index: usize, x: &[f32], scratch: &'s mut Scratch) -> &'s [f32];
}

/// A stored gradient.
struct Dense<'a> {
    dy: &'a [f32],
    plane: usize,
}

impl OutputGradient for Dense<'_> {
    fn plane<'s>(&'s self, index: usize, _x: &[f32], _scratch: &'s mut Scratch) -> &'s [f32] {
        &self.dy[index * self.plane..(index + 1) * self.plane]
    }
}

/// The gradient of a 2 x 2 max pool's input, rebuilt from its output's gradient `dy`.
struct MaxPooled<'a> {
    dy: &'a [f32],
    pool: PoolShape,
    channels: usize,
    scale: &'a [f32],
    shift: &'a [f32],
}

impl OutputGradient for MaxPooled<'_> {
    fn plane<'s>(&'s self, index: usize, x: &[f32], scratch: &'s mut Scratch) -> &'s [f32] {
        let c = index % self.channels;
        let (h, w) = (self.pool.h, self.pool.w);
        let pooled = self.pool.out_h() * self.pool.out_w();
        let dy = &self.dy[index * pooled..(index + 1) * pooled];
        scale_shift_relu_plane(x, self.scale[c], self.shift[c], &mut scratch.relu);
        scratch.gradient.clear();
        scratch.gradient.resize(h * w, 0.0);
        max_2x2_backward_plane(&scratch.relu, dy, h, w, &mut scratch.gradient);
        &scratch.gradient
    }
}

/// [`relu_backward`] with the output's gradient read through `gradient`, given the
/// forward's [`affine`] map `(scale, shift)` (computed once by the caller, which may need it
/// to rebuild the gradient too).
fn relu_backward_from(
    x: &[f32],
    gradient: &impl OutputGradient,
    p: Planes,
    gamma: &[f32],
    mean: &[f32],
    inv: &[f32],
    (scale, shift): (&[f32], &[f32]),
) -> Vec<f32> {
    assert_eq!(x.len(), p.batch * p.channels * p.plane);
    let plane_of = |index: usize| &x[index * p.plane..(index + 1) * p.plane];
    // Per channel: sum(dz) and sum(dz * xhat), where dz = dy where the output is positive.
    let sums: Vec<(f64, f64)> = (0..p.channels)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, c| {
            let (statistics, map) = ([mean[c], inv[c]], [scale[c], shift[c]]);
            let mut sum_dz = 0f64;
            let mut sum_dz_xhat = 0f64;
            for n in 0..p.batch {
                let index = n * p.channels + c;
                let x = plane_of(index);
                let dy = gradient.plane(index, x, scratch);
                let (a, b) = plane_relu_grad_sums(x, dy, statistics, map);
                sum_dz += f64::from(a);
                sum_dz_xhat += f64::from(b);
            }
            (sum_dz, sum_dz_xhat)
        })
        .collect();
    let count = p.count() as f32;
    let fill = |packed: &mut [MaybeUninit<f32>]| {
        let (dx, rest) = packed.split_at_mut(x.len());
        let (d_gamma, d_beta) = Slot::zeroed(rest).split_at_mut(p.channels);
        for (c, &(a, b)) in sums.iter().enumerate() {
            d_beta[c] = a as f32;
            d_gamma[c] = b as f32;
        }
        // dx = gamma * inv / M * (M * dz - sum(dz) - xhat * sum(dz * xhat))
        dx.par_chunks_mut(p.plane).enumerate().for_each_init(
            Scratch::default,
            |scratch, (plane_index, dx)| {
                let c = plane_index % p.channels;
                let x = plane_of(plane_index);
                let dy = gradient.plane(plane_index, x, scratch);
                let (m, i, a, b) = (mean[c], inv[c], scale[c], shift[c]);
                let k = gamma[c] * i / count;
                let (sum_dz, sum_dz_xhat) = (d_beta[c], d_gamma[c]);
                for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                    let dz = if x * a + b > 0.0 { dy } else { 0.0 };
                    let xhat = (x - m) * i;
                    dx.set(k * (count * dz - sum_dz - xhat * sum_dz_xhat));
                }
            },
        );
    };
    // SAFETY: `fill` zeroes the gradient sums' slots and writes every value of every plane of dx.
    unsafe { uninit::written(x.len() + 2 * p.channels, fill) }
}
