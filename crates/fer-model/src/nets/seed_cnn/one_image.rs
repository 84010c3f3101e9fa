//! The seed CNN's inference of one image (batch-1 latency): every layer a [`stages`] stage
//! spread over all of the pool's threads, in twelve stages.
//!
//! - conv1 (one input plane): a direct convolution by blocks of output channels.
//! - conv2..conv5 (3x3): Winograd F(2x2, 3x3) ([`winograd`]): one gemm per tile position,
//!   then the inverse transform by blocks of output channels.
//! - A block of output channels is finished in the same chunk: pooled where a pool follows,
//!   then transformed as the next layer's input channels (each of the next layer's input
//!   planes is one of this layer's output planes), so no stage only transforms.
//! - Then the fully connected layers by blocks of output features.
//!
//! Invariants: the same kernels whatever the thread count, so the same bits on any pool;
//! within about 1e-6 of the batch path (Winograd reassociates the convolutions' sums).
//! conv2..conv5's transformed weights are cached between calls and checked, bit for bit,
//! against the weights in background chunks; a layer found changed is derived again and the
//! image computed again, so a stale cache never reaches the scores.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use gemm::Parallelism;

use super::params::{FC_HIDDEN, LinearParams, SeedParams, fc_inputs, geometry, pool_after};
use super::workspace::{WinogradWeights, Workspace};
use crate::cpu::conv::conv_single_plane;
use crate::cpu::gemm::matmul;
use crate::cpu::pool::pool_planes;
use crate::cpu::shape::{ConvShape, PoolShape};
use crate::cpu::stages::{self, Shared, Stage};
use crate::cpu::winograd;
use crate::head::NUM_CLASSES;

/// Output features per chunk of a fully connected layer.
const FEATURES_PER_CHUNK: usize = 128;

/// Output channels per chunk of a convolution's output stage.
const CHANNELS_PER_CHUNK: usize = 16;

/// Output channels per weight-check chunk: small (about 1 µs), because a thread that takes
/// one while it waits for a stage starts that stage late by up to one chunk.
const CHANNELS_PER_CHECK: usize = 4;

/// Whether two slices hold the same bits (a reduction, so that it vectorises).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0u32, |acc, (p, q)| acc | (p.to_bits() ^ q.to_bits()))
                == 0
        })
}

/// Block `c` of `count` even blocks of `0..len`.
fn block(c: usize, count: usize, len: usize) -> Range<usize> {
    let size = len.div_ceil(count);
    (c * size).min(len)..((c + 1) * size).min(len)
}

/// The raw scores (7) of one image `x` (48 x 48).
pub(crate) fn forward(ws: &Workspace, p: &SeedParams<&[f32]>, x: &[f32]) -> Vec<f32> {
    let (convs, pools) = geometry(1);
    let winograd_layers = &convs[1..];
    let largest = |f: &dyn Fn(&ConvShape) -> usize| winograd_layers.iter().map(f).max();
    let mut v = ws.take(largest(&|s| s.cin * winograd::XI * winograd::slots(s)).unwrap_or(0));
    let mut m = ws.take(largest(&|s| winograd::XI * s.cout * winograd::slots(s)).unwrap_or(0));
    let mut activations: Vec<Vec<f32>> = convs
        .iter()
        .map(|s| ws.take(s.cout * s.out_h() * s.out_w()))
        .collect();
    let mut pooled: Vec<Vec<f32>> = pools
        .iter()
        .map(|s| ws.take(s.planes * s.out_h() * s.out_w()))
        .collect();
    let (mut g1, mut g2, mut scores) = (
        vec![0f32; FC_HIDDEN],
        vec![0f32; FC_HIDDEN],
        vec![0f32; NUM_CLASSES],
    );
    // The cache; a concurrent predict on the same model derives weights of its own.
    let mut own = WinogradWeights::default();
    let mut guard = match ws.winograd.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let cache = guard.as_deref_mut().unwrap_or(&mut own);
    let mut fresh = [false; 4];
    for (i, (raw, u)) in cache.layers.iter_mut().enumerate() {
        let s = winograd_layers[i];
        if raw.len() != s.cout * s.patch() {
            *raw = vec![0.0; s.cout * s.patch()];
            *u = vec![0.0; s.cout * winograd::XI * s.cin];
            fresh[i] = true;
        }
    }
    loop {
        let stale: [AtomicBool; 4] = Default::default();
        {
            let buffers = Buffers {
                v: Shared::new(&mut v),
                m: Shared::new(&mut m),
                activations: activations.iter_mut().map(|a| Shared::new(a)).collect(),
                pooled: pooled.iter_mut().map(|a| Shared::new(a)).collect(),
                cached: cache
                    .layers
                    .iter_mut()
                    .map(|(raw, u)| (Shared::new(raw), Shared::new(u)))
                    .collect(),
                fc: [
                    Shared::new(&mut g1),
                    Shared::new(&mut g2),
                    Shared::new(&mut scores),
                ],
            };
            let plan = Plan {
                convs,
                pools,
                p,
                x,
                fresh,
                buffers: &buffers,
            };
            let mut list = Vec::new();
            for layer in 0..convs.len() {
                if layer > 0 {
                    list.push(plan.products(layer));
                }
                list.push(plan.outputs(layer));
            }
            list.extend((0..3).map(|i| plan.fully_connected(i)));
            let checks = plan.checks();
            let background = Stage::new(checks.len(), |c| {
                let (i, range) = checks[c].clone();
                // SAFETY: no stage writes the raw copy of a layer that is not fresh.
                let raw = unsafe { buffers.cached[i].0.read() };
                if !same_bits(&raw[range.clone()], &p.convs[i + 1].weight[range]) {
                    stale[i].store(true, Ordering::Relaxed);
                }
            });
            stages::run_with_background(&list, &background);
        }
        let stale = stale.map(AtomicBool::into_inner);
        if !stale.contains(&true) {
            break;
        }
        fresh = stale;
    }
    drop(guard);
    ws.give([v, m]);
    ws.give(activations);
    ws.give(pooled);
    scores
}

