//! One image through a chain of convolutions (each with an optional pool after it) and fully
//! connected layers, every layer a [`stages`] stage spread over all of the pool's threads:
//! the batch-1 latency path of any network of that form (the seed CNN, vgg-bn).
//!
//! - The first convolution (one input plane, no padding: a padded network pads the image
//!   first): a direct convolution by blocks of output channels.
//! - The others (3x3, padding 1): Winograd, F(4x4, 3x3) or F(2x2, 3x3) as [`Tiling::for_shape`]
//!   picks for the batch paths too: one gemm per tile position, then the inverse transform
//!   by blocks of output channels; or, for small planes
//!   (at most [`IM2COL_UP_TO`] outputs, where the weights outweigh the arithmetic), im2col and
//!   one gemm per block of output channels on the weights as they are.
//! - A block of output channels is finished in the same chunk: pooled where a pool follows,
//!   then transformed as the next layer's input channels (each of the next layer's input
//!   planes is one of this layer's output planes; Winograd's input transform or im2col rows),
//!   so no stage only transforms.
//! - Then the fully connected layers by blocks of output features.
//! - Each convolution: `conv(x, weight * scale) + bias`, then PReLU (slope 0 is ReLU); the
//!   optional per-output-channel `scale` is a frozen batch norm, folded into the weights of
//!   the first and the Winograd layers and applied to the sums of the im2col layers.
//!
//! Invariants: the same kernels whatever the thread count, so the same bits on any pool;
//! within about 1e-6 of the batch paths (Winograd reassociates the sums, and a folded scale
//! multiplies the weights rather than the sums). The Winograd layers' transformed weights are
//! cached in the [`Workspace`] between calls (the im2col layers need no cache) and checked,
//! bit for bit, against the weights and scales in background chunks; a layer found changed
//! is derived again and the image computed again, so a stale cache never reaches the scores.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use gemm::Parallelism;

use super::conv::{conv_single_plane, im2col_row};
use super::gemm::{matmul, matmul_strided, vector_lanes, with_scratch};
use super::pool::pool_planes;
use super::shape::{ConvShape, PoolShape};
use super::stages::{self, Shared, Stage};
use super::tiling::{self, Tiling};
use super::workspace::{CachedLayer, Workspace};

/// Output features per chunk of a fully connected layer.
const FEATURES_PER_CHUNK: usize = 128;

/// Output channels per chunk of a convolution's output stage.
const CHANNELS_PER_CHUNK: usize = 16;

/// A convolution after the first with at most this many output positions multiplies its
/// weights as they are (im2col, then gemm) instead of by Winograd. At batch 1 such a layer
/// (vgg-bn's last stage, 6 x 6) reads far more weight than it computes with: Winograd's
/// cached transform is 16/9 of the weights, and its check reads the weights and the cached
/// copy again, where im2col reads the weights once and needs no cache.
const IM2COL_UP_TO: usize = 36;

/// Whether convolution `c` (after the first) runs by im2col rather than Winograd.
fn by_im2col(c: &Conv) -> bool {
    c.shape.out_h() * c.shape.out_w() <= IM2COL_UP_TO
}

/// The row stride of an im2col matrix for `outputs` output positions: rounded up to a whole
/// vector register of f32 of gemm's kernels ([`vector_lanes`]: 16 with AVX-512, 8 with
/// AVX2). Its transpose then has whole vectors of rows, which gemm reads where it lies,
/// without packing; the extra columns' products are computed and dropped (vgg-bn's 6 x 6
/// layers: 48 positions computed for 36 on AVX-512, 40 on AVX2, where 48 took 5-7% more of
/// the batch-1 time at width 64: results/bench/im2col-stride-avx2.txt).
fn col_stride(outputs: usize) -> usize {
    let lanes = vector_lanes();
    outputs.div_ceil(lanes) * lanes
}

/// Output channels per weight-check chunk: small (about 1 µs), because a thread that takes
/// one while it waits for a stage starts that stage late by up to one chunk.
const CHANNELS_PER_CHECK: usize = 4;

/// One convolution of one image, then its PReLU and optional pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv<'a> {
    /// Batch 1. The first layer: one input plane, no padding, 3x3 or 5x5, at least 16 output
    /// columns; the others: 3x3, padding 1.
    pub shape: ConvShape,
    /// (cout, cin, k, k).
    pub weight: &'a [f32],
    /// Multiplies each output channel's weights (a frozen batch norm's scale), when given.
    pub scale: Option<&'a [f32]>,
    /// Added to each output channel (cout).
    pub bias: &'a [f32],
    /// PReLU slope: one, or one per output channel; 0 is ReLU.
    pub slope: &'a [f32],
    /// The pool after the activation (its `planes` = cout), if any.
    pub pool: Option<PoolShape>,
}

