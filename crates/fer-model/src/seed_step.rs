//! The seed CNN's whole training step on the CPU: forward, loss and backward written for the
//! network, on [`crate::kernels`], without candle's autograd graph.
//!
//! candle's autograd zero-fills and adds every gradient of the graph single-threaded and keeps
//! every intermediate alive; here each activation is computed once, kept once, and each
//! gradient written once. It computes what [`SeedCnn::forward`](crate::SeedCnn) + [`loss`] +
//! `backward()` compute (same dropout masks from the same stream; tests hold both to 1e-4).

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Storage, Tensor, bail};
use gemm::Parallelism;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::kernels::{self, ConvShape, PoolKind, PoolShape, matmul};
use crate::model::{Head, NUM_CLASSES};
use crate::ops::contiguous_f32;
use crate::winograd;

/// The parameters in this order: conv1 w, b, prelu1; ... conv5 w, b, prelu5; fc1 w, b;
/// shared prelu; fc2 w, b; fc3 w, b.
pub(crate) const PARAMS: usize = 22;

fn slice<'a>(storage: &'a Storage, layout: &candle_core::Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        bail!("the fused seed step runs on the CPU");
    };
    contiguous_f32(cpu, layout, "seed step")
}

/// Whether the fused step can run on these tensors (CPU, f32).
pub(crate) fn applies(images: &Tensor, params: &[&Tensor; PARAMS]) -> bool {
    images.device().is_cpu()
        && images.dtype() == candle_core::DType::F32
        && params
            .iter()
            .all(|p| p.device().is_cpu() && p.dtype() == candle_core::DType::F32)
}

/// Inverted dropout mask, drawn exactly as `model::dropout` draws it.
fn dropout_mask(len: usize, p: f32, rng: Option<&mut ChaCha8Rng>) -> Option<Vec<f32>> {
    let rng = rng?;
    if p <= 0.0 {
        return None;
    }
    let keep = 1.0 - p;
    Some(
        (0..len)
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect(),
    )
}

/// Activation buffers kept between steps: a steady-state step allocates none of them again.
/// Every kernel writing into a taken buffer overwrites all of it, so stale values never leak.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    free: std::sync::Mutex<Vec<Vec<f32>>>,
    /// Inference's transformed weights (batch-1 latency), kept between calls.
    winograd: std::sync::Mutex<WinogradWeights>,
}

impl Workspace {
    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f32>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of exactly `len` floats (stale contents).
    fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free();
        match free.iter().position(|v| v.len() == len) {
            Some(i) => free.swap_remove(i),
            None => vec![0f32; len],
        }
    }

    fn give(&self, buffers: impl IntoIterator<Item = Vec<f32>>) {
        let mut free = self.free();
        free.extend(buffers);
        // Keep one step's worth (a change of batch size leaves the old sizes behind).
        if free.len() > 64 {
            let excess = free.len() - 64;
            free.drain(..excess);
        }
    }
}

/// y (n x out) = x (n x inp) * w^T + b.
fn linear(x: &[f32], w: &[f32], b: &[f32], n: usize, inp: usize, out: usize) -> Vec<f32> {
    let mut y = vec![0f32; n * out];
    for row in y.chunks_mut(out) {
        row.copy_from_slice(b);
    }
    if n == 1 {
        // One image (latency): a matrix-vector product, split over output features.
        use rayon::prelude::*;
        const FEATURES: usize = 128;
        y.par_chunks_mut(FEATURES).enumerate().for_each(|(c, y)| {
            let w = &w[c * FEATURES * inp..];
            let len = y.len();
            matmul(
                (1, len, inp),
                y,
                len,
                true,
                x,
                (inp, 1),
                w,
                (1, inp),
                Parallelism::None,
            );
        });
        return y;
    }
    let par = Parallelism::Rayon(rayon::current_num_threads());
    matmul(
        (n, out, inp),
        &mut y,
        out,
        true,
        x,
        (inp, 1),
        w,
        (1, inp),
        par,
    );
    y
}