/// The buffers the stages share, each written in disjoint pieces by one stage's chunks.
struct Buffers<'a> {
    /// The next Winograd layer's transformed input `V`.
    v: Shared<'a>,
    /// The running Winograd layer's products `M`.
    m: Shared<'a>,
    /// Each conv layer's output, and the pooled planes of the pooled ones.
    activations: Vec<Shared<'a>>,
    pooled: Vec<Shared<'a>>,
    /// conv2..conv5: (raw weights, `U`).
    cached: Vec<(Shared<'a>, Shared<'a>)>,
    /// fc1, fc2, fc3 outputs.
    fc: [Shared<'a>; 3],
}

/// Builds the stages of one pass.
struct Plan<'a, 'b> {
    convs: [ConvShape; 5],
    pools: [PoolShape; 3],
    p: &'a SeedParams<&'a [f32]>,
    x: &'a [f32],
    /// conv2..conv5: derive the transformed weights in this pass.
    fresh: [bool; 4],
    buffers: &'b Buffers<'a>,
}

impl<'a, 'b> Plan<'a, 'b> {
    /// Winograd layer `layer` (1..5): the 16 gemms, one per chunk, over all output channels.
    fn products(&self, layer: usize) -> Stage<'b> {
        let s = self.convs[layer];
        let (v, m) = (self.buffers.v, self.buffers.m);
        let u = self.buffers.cached[layer - 1].1;
        let len = winograd::slots(&s);
        let products_len = s.cout * len;
        Stage::new(winograd::XI, move |xi| {
            // SAFETY: `V` and `U` were written by earlier stages; chunk xi alone writes the
            // products of position xi.
            let (v, u, m) = unsafe {
                (
                    v.read(),
                    u.read(),
                    m.piece(xi * products_len..(xi + 1) * products_len),
                )
            };
            winograd::products(&v[..s.cin * winograd::XI * len], u, &s, xi, m);
        })
    }

    /// Conv layer `layer`'s output by blocks of channels: computed (directly for conv1, by
    /// the inverse transform for the others), pooled where a pool follows, and transformed
    /// as the next layer's input; the next layer's weights are derived here when fresh.
    fn outputs(&self, layer: usize) -> Stage<'b> {
        let s = self.convs[layer];
        let hw = s.out_h() * s.out_w();
        let layer_params = &self.p.convs[layer];
        let (w, b, alpha) = (layer_params.weight, layer_params.bias, layer_params.slope);
        let (x, buffers) = (self.x, self.buffers);
        let out = buffers.activations[layer];
        let m = buffers.m;
        let pool = pool_after(layer).map(|i| (self.pools[i], buffers.pooled[i]));
        let next = (layer + 1 < self.convs.len()).then(|| {
            let (raw, u) = buffers.cached[layer];
            (
                self.convs[layer + 1],
                raw,
                u,
                self.fresh[layer],
                self.p.convs[layer + 1].weight,
            )
        });
        let chunks = s.cout.div_ceil(CHANNELS_PER_CHUNK);
        let v = buffers.v;
        Stage::new(chunks, move |c| {
            let channels = block(c, chunks, s.cout);
            // SAFETY: chunk c alone writes these channels of this layer's output.
            let o = unsafe { out.piece(channels.start * hw..channels.end * hw) };
            if layer == 0 {
                conv_single_plane(x, w, b, alpha, &s, channels.start, o);
            } else {
                // SAFETY: the products' stage is done.
                let m = unsafe { m.read() };
                let m = &m[..winograd::XI * s.cout * winograd::slots(&s)];
                let mut scratch = Vec::new();
                for (co, plane) in channels.clone().zip(o.chunks_mut(hw)) {
                    let slope = alpha[if alpha.len() == 1 { 0 } else { co }];
                    winograd::output_channel(m, &s, co, b[co], slope, plane, &mut scratch);
                }
            }
            let mut input: &[f32] = o;
            if let Some((shape, pooled)) = pool {
                let plane = shape.out_h() * shape.out_w();
                let shape = PoolShape {
                    planes: channels.len(),
                    ..shape
                };
                // SAFETY: chunk c alone writes the pooled planes of its channels.
                let dst = unsafe { pooled.piece(channels.start * plane..channels.end * plane) };
                pool_planes(o, &shape, dst);
                input = dst;
            }
            let Some((next, raw, u, fresh, weights)) = next else {
                return;
            };
            // These channels are the next layer's input planes `channels`, each written as
            // one row of every position of `V` (16, cin, slots).
            let len = winograd::slots(&next);
            let mut scratch = winograd::InputScratch::default();
            let plane_len = next.h * next.w;
            for (ci, plane) in channels.clone().zip(input.chunks(plane_len)) {
                let mut rows: [&mut [f32]; winograd::XI] = std::array::from_fn(|xi| {
                    let at = (xi * next.cin + ci) * len;
                    // SAFETY: the next layer's `V` is read only by its products' stage, after
                    // this; chunk c alone writes these channels' rows.
                    unsafe { v.piece(at..at + len) }
                });
                winograd::transform_input(plane, &next, &mut rows, &mut scratch);
            }
            if fresh {
                let (patch, cin) = (next.patch(), next.cin);
                let derive = block(c, chunks, next.cout);
                // SAFETY: chunk c alone writes these channels' raw copy.
                let raw = unsafe { raw.piece(derive.start * patch..derive.end * patch) };
                let weights = &weights[derive.start * patch..derive.end * patch];
                let mut transformed = vec![0f32; derive.len() * winograd::XI * cin];
                winograd::transform_weights(weights, cin, &mut transformed);
                winograd::positions_first(&transformed, cin, |xi| {
                    let at = (xi * next.cout + derive.start) * cin;
                    // SAFETY: chunk c alone writes these channels' rows of each position.
                    unsafe { u.piece(at..at + derive.len() * cin) }
                });
                raw.copy_from_slice(weights);
            }
        })
    }

    /// Fully connected layer `i` (fc1, fc2, fc3) by blocks of output features, PReLU after
    /// fc1 and fc2 (their shared slope).
    fn fully_connected(&self, i: usize) -> Stage<'b> {
        let (p, hidden) = (self.p, FC_HIDDEN);
        let slope = Some(p.fc_slope);
        let (input, layer, alpha, inp, out): (_, &LinearParams<&[f32]>, _, _, _) = [
            (self.buffers.pooled[2], &p.fc1, slope, fc_inputs(), hidden),
            (self.buffers.fc[0], &p.fc2, slope, hidden, hidden),
            (self.buffers.fc[1], &p.fc3, None, hidden, NUM_CLASSES),
        ][i];
        let (w, b) = (layer.weight, layer.bias);
        let dst = self.buffers.fc[i];
        let chunks = out.div_ceil(FEATURES_PER_CHUNK);
        Stage::new(chunks, move |c| {
            let features = block(c, chunks, out);
            // SAFETY: the input's stage is done; chunk c alone writes these features.
            let (x, y) = unsafe { (input.read(), dst.piece(features.clone())) };
            y.copy_from_slice(&b[features.clone()]);
            matmul(
                (1, features.len(), inp),
                y,
                features.len(),
                true,
                x,
                (inp, 1),
                &w[features.start * inp..],
                (1, inp),
                Parallelism::None,
            );
            if let Some(alpha) = alpha {
                let a = alpha[0];
                for v in y {
                    *v = if *v > 0.0 { *v } else { a * *v };
                }
            }
        })
    }

    /// The weight checks: (layer index in the cache, weight range) for blocks of output
    /// channels of every layer not derived in this pass.
    fn checks(&self) -> Vec<(usize, Range<usize>)> {
        (0..4)
            .filter(|&i| !self.fresh[i])
            .flat_map(|i| {
                let (cout, patch) = (self.convs[i + 1].cout, self.convs[i + 1].patch());
                let chunks = cout.div_ceil(CHANNELS_PER_CHECK);
                (0..chunks).map(move |c| {
                    let channels = block(c, chunks, cout);
                    (i, channels.start * patch..channels.end * patch)
                })
            })
            .collect()
    }
}