impl Conv<'_> {
    /// Values of one output plane after the pool (if any).
    fn output_plane(&self) -> usize {
        match self.pool {
            Some(p) => p.out_h() * p.out_w(),
            None => self.shape.out_h() * self.shape.out_w(),
        }
    }

    fn slope_of(&self, co: usize) -> f32 {
        self.slope[if self.slope.len() == 1 { 0 } else { co }]
    }
}

/// A fully connected layer: `y = W x + b`, then PReLU with `slope` when given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dense<'a> {
    /// (outputs, inputs).
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub inputs: usize,
    pub outputs: usize,
    pub slope: Option<f32>,
}

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

/// `weight` (rows of `patch` values, one per output channel) with each row multiplied by its
/// channel's `scale`; the weights themselves without one.
fn scaled_weights<'w>(weight: &'w [f32], patch: usize, scale: Option<&[f32]>) -> Cow<'w, [f32]> {
    match scale {
        None => Cow::Borrowed(weight),
        Some(scale) => Cow::Owned(
            weight
                .chunks(patch)
                .zip(scale)
                .flat_map(|(row, &a)| row.iter().map(move |w| w * a))
                .collect(),
        ),
    }
}

/// Block `c` of `count` even blocks of `0..len`.
fn block(c: usize, count: usize, len: usize) -> Range<usize> {
    let size = len.div_ceil(count);
    (c * size).min(len)..((c + 1) * size).min(len)
}

/// Checks that the layers chain (an internal invariant: the networks build them).
fn check_chain(convs: &[Conv], dense: &[Dense], x: &[f32]) {
    let first = convs.first().expect("at least one convolution").shape;
    assert!(first.batch == 1 && first.cin == 1 && first.pad == 0);
    assert_eq!(x.len(), first.h * first.w);
    for (i, c) in convs.iter().enumerate() {
        let s = c.shape;
        assert_eq!(c.weight.len(), s.cout * s.patch());
        assert_eq!(c.bias.len(), s.cout);
        assert!(c.slope.len() == 1 || c.slope.len() == s.cout);
        assert!(c.scale.is_none_or(|scale| scale.len() == s.cout));
        if let Some(p) = c.pool {
            assert!(p.planes == s.cout && p.h == s.out_h() && p.w == s.out_w());
        }
        if i > 0 {
            let before = &convs[i - 1];
            assert!(s.batch == 1 && s.k == 3 && s.pad == 1);
            assert_eq!(s.cin, before.shape.cout);
            assert_eq!(s.h * s.w, before.output_plane());
        }
    }
    let last = convs.last().expect("at least one convolution");
    let mut features = last.shape.cout * last.output_plane();
    for d in dense {
        assert_eq!(d.inputs, features);
        assert_eq!(d.weight.len(), d.outputs * d.inputs);
        assert_eq!(d.bias.len(), d.outputs);
        features = d.outputs;
    }
}