/// Gradients of a linear layer: (dw, db, dx) from its input x and output gradient dy.
fn linear_grads(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    inp: usize,
    out: usize,
    want_dx: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let par = Parallelism::Rayon(rayon::current_num_threads());
    let mut dw = vec![0f32; out * inp];
    matmul(
        (out, inp, n),
        &mut dw,
        inp,
        false,
        dy,
        (1, out),
        x,
        (inp, 1),
        par,
    );
    let mut db = vec![0f32; out];
    for row in dy.chunks(out) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
    let mut dx = Vec::new();
    if want_dx {
        dx = vec![0f32; n * inp];
        matmul(
            (n, inp, out),
            &mut dx,
            inp,
            false,
            dy,
            (out, 1),
            w,
            (inp, 1),
            par,
        );
    }
    (dw, db, dx)
}

fn prelu(ws: &Workspace, x: &[f32], alpha: &[f32]) -> Vec<f32> {
    let mut y = ws.take(x.len());
    kernels::prelu_forward(x, alpha, 1, &mut y);
    y
}

fn conv(ws: &Workspace, x: &[f32], w: &[f32], b: &[f32], s: ConvShape) -> Vec<f32> {
    let mut y = ws.take(s.batch * s.cout * s.out_h() * s.out_w());
    kernels::conv2d_forward(x, w, Some(b), s, &mut y);
    y
}

fn pool(ws: &Workspace, x: &[f32], s: PoolShape, argmax: Option<&mut [u32]>) -> Vec<f32> {
    let mut y = ws.take(s.planes * s.out_h() * s.out_w());
    kernels::pool_forward(x, s, &mut y, argmax);
    y
}

/// Loss of the head and its gradient with respect to the scores (n x 7).
fn head_loss(head: Head, scores: &[f32], labels: &[u32]) -> Result<(f32, Vec<f32>)> {
    let n = labels.len();
    let mut grad = vec![0f32; scores.len()];
    let mut total = 0f32;
    for ((row, g), &label) in scores
        .chunks(NUM_CLASSES)
        .zip(grad.chunks_mut(NUM_CLASSES))
        .zip(labels)
    {
        let label = label as usize;
        if label >= NUM_CLASSES {
            bail!("label {label} is not one of the {NUM_CLASSES} classes");
        }
        match head {
            Head::Softmax => {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
                let log_sum = sum.ln();
                total -= row[label] - max - log_sum;
                for (k, (g, &v)) in g.iter_mut().zip(row).enumerate() {
                    let p = (v - max - log_sum).exp();
                    *g = (p - if k == label { 1.0 } else { 0.0 }) / n as f32;
                }
            }
            Head::Svm => {
                for (k, (g, &v)) in g.iter_mut().zip(row).enumerate() {
                    let t = if k == label { 1.0 } else { -1.0 };
                    let margin = (1.0 - t * v).max(0.0);
                    total += margin * margin;
                    *g = -2.0 * t * margin / n as f32;
                }
            }
        }
    }
    Ok((total / n as f32, grad))
}

/// The five convolutions and three pools of the seed CNN at batch `n`.
fn geometry(n: usize) -> ([ConvShape; 5], [PoolShape; 3]) {
    let convs = [
        ConvShape {
            batch: n,
            cin: 1,
            h: 48,
            w: 48,
            cout: 64,
            k: 5,
            pad: 0,
        },
        ConvShape {
            batch: n,
            cin: 64,
            h: 22,
            w: 22,
            cout: 64,
            k: 3,
            pad: 1,
        },
        ConvShape {
            batch: n,
            cin: 64,
            h: 22,
            w: 22,
            cout: 128,
            k: 3,
            pad: 1,
        },
        ConvShape {
            batch: n,
            cin: 128,
            h: 10,
            w: 10,
            cout: 128,
            k: 3,
            pad: 1,
        },
        ConvShape {
            batch: n,
            cin: 128,
            h: 10,
            w: 10,
            cout: 128,
            k: 3,
            pad: 1,
        },
    ];
    let pool1 = PoolShape {
        kind: PoolKind::Max,
        planes: n * 64,
        h: 44,
        w: 44,
        k: 5,
        stride: 2,
        pad: 2,
    };
    let pool3 = PoolShape {
        kind: PoolKind::Avg,
        planes: n * 128,
        h: 22,
        w: 22,
        k: 3,
        stride: 2,
        pad: 0,
    };
    let pool5 = PoolShape {
        kind: PoolKind::Avg,
        planes: n * 128,
        h: 10,
        w: 10,
        k: 3,
        stride: 2,
        pad: 1,
    };

    (convs, [pool1, pool3, pool5])
}

