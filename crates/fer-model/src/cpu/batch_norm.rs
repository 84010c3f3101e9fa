//! Batch normalisation + ReLU on the CPU: per-channel statistics (each plane summed in 16 f32
//! lanes, the planes in f64, all in a fixed order), the normalise-scale-shift-ReLU pass, and
//! the fused backward.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::portable::batch_norm as portable;
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
                o.set((v * a + b).max(0.0));
            }
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
    let (scale, shift) = affine(gamma, beta, mean, inv);
    // Per channel: sum(dz) and sum(dz * xhat), where dz = dy where the output is positive.
    let sums: Vec<(f64, f64)> = (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let (statistics, map) = ([mean[c], inv[c]], [scale[c], shift[c]]);
            let mut sum_dz = 0f64;
            let mut sum_dz_xhat = 0f64;
            for (x, dy) in p.channel(x, c).zip(p.channel(dy, c)) {
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
        dx.par_chunks_mut(p.plane)
            .enumerate()
            .for_each(|(plane_index, dx)| {
                let c = plane_index % p.channels;
                let start = plane_index * p.plane;
                let (x, dy) = (&x[start..start + p.plane], &dy[start..start + p.plane]);
                let (m, i, a, b) = (mean[c], inv[c], scale[c], shift[c]);
                let k = gamma[c] * i / count;
                let (sum_dz, sum_dz_xhat) = (d_beta[c], d_gamma[c]);
                for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                    let dz = if x * a + b > 0.0 { dy } else { 0.0 };
                    let xhat = (x - m) * i;
                    dx.set(k * (count * dz - sum_dz - xhat * sum_dz_xhat));
                }
            });
    };
    // SAFETY: `fill` zeroes the gradient sums' slots and writes every value of every plane of dx.
    unsafe { uninit::written(x.len() + 2 * p.channels, fill) }
}