/// The last fully connected layer's outputs for one image `x` (the first convolution's
/// input plane).
pub(crate) fn forward(ws: &Workspace, convs: &[Conv], dense: &[Dense], x: &[f32]) -> Vec<f32> {
    check_chain(convs, dense, x);
    let winograd_layers = &convs[1..];
    let largest = |im2col: bool, f: &dyn Fn(&ConvShape) -> usize| {
        winograd_layers
            .iter()
            .filter(|c| by_im2col(c) == im2col)
            .map(|c| f(&c.shape))
            .max()
            .unwrap_or(0)
    };
    let mut v = ws.take(largest(false, &|s| {
        let tiling = Tiling::for_shape(s);
        s.cin * tiling.positions() * tiling.slots(s)
    }));
    let mut m = ws.take(largest(false, &|s| {
        let tiling = Tiling::for_shape(s);
        tiling.positions() * s.cout * tiling.slots(s)
    }));
    // Two im2col matrices: a layer reads one while it writes the next layer's into the other.
    let col_len = largest(true, &|s| s.patch() * col_stride(s.out_h() * s.out_w()));
    let mut cols = [ws.take(col_len), ws.take(col_len)];
    let mut activations: Vec<Vec<f32>> = convs
        .iter()
        .map(|c| ws.take(c.shape.cout * c.shape.out_h() * c.shape.out_w()))
        .collect();
    let mut pooled: Vec<Vec<f32>> = convs
        .iter()
        .map(|c| ws.take(c.pool.map_or(0, |p| p.planes * p.out_h() * p.out_w())))
        .collect();
    let mut features: Vec<Vec<f32>> = dense.iter().map(|d| vec![0f32; d.outputs]).collect();
    // The first layer's weights with its scale folded in (a few hundred values).
    let first = &convs[0];
    let first_weight = scaled_weights(first.weight, first.shape.patch(), first.scale);
    // The cache; a concurrent call on the same workspace derives weights of its own.
    let mut own = Vec::new();
    let mut guard = match ws.winograd.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let cache = guard.as_deref_mut().unwrap_or(&mut own);
    cache.resize_with(winograd_layers.len(), CachedLayer::default);
    let mut fresh: Vec<bool> = cache
        .iter_mut()
        .zip(winograd_layers)
        .map(|(cached, c)| !by_im2col(c) && cached.prepare(&c.shape, c.scale.is_some()))
        .collect();
    loop {
        let stale: Vec<AtomicBool> = winograd_layers
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        {
            let buffers = Buffers {
                v: Shared::new(&mut v),
                m: Shared::new(&mut m),
                cols: {
                    let [a, b] = &mut cols;
                    [Shared::new(a), Shared::new(b)]
                },
                activations: activations.iter_mut().map(|a| Shared::new(a)).collect(),
                pooled: pooled.iter_mut().map(|a| Shared::new(a)).collect(),
                cached: cache
                    .iter_mut()
                    .map(|layer| {
                        (
                            Shared::new(&mut layer.weight),
                            Shared::new(&mut layer.scale),
                            Shared::new(&mut layer.u),
                        )
                    })
                    .collect(),
                features: features.iter_mut().map(|a| Shared::new(a)).collect(),
            };
            let plan = Plan {
                convs,
                dense,
                x,
                first_weight: &first_weight,
                fresh: &fresh,
                buffers: &buffers,
            };
            let mut list = Vec::new();
            for (layer, conv) in convs.iter().enumerate() {
                if layer > 0 && !by_im2col(conv) {
                    list.push(plan.products(layer));
                }
                list.push(plan.outputs(layer));
            }
            list.extend((0..dense.len()).map(|i| plan.fully_connected(i)));
            let checks = plan.checks();
            let background = Stage::new(checks.len(), |c| {
                let (i, channels) = checks[c].clone();
                let layer = &winograd_layers[i];
                let patch = layer.shape.patch();
                let (weight, scale, _) = &buffers.cached[i];
                // SAFETY: no stage writes the cached copies of a layer that is not fresh.
                let (weight, scale) = unsafe { (weight.read(), scale.read()) };
                let range = channels.start * patch..channels.end * patch;
                let same = same_bits(&weight[range.clone()], &layer.weight[range])
                    && layer.scale.is_none_or(|now| {
                        same_bits(&scale[channels.clone()], &now[channels.clone()])
                    });
                if !same {
                    stale[i].store(true, Ordering::Relaxed);
                }
            });
            stages::run_with_background(&list, &background);
        }
        let stale: Vec<bool> = stale.into_iter().map(AtomicBool::into_inner).collect();
        if !stale.contains(&true) {
            break;
        }
        fresh = stale;
    }
    drop(guard);
    let [a, b] = cols;
    ws.give([v, m, a, b]);
    ws.give(activations);
    ws.give(pooled);
    features.pop().unwrap_or_default()
}

/// The buffers the stages share, each written in disjoint pieces by one stage's chunks.
struct Buffers<'a> {
    /// The next Winograd layer's transformed input `V`.
    v: Shared<'a>,
    /// The running Winograd layer's products `M`.
    m: Shared<'a>,
    /// The im2col matrices of the im2col layers: layer `i` reads `cols[i % 2]`.
    cols: [Shared<'a>; 2],
    /// Each convolution's output, and its pooled planes (empty where no pool follows).
    activations: Vec<Shared<'a>>,
    pooled: Vec<Shared<'a>>,
    /// The Winograd layers' cache: (weights, scale, `U`).
    cached: Vec<(Shared<'a>, Shared<'a>, Shared<'a>)>,
    /// Each fully connected layer's outputs.
    features: Vec<Shared<'a>>,
}

/// Builds the stages of one pass.
struct Plan<'a, 'b> {
    convs: &'a [Conv<'a>],
    dense: &'a [Dense<'a>],
    x: &'a [f32],
    first_weight: &'a [f32],
    /// The Winograd layers whose transformed weights are derived in this pass.
    fresh: &'a [bool],
    buffers: &'b Buffers<'a>,
}