/// The loss and the gradients of the 22 parameters (in [`PARAMS`] order) for one batch.
pub(crate) fn loss_and_grads(
    ws: &Workspace,
    params: &[&Tensor; PARAMS],
    head: Head,
    dropout: f32,
    images: &Tensor,
    labels: &Tensor,
    mut rng: Option<&mut ChaCha8Rng>,
) -> Result<(f32, GradStore)> {
    let &[n, 1, 48, 48] = images.dims() else {
        bail!(
            "the seed CNN takes (N, 1, 48, 48) images, got {:?}",
            images.dims()
        );
    };
    let labels: Vec<u32> = labels.to_vec1()?;
    if labels.len() != n {
        bail!("{} labels for {n} images", labels.len());
    }
    let images = images.contiguous()?;
    let image_guard = images.storage_and_layout();
    let x = slice(&image_guard.0, image_guard.1)?;
    // Read the parameters in place (read locks held for the step; nothing writes them now).
    let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
    let p: Vec<&[f32]> = guards
        .iter()
        .map(|(storage, layout)| slice(storage, layout))
        .collect::<Result<_>>()?;
    let (convs, [pool1, pool3, pool5]) = geometry(n);
    for (i, s) in convs.iter().enumerate() {
        if p[3 * i].len() != s.cout * s.patch() || p[3 * i + 1].len() != s.cout {
            bail!("conv layer {} has unexpected parameter sizes", i + 1);
        }
    }
    // Forward, keeping what the backward reads.
    let mut argmax1 = vec![0u32; pool1.planes * pool1.out_h() * pool1.out_w()];
    let c1 = conv(ws, x, p[0], p[1], convs[0]);
    let a1 = prelu(ws, &c1, p[2]);
    let p1 = pool(ws, &a1, pool1, Some(&mut argmax1));
    let c2 = conv(ws, &p1, p[3], p[4], convs[1]);
    let a2 = prelu(ws, &c2, p[5]);
    let c3 = conv(ws, &a2, p[6], p[7], convs[2]);
    let a3 = prelu(ws, &c3, p[8]);
    let p3 = pool(ws, &a3, pool3, None);
    let c4 = conv(ws, &p3, p[9], p[10], convs[3]);
    let a4 = prelu(ws, &c4, p[11]);
    let c5 = conv(ws, &a4, p[12], p[13], convs[4]);
    let a5 = prelu(ws, &c5, p[14]);
    let p5 = pool(ws, &a5, pool5, None); // n x 3200
    let f1 = linear(&p5, p[15], p[16], n, 3200, 1024);
    let g1 = prelu(ws, &f1, p[17]);
    let mask1 = dropout_mask(g1.len(), dropout, rng.as_deref_mut());
    let d1 = match &mask1 {
        Some(m) => g1.iter().zip(m).map(|(g, m)| g * m).collect(),
        None => g1,
    };
    let f2 = linear(&d1, p[18], p[19], n, 1024, 1024);
    let g2 = prelu(ws, &f2, p[17]);
    let mask2 = dropout_mask(g2.len(), dropout, rng);
    let d2 = match &mask2 {
        Some(m) => g2.iter().zip(m).map(|(g, m)| g * m).collect(),
        None => g2,
    };
    let scores = linear(&d2, p[20], p[21], n, 1024, NUM_CLASSES);
    let (loss, ds) = head_loss(head, &scores, &labels)?;

    // Backward.
    let mut grads: Vec<Vec<f32>> = vec![Vec::new(); PARAMS];
    let (dw, db, dd2) = linear_grads(&d2, p[20], &ds, n, 1024, NUM_CLASSES, true);
    (grads[20], grads[21]) = (dw, db);
    let undrop = |d: Vec<f32>, mask: &Option<Vec<f32>>| match mask {
        Some(m) => d.iter().zip(m).map(|(d, m)| d * m).collect(),
        None => d,
    };
    let dg2 = undrop(dd2, &mask2);
    let mut df2 = vec![0f32; dg2.len()];
    let dalpha2 = kernels::prelu_backward(&f2, p[17], &dg2, 1, &mut df2);
    let (dw, db, dd1) = linear_grads(&d1, p[18], &df2, n, 1024, 1024, true);
    (grads[18], grads[19]) = (dw, db);
    let dg1 = undrop(dd1, &mask1);
    let mut df1 = vec![0f32; dg1.len()];
    let dalpha1 = kernels::prelu_backward(&f1, p[17], &dg1, 1, &mut df1);
    grads[17] = vec![dalpha2[0] + dalpha1[0]];
    let (dw, db, dp5) = linear_grads(&p5, p[15], &df1, n, 3200, 1024, true);
    (grads[15], grads[16]) = (dw, db);

    // One conv block backward: the PReLU, then the conv's weight, bias and (optionally) input.
    let block = |layer: usize,
                 input: &[f32],
                 c: Vec<f32>,
                 da: Vec<f32>,
                 grads: &mut Vec<Vec<f32>>,
                 want_dx: bool|
     -> Vec<f32> {
        let s = convs[layer];
        let mut dc = ws.take(c.len());
        grads[3 * layer + 2] = kernels::prelu_backward(&c, p[3 * layer + 2], &da, 1, &mut dc);
        ws.give([c, da]);
        let mut dw = vec![0f32; p[3 * layer].len()];
        let mut db = vec![0f32; s.cout];
        kernels::conv2d_grad_weight(input, &dc, s, &mut dw, Some(&mut db));
        grads[3 * layer] = dw;
        grads[3 * layer + 1] = db;
        let mut dx = Vec::new();
        if want_dx {
            dx = ws.take(input.len());
            kernels::conv2d_grad_input(&dc, p[3 * layer], s, &mut dx);
        }
        ws.give([dc]);
        dx
    };
    let mut da5 = ws.take(a5.len());
    kernels::pool_backward(&a5, &dp5, pool5, &mut da5);
    ws.give([a5, p5]);
    let da4 = block(4, &a4, c5, da5, &mut grads, true);
    ws.give([a4]);
    let dp3 = block(3, &p3, c4, da4, &mut grads, true);
    let mut da3 = ws.take(a3.len());
    kernels::pool_backward(&a3, &dp3, pool3, &mut da3);
    ws.give([p3, dp3, a3]);
    let da2 = block(2, &a2, c3, da3, &mut grads, true);
    ws.give([a2]);
    let dp1 = block(1, &p1, c2, da2, &mut grads, true);
    let mut da1 = ws.take(a1.len());
    kernels::max_pool_backward(&argmax1, &dp1, pool1, &mut da1);
    ws.give([p1, dp1, a1]);
    block(0, x, c1, da1, &mut grads, false);

    let mut store = GradStore::default();
    for (param, grad) in params.iter().zip(grads) {
        store.insert(param, Tensor::from_vec(grad, param.shape(), &Device::Cpu)?);
    }
    Ok((loss, store))
}

