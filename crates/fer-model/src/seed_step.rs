//! The seed CNN's whole training step on the CPU: forward, loss and backward written for the
//! network, on [`crate::kernels`], without candle's autograd graph.
//!
//! candle's autograd zero-fills and adds every gradient of the graph single-threaded and keeps
//! every intermediate alive; here each activation is computed once, kept once, and each
//! gradient written once. It computes what [`SeedCnn::forward`](crate::SeedCnn) + [`loss`] +
//! `backward()` compute (same dropout masks from the same stream; tests hold both to 1e-4).
//! Inference of a batch runs the same kernels; one image goes to [`crate::one_image`].

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Storage, Tensor, bail};
use gemm::Parallelism;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::kernels::{self, ConvShape, PoolKind, PoolShape, matmul};
use crate::model::{Head, NUM_CLASSES};
use crate::ops::contiguous_f32;

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
    /// Batch-1 inference's transformed weights, kept between calls.
    pub(crate) winograd: std::sync::Mutex<crate::one_image::WinogradWeights>,
}

impl Workspace {
    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f32>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of exactly `len` floats (stale contents).
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free();
        match free.iter().position(|v| v.len() == len) {
            Some(i) => free.swap_remove(i),
            None => vec![0f32; len],
        }
    }

    pub(crate) fn give(&self, buffers: impl IntoIterator<Item = Vec<f32>>) {
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
pub(crate) fn geometry(n: usize) -> ([ConvShape; 5], [PoolShape; 3]) {
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
            scores.extend(crate::one_image::forward(ws, &p, image));
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