impl<'a, 'b> Plan<'a, 'b> {
    /// Winograd layer `layer` (from 1): one gemm per tile position and chunk, over all output
    /// channels.
    fn products(&self, layer: usize) -> Stage<'b> {
        let s = self.convs[layer].shape;
        let (v, m) = (self.buffers.v, self.buffers.m);
        let u = self.buffers.cached[layer - 1].2;
        let tiling = Tiling::for_shape(&s);
        let (positions, len) = (tiling.positions(), tiling.slots(&s));
        let products_len = s.cout * len;
        Stage::new(positions, move |xi| {
            // SAFETY: `V` and `U` were written by earlier stages; chunk xi alone writes the
            // products of position xi.
            let (v, u, m) = unsafe {
                (
                    v.read(),
                    u.read(),
                    m.piece(xi * products_len..(xi + 1) * products_len),
                )
            };
            tiling::products(u, &v[..s.cin * positions * len], &s, len, xi, m);
        })
    }

    /// Convolution `layer`'s output by blocks of channels: computed (directly for the first,
    /// by the inverse transform for the others), pooled where a pool follows, and transformed
    /// as the next layer's input; the next layer's weights are derived here when fresh.
    fn outputs(&self, layer: usize) -> Stage<'b> {
        let conv = self.convs[layer];
        let s = conv.shape;
        let hw = s.out_h() * s.out_w();
        let (x, buffers, first_weight) = (self.x, self.buffers, self.first_weight);
        let out = buffers.activations[layer];
        let m = buffers.m;
        let pool = conv.pool.map(|shape| (shape, buffers.pooled[layer]));
        let next = self.convs.get(layer + 1).map(|next| {
            let (weight, scale, u) = buffers.cached[layer];
            (*next, weight, scale, u, self.fresh[layer])
        });
        let chunks = s.cout.div_ceil(CHANNELS_PER_CHUNK);
        let (v, cols) = (buffers.v, buffers.cols);
        Stage::new(chunks, move |c| {
            let channels = block(c, chunks, s.cout);
            // SAFETY: chunk c alone writes these channels of this layer's output.
            let o = unsafe { out.piece(channels.start * hw..channels.end * hw) };
            if layer == 0 {
                conv_single_plane(
                    x,
                    first_weight,
                    conv.bias,
                    conv.slope,
                    &s,
                    channels.start,
                    o,
                );
            } else if by_im2col(&conv) {
                let patch = s.patch();
                // SAFETY: the previous layer's stage wrote this matrix; this stage writes
                // only the other one.
                let col = unsafe { cols[layer % 2].read() };
                let stride = col_stride(hw);
                // oᵀ (stride x channels) = colᵀ (stride x patch) Wᵀ (patch x channels): gemm
                // reads both operands where they lie (the weights as its right operand)
                // instead of packing them; rows from hw on are dropped.
                with_scratch(stride * channels.len(), |products| {
                    matmul_strided(
                        (stride, channels.len(), patch),
                        products,
                        (1, stride),
                        false,
                        &col[..patch * stride],
                        (1, stride),
                        &conv.weight[channels.start * patch..channels.end * patch],
                        (1, patch),
                        Parallelism::None,
                    );
                    let planes = o.chunks_mut(hw).zip(products.chunks(stride));
                    for (co, (plane, products)) in channels.clone().zip(planes) {
                        let scale = conv.scale.map_or(1.0, |scale| scale[co]);
                        let (bias, slope) = (conv.bias[co], conv.slope_of(co));
                        for (v, &p) in plane.iter_mut().zip(products) {
                            let y = p * scale + bias;
                            *v = if y > 0.0 { y } else { slope * y };
                        }
                    }
                });
            } else {
                // SAFETY: the products' stage is done.
                let m = unsafe { m.read() };
                let tiling = Tiling::for_shape(&s);
                let m = &m[..tiling.positions() * s.cout * tiling.slots(&s)];
                let mut scratch = Vec::new();
                for (co, plane) in channels.clone().zip(o.chunks_mut(hw)) {
                    let (bias, slope) = (conv.bias[co], conv.slope_of(co));
                    tiling.output_channel(m, &s, 1, 0, co, bias, slope, plane, &mut scratch);
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
            let Some((next, cached_weight, cached_scale, u, fresh)) = next else {
                return;
            };
            let n = next.shape;
            if by_im2col(&next) {
                // These channels' rows (ci, ky, kx) of the next layer's im2col matrix.
                let (outputs, stride) = (n.out_h() * n.out_w(), col_stride(n.out_h() * n.out_w()));
                let rows = n.k * n.k * stride;
                let own = ConvShape {
                    cin: channels.len(),
                    ..n
                };
                // SAFETY: the next layer's matrix is read only by its own stage, after this;
                // chunk c alone writes these channels' rows.
                let dst = unsafe {
                    cols[(layer + 1) % 2].piece(channels.start * rows..channels.end * rows)
                };
                for (r, row) in dst.chunks_mut(stride).enumerate() {
                    im2col_row(input, &own, r, &mut row[..outputs]);
                }
                return;
            }
            // These channels are the next layer's input planes `channels`, each written as
            // one row of every position of `V` (positions, cin, slots).
            let tiling = Tiling::for_shape(&n);
            let (positions, len) = (tiling.positions(), tiling.slots(&n));
            let mut scratch = tiling::InputScratch::default();
            let plane_len = n.h * n.w;
            for (ci, plane) in channels.clone().zip(input.chunks(plane_len)) {
                let mut rows: [&mut [f32]; tiling::MAX_POSITIONS] = std::array::from_fn(|xi| {
                    if xi >= positions {
                        return Default::default();
                    }
                    let at = (xi * n.cin + ci) * len;
                    // SAFETY: the next layer's `V` is read only by its products' stage, after
                    // this; chunk c alone writes these channels' rows.
                    unsafe { v.piece(at..at + len) }
                });
                tiling.transform_input(plane, &n, &mut rows[..positions], &mut scratch);
            }
            if fresh {
                let (patch, cin) = (n.patch(), n.cin);
                let derive = block(c, chunks, n.cout);
                let weights = &next.weight[derive.start * patch..derive.end * patch];
                let scale = next.scale.map(|scale| &scale[derive.clone()]);
                let scaled = scaled_weights(weights, patch, scale);
                if let Some(scale) = scale {
                    // SAFETY: chunk c alone writes these channels' cached scale.
                    unsafe { cached_scale.piece(derive.clone()) }.copy_from_slice(scale);
                }
                let mut transformed = vec![0f32; derive.len() * tiling.positions() * cin];
                tiling.transform_weights(&scaled, cin, &mut transformed);
                tiling.positions_first(&transformed, cin, |xi| {
                    let at = (xi * n.cout + derive.start) * cin;
                    // SAFETY: chunk c alone writes these channels' rows of each position.
                    unsafe { u.piece(at..at + derive.len() * cin) }
                });
                // SAFETY: chunk c alone writes these channels' cached weights.
                unsafe { cached_weight.piece(derive.start * patch..derive.end * patch) }
                    .copy_from_slice(weights);
            }
        })
    }

    /// Fully connected layer `i` by blocks of output features, then its PReLU if any.
    fn fully_connected(&self, i: usize) -> Stage<'b> {
        let layer = self.dense[i];
        let input = match i {
            0 => {
                let last = self.convs.len() - 1;
                if self.convs[last].pool.is_some() {
                    self.buffers.pooled[last]
                } else {
                    self.buffers.activations[last]
                }
            }
            _ => self.buffers.features[i - 1],
        };
        let dst = self.buffers.features[i];
        let (inp, out) = (layer.inputs, layer.outputs);
        let chunks = out.div_ceil(FEATURES_PER_CHUNK);
        Stage::new(chunks, move |c| {
            let features = block(c, chunks, out);
            // SAFETY: the input's stage is done; chunk c alone writes these features.
            let (x, y) = unsafe { (input.read(), dst.piece(features.clone())) };
            y.copy_from_slice(&layer.bias[features.clone()]);
            matmul(
                (1, features.len(), inp),
                y,
                features.len(),
                true,
                &x[..inp],
                (inp, 1),
                &layer.weight[features.start * inp..],
                (1, inp),
                Parallelism::None,
            );
            if let Some(a) = layer.slope {
                for v in y {
                    *v = if *v > 0.0 { *v } else { a * *v };
                }
            }
        })
    }

    /// The weight checks: (Winograd layer index, output channels) for blocks of output
    /// channels of every layer not derived in this pass.
    fn checks(&self) -> Vec<(usize, Range<usize>)> {
        (0..self.fresh.len())
            .filter(|&i| !self.fresh[i] && !by_im2col(&self.convs[i + 1]))
            .flat_map(|i| {
                let cout = self.convs[i + 1].shape.cout;
                let chunks = cout.div_ceil(CHANNELS_PER_CHECK);
                (0..chunks).map(move |c| (i, block(c, chunks, cout)))
            })
            .collect()
    }
}