/// Inference: the scores (log-probabilities for the softmax head) of `images`, no dropout,
/// nothing recorded for backpropagation.
pub(crate) fn predict(
    ws: &Workspace,
    params: &[&Tensor; PARAMS],
    head: Head,
    images: &Tensor,
) -> Result<Tensor> {
    let &[n, 1, 48, 48] = images.dims() else {
        bail!(
            "the seed CNN takes (N, 1, 48, 48) images, got {:?}",
            images.dims()
        );
    };
    let images = images.contiguous()?;
    let image_guard = images.storage_and_layout();
    let x = slice(&image_guard.0, image_guard.1)?;
    // Read the parameters in place (read locks held for the step; nothing writes them now).
    let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
    let p: Vec<&[f32]> = guards
        .iter()
        .map(|(storage, layout)| slice(storage, layout))
        .collect::<Result<_>>()?;
    let scores = if n == 1 || n < rayon::current_num_threads() {
        // One image, or fewer images than threads (batch-1 latency): each image's layers as
        // stages on all threads at once.
        let mut scores = Vec::with_capacity(n * NUM_CLASSES);
        for image in x.chunks(48 * 48) {
            scores.extend(forward_one_image(ws, &p, image));
        }
        scores
    } else {
        // The whole forward runs on a pool thread: a caller from outside the pool hands over
        // once, instead of once for every parallel region.
        rayon::scope(|_| forward_scores(ws, &p, n, x))
    };
    Tensor::from_vec(finish_scores(head, scores), (n, NUM_CLASSES), &Device::Cpu)
}

/// The network's raw scores (n x 7) for `n` images `x`, parameters `p` in [`PARAMS`] order.
fn forward_scores(ws: &Workspace, p: &[&[f32]], n: usize, x: &[f32]) -> Vec<f32> {
    let (convs, [pool1, pool3, pool5]) = geometry(n);
    let block = |x: &[f32], layer: usize| {
        let s = convs[layer];
        let mut a = ws.take(s.batch * s.cout * s.out_h() * s.out_w());
        let [w, b, alpha] = [0, 1, 2].map(|i| p[3 * layer + i]);
        kernels::conv2d_prelu_forward(x, w, b, alpha, s, &mut a);
        a
    };
    let a1 = block(x, 0);
    let p1 = pool(ws, &a1, pool1, None);
    let a2 = block(&p1, 1);
    let a3 = block(&a2, 2);
    let p3 = pool(ws, &a3, pool3, None);
    let a4 = block(&p3, 3);
    let a5 = block(&a4, 4);
    let p5 = pool(ws, &a5, pool5, None);
    let g1 = prelu(ws, &linear(&p5, p[15], p[16], n, 3200, 1024), p[17]);
    let g2 = prelu(ws, &linear(&g1, p[18], p[19], n, 1024, 1024), p[17]);
    let scores = linear(&g2, p[20], p[21], n, 1024, NUM_CLASSES);
    ws.give([a1, p1, a2, a3, p3, a4, a5, p5]);
    scores
}

/// Output features per chunk of a fully connected layer for one image.
const FEATURES_PER_CHUNK: usize = 128;

/// Chunks of a Winograd layer's transforms (input planes and weight blocks) for one image.
const TRANSFORM_CHUNKS: usize = 8;

/// Output channels per chunk of a Winograd layer's inverse transform (and pooling).
const OUTPUT_CHANNELS_PER_CHUNK: usize = 16;

/// conv2..conv5's weights in Winograd form ([`winograd`]'s `U`) for inference, each beside
/// the raw weights it was derived from. A block of output channels is derived again whenever
/// its raw weights differ bit for bit (after a training step or a load), so it never goes
/// stale.
#[derive(Debug, Default)]
pub(crate) struct WinogradWeights {
    /// Per layer (conv2..conv5): (raw weights, `U`).
    layers: [(Vec<f32>, Vec<f32>); 4],
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

/// The raw scores (7) of one image `x`, every layer a [`stages`](crate::stages) stage spread
/// over all of the pool's threads. conv1 (one input plane): a direct convolution by blocks of
/// output channels; conv2..conv5 (3x3): Winograd F(2x2, 3x3) in three stages (transforms,
/// one gemm per tile position, inverse transform by blocks of output channels); a block is
/// pooled at once where a pool follows; then the fully connected layers by blocks of features.
/// Same kernels whatever the thread count, so the same bits; within about 1e-6 of
/// [`forward_scores`] (Winograd reassociates the convolutions' sums).
fn forward_one_image(ws: &Workspace, p: &[&[f32]], x: &[f32]) -> Vec<f32> {
    use crate::stages::{Shared, Stage};
    let (convs, pools) = geometry(1);
    let v_len = convs[1..]
        .iter()
        .map(|s| s.cin * winograd::XI * winograd::slots(s));
    let mut v = ws.take(v_len.max().unwrap_or(0));
    let m_len = convs[1..]
        .iter()
        .map(|s| winograd::XI * s.cout * winograd::slots(s));
    let mut m = ws.take(m_len.max().unwrap_or(0));
    // Each conv layer's output, and the pooled planes of the pooled ones.
    let mut activations: Vec<Vec<f32>> = convs
        .iter()
        .map(|s| ws.take(s.cout * s.out_h() * s.out_w()))
        .collect();
    let mut pooled: Vec<Vec<f32>> = pools
        .iter()
        .map(|s| ws.take(s.planes * s.out_h() * s.out_w()))
        .collect();
    let (mut g1, mut g2, mut scores) = (vec![0f32; 1024], vec![0f32; 1024], vec![0f32; 7]);
    // The cached transformed weights; a concurrent predict on the same model derives its own.
    let mut own = WinogradWeights::default();
    let mut guard = match ws.winograd.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let cache = guard.as_deref_mut().unwrap_or(&mut own);
    let mut fresh = [false; 4];
    for (i, (raw, u)) in cache.layers.iter_mut().enumerate() {
        let s = convs[i + 1];
        if raw.len() != s.cout * s.patch() {
            *raw = vec![0.0; s.cout * s.patch()];
            *u = vec![0.0; s.cout * winograd::XI * s.cin];
            fresh[i] = true;
        }
    }
    // The cached weights are used at once and checked in the background against the
    // weights (bit for bit); a layer found changed is derived again and the image computed
    // again, so a stale cache never reaches the scores.
    loop {
        let stale: [std::sync::atomic::AtomicBool; 4] = Default::default();
        {
            let v_shared = Shared::new(&mut v);
            let m_shared = Shared::new(&mut m);
            let act: Vec<Shared> = activations.iter_mut().map(|a| Shared::new(a)).collect();
            let pool_out: Vec<Shared> = pooled.iter_mut().map(|a| Shared::new(a)).collect();
            let cached: Vec<(Shared, Shared)> = cache
                .layers
                .iter_mut()
                .map(|(raw, u)| (Shared::new(raw), Shared::new(u)))
                .collect();
            let fc = [
                Shared::new(&mut g1),
                Shared::new(&mut g2),
                Shared::new(&mut scores),
            ];
            // Which pool follows conv layer i (index into `pools`), if any.
            let pool_after = [Some(0), None, Some(1), None, Some(2)];
            let mut stages = Vec::new();
            for (layer, s) in convs.iter().enumerate() {
                let source = match layer {
                    0 => None,
                    1 => Some(pool_out[0]),
                    2 => Some(act[1]),
                    3 => Some(pool_out[1]),
                    _ => Some(act[3]),
                };
                // SAFETY: the layer's input was written by an earlier stage.
                let input = move || source.map_or(x, |buffer| unsafe { buffer.read() });
                let hw = s.out_h() * s.out_w();
                let [w, b, alpha] = [0, 1, 2].map(|i| p[3 * layer + i]);
                let (out, pool) = (
                    act[layer],
                    pool_after[layer].map(|i| (pools[i], pool_out[i])),
                );
                // Pools the planes of `channels` (already in `o`) where a pool follows.
                let pool_block = move |channels: std::ops::Range<usize>, o: &[f32]| {
                    if let Some((shape, pooled)) = pool {
                        let plane = shape.out_h() * shape.out_w();
                        let shape = PoolShape {
                            planes: channels.len(),
                            ..shape
                        };
                        // SAFETY: chunk c alone writes the pooled planes of its channels.
                        let dst =
                            unsafe { pooled.piece(channels.start * plane..channels.end * plane) };
                        kernels::pool_planes(o, &shape, dst);
                    }
                };
                if layer == 0 {
                    // One input plane: a direct convolution by blocks of output channels.
                    stages.push(Stage::new(
                        s.cout.div_ceil(OUTPUT_CHANNELS_PER_CHUNK),
                        move |c| {
                            let channels = c * OUTPUT_CHANNELS_PER_CHUNK
                                ..((c + 1) * OUTPUT_CHANNELS_PER_CHUNK).min(s.cout);
                            // SAFETY: chunk c alone writes these channels.
                            let o = unsafe { out.piece(channels.start * hw..channels.end * hw) };
                            kernels::conv_single_plane(x, w, b, alpha, s, channels.start, o);
                            pool_block(channels, o);
                        },
                    ));
                    continue;
                }
                let len = winograd::slots(s);
                let (v_plane, u_rows, patch) =
                    (winograd::XI * len, winograd::XI * s.cin, s.patch());
                let (raw, u) = cached[layer - 1];
                let fresh = fresh[layer - 1];
                // Transform the input; check (and where they changed, transform) the weights.
                let (in_per_chunk, out_per_chunk) = (
                    s.cin.div_ceil(TRANSFORM_CHUNKS),
                    s.cout.div_ceil(TRANSFORM_CHUNKS),
                );
                stages.push(Stage::new(TRANSFORM_CHUNKS, move |c| {
                    let planes = (c * in_per_chunk).min(s.cin)..((c + 1) * in_per_chunk).min(s.cin);
                    let channels =
                        (c * out_per_chunk).min(s.cout)..((c + 1) * out_per_chunk).min(s.cout);
                    // SAFETY: chunk c alone writes these planes of `V` and these channels' weights.
                    let (v, raw, u) = unsafe {
                        (
                            v_shared.piece(planes.start * v_plane..planes.end * v_plane),
                            raw.piece(channels.start * patch..channels.end * patch),
                            u.piece(channels.start * u_rows..channels.end * u_rows),
                        )
                    };
                    let plane_len = s.h * s.w;
                    let src = &input()[planes.start * plane_len..planes.end * plane_len];
                    let mut scratch = winograd::InputScratch::default();
                    for (plane, v) in src.chunks(plane_len).zip(v.chunks_mut(v_plane)) {
                        winograd::transform_input(plane, s, v, &mut scratch);
                    }
                    if fresh {
                        let weights = &w[channels.start * patch..channels.end * patch];
                        winograd::transform_weights(weights, s.cin, u);
                        raw.copy_from_slice(weights);
                    }
                }));
                // The 16 gemms, one per chunk, each over all output channels.
                let products_len = s.cout * len;
                stages.push(Stage::new(winograd::XI, move |xi| {
                    // SAFETY: the transforms' stage is done; chunk xi alone writes position xi.
                    let (v, u, m) = unsafe {
                        (
                            v_shared.read(),
                            u.read(),
                            m_shared.piece(xi * products_len..(xi + 1) * products_len),
                        )
                    };
                    winograd::products(&v[..s.cin * v_plane], u, s, xi, m);
                }));
                // The inverse transform, bias and PReLU by blocks of output channels, then pooled.
                stages.push(Stage::new(
                    s.cout.div_ceil(OUTPUT_CHANNELS_PER_CHUNK),
                    move |c| {
                        let channels = c * OUTPUT_CHANNELS_PER_CHUNK
                            ..((c + 1) * OUTPUT_CHANNELS_PER_CHUNK).min(s.cout);
                        // SAFETY: the products' stage is done; chunk c alone writes these channels.
                        let (m, o) = unsafe {
                            (
                                m_shared.read(),
                                out.piece(channels.start * hw..channels.end * hw),
                            )
                        };
                        let mut scratch = Vec::new();
                        for (co, plane) in channels.clone().zip(o.chunks_mut(hw)) {
                            let slope = alpha[if alpha.len() == 1 { 0 } else { co }];
                            let m = &m[..winograd::XI * products_len];
                            winograd::output_channel(m, s, co, b[co], slope, plane, &mut scratch);
                        }
                        pool_block(channels, o);
                    },
                ));
            }
            // The fully connected layers: (input, weight, bias, PReLU slope, inputs, outputs).
            let layers = [
                (pool_out[2], p[15], p[16], Some(p[17]), 3200, 1024),
                (fc[0], p[18], p[19], Some(p[17]), 1024, 1024),
                (fc[1], p[20], p[21], None, 1024, NUM_CLASSES),
            ];
            for (i, (input, w, b, alpha, inp, out)) in layers.into_iter().enumerate() {
                let dst = fc[i];
                stages.push(Stage::new(out.div_ceil(FEATURES_PER_CHUNK), move |c| {
                    let features = c * FEATURES_PER_CHUNK..((c + 1) * FEATURES_PER_CHUNK).min(out);
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
                }));
            }
            // The check: blocks of output channels of every layer not derived in this pass.
            let checks: Vec<(usize, std::ops::Range<usize>)> = (0..4)
                .filter(|&i| !fresh[i])
                .flat_map(|i| {
                    let (cout, patch) = (convs[i + 1].cout, convs[i + 1].patch());
                    (0..cout).step_by(OUTPUT_CHANNELS_PER_CHUNK).map(move |c| {
                        (
                            i,
                            c * patch..(c + OUTPUT_CHANNELS_PER_CHUNK).min(cout) * patch,
                        )
                    })
                })
                .collect();
            let (checks, stale) = (&checks, &stale);
            let background = Stage::new(checks.len(), move |c| {
                let (i, range) = checks[c].clone();
                // SAFETY: no stage writes the raw copy of a layer that is not fresh.
                let raw = unsafe { cached[i].0.read() };
                if !same_bits(&raw[range.clone()], &p[3 * (i + 1)][range]) {
                    stale[i].store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
            crate::stages::run_with_background(&stages, &background);
        }
        let stale = stale.map(|s| s.into_inner());
        if !stale.contains(&true) {
            break;
        }
        fresh = stale;
    }
    ws.give([v, m]);
    ws.give(activations);
    ws.give(pooled);
    scores
}

/// Log-softmax of each row for the softmax head; the SVM head's margins as they are.
fn finish_scores(head: Head, mut scores: Vec<f32>) -> Vec<f32> {
    if head == Head::Softmax {
        for row in scores.chunks_mut(NUM_CLASSES) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum = row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
            for v in row {
                *v = *v - max - log_sum;
            }
        }
    }
    scores
}
