//! The seed CNN's whole training step on the CPU: forward, loss and backward written for the
//! network, on the [`cpu`](crate::cpu) kernels, without candle's autograd graph.
//!
//! candle's autograd zero-fills and adds every gradient of the graph single-threaded and keeps
//! every intermediate alive; here each activation is computed once, kept once, and each
//! gradient written once. It computes what [`SeedCnn::forward`](super::SeedCnn) +
//! [`loss`](crate::loss::loss) + `backward()` compute (same dropout masks from the same
//! stream; tests hold both to 1e-4). Inference of a batch runs the same kernels; one image
//! goes to [`super::one_image`].

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Storage, Tensor, bail};
use fer_data::{IMAGE_PIXELS, IMAGE_SIDE};
use gemm::Parallelism;
use rand_chacha::ChaCha8Rng;

use super::one_image;
use super::params::{ConvParams, FC_HIDDEN, LinearParams, SeedParams, fc_inputs, geometry};
use crate::cpu::gemm::matmul;
use crate::cpu::shape::{ConvShape, PoolShape};
use crate::cpu::workspace::Workspace;
use crate::cpu::{conv as conv_kernels, pool as pool_kernels, prelu as prelu_kernels};
use crate::head::{Head, NUM_CLASSES};
use crate::layers::dropout;
use crate::layers::storage::cpu_f32;

fn slice<'a>(storage: &'a Storage, layout: &candle_core::Layout) -> Result<&'a [f32]> {
    cpu_f32(storage, layout, "the fused seed step")
}

/// Whether the fused step can run on these tensors (CPU, f32).
pub(crate) fn applies(images: &Tensor, params: &SeedParams<&Tensor>) -> bool {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    cpu_f32(images) && params.clone().into_list().into_iter().all(cpu_f32)
}

/// Runs `f` on the values of `params`, read in place (read locks held for the call; nothing
/// writes the parameters meanwhile), after checking every parameter's size.
fn with_values<R>(
    params: &SeedParams<&Tensor>,
    f: impl FnOnce(&SeedParams<&[f32]>) -> Result<R>,
) -> Result<R> {
    let guards = params.map(|t| t.storage_and_layout());
    let values = guards.try_map(|(storage, layout)| slice(storage, layout))?;
    let lengths = values.map(|v| v.len()).into_list();
    let expected = SeedParams::sizes().into_list();
    // The names are built only to report a mismatch: this runs on every call, batch 1 too.
    if lengths != expected {
        let names = SeedParams::names().into_list();
        for ((name, len), want) in names.into_iter().zip(lengths).zip(expected) {
            if len != want {
                bail!("seed CNN parameter {name} has {len} values, expected {want}");
            }
        }
    }
    f(&values)
}

/// y (n x out) = x (n x inp) * w^T + b.
fn linear(x: &[f32], layer: &LinearParams<&[f32]>, n: usize, inp: usize, out: usize) -> Vec<f32> {
    let (w, b) = (layer.weight, layer.bias);
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

/// Gradients of a linear layer: (dw and db, dx) from its input x and output gradient dy.
fn linear_grads(
    x: &[f32],
    layer: &LinearParams<&[f32]>,
    dy: &[f32],
    n: usize,
    inp: usize,
    out: usize,
    want_dx: bool,
) -> (LinearParams<Vec<f32>>, Vec<f32>) {
    let w = layer.weight;
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
    (
        LinearParams {
            weight: dw,
            bias: db,
        },
        dx,
    )
}

fn prelu(ws: &Workspace, x: &[f32], alpha: &[f32]) -> Vec<f32> {
    let mut y = ws.take(x.len());
    prelu_kernels::prelu_forward(x, alpha, 1, &mut y);
    y
}

fn conv(ws: &Workspace, x: &[f32], layer: &ConvParams<&[f32]>, s: ConvShape) -> Vec<f32> {
    let mut y = ws.take(s.batch * s.cout * s.out_h() * s.out_w());
    conv_kernels::conv2d_forward(x, layer.weight, Some(layer.bias), s, &mut y);
    y
}

fn pool(ws: &Workspace, x: &[f32], s: PoolShape, argmax: Option<&mut [u32]>) -> Vec<f32> {
    let mut y = ws.take(s.planes * s.out_h() * s.out_w());
    pool_kernels::pool_forward(x, s, &mut y, argmax);
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

/// The loss and the gradient of every parameter for one batch.
pub(crate) fn loss_and_grads(
    ws: &Workspace,
    params: &SeedParams<&Tensor>,
    head: Head,
    dropout: f32,
    images: &Tensor,
    labels: &Tensor,
    mut rng: Option<&mut ChaCha8Rng>,
) -> Result<(f32, GradStore)> {
    let n = image_count(images)?;
    let labels: Vec<u32> = labels.to_vec1()?;
    if labels.len() != n {
        bail!("{} labels for {n} images", labels.len());
    }
    let images = images.contiguous()?;
    let image_guard = images.storage_and_layout();
    let x = slice(&image_guard.0, image_guard.1)?;
    let (loss, grads) = with_values(params, |p| {
        let (convs, [pool1, pool3, pool5]) = geometry(n);
        let (fc_in, hidden) = (fc_inputs(), FC_HIDDEN);
        let [l1, l2, l3, l4, l5] = &p.convs;
        // Forward, keeping what the backward reads.
        let mut argmax1 = vec![0u32; pool1.planes * pool1.out_h() * pool1.out_w()];
        let c1 = conv(ws, x, l1, convs[0]);
        let a1 = prelu(ws, &c1, l1.slope);
        let p1 = pool(ws, &a1, pool1, Some(&mut argmax1));
        let c2 = conv(ws, &p1, l2, convs[1]);
        let a2 = prelu(ws, &c2, l2.slope);
        let c3 = conv(ws, &a2, l3, convs[2]);
        let a3 = prelu(ws, &c3, l3.slope);
        let p3 = pool(ws, &a3, pool3, None);
        let c4 = conv(ws, &p3, l4, convs[3]);
        let a4 = prelu(ws, &c4, l4.slope);
        let c5 = conv(ws, &a4, l5, convs[4]);
        let a5 = prelu(ws, &c5, l5.slope);
        let p5 = pool(ws, &a5, pool5, None); // n x 3200
        let f1 = linear(&p5, &p.fc1, n, fc_in, hidden);
        let g1 = prelu(ws, &f1, p.fc_slope);
        let mask1 = dropout::mask(g1.len(), dropout, rng.as_deref_mut());
        let d1 = match &mask1 {
            Some(m) => g1.iter().zip(m).map(|(g, m)| g * m).collect(),
            None => g1,
        };
        let f2 = linear(&d1, &p.fc2, n, hidden, hidden);
        let g2 = prelu(ws, &f2, p.fc_slope);
        let mask2 = dropout::mask(g2.len(), dropout, rng);
        let d2 = match &mask2 {
            Some(m) => g2.iter().zip(m).map(|(g, m)| g * m).collect(),
            None => g2,
        };
        let scores = linear(&d2, &p.fc3, n, hidden, NUM_CLASSES);
        let (loss, ds) = head_loss(head, &scores, &labels)?;

        // Backward.
        let (fc3, dd2) = linear_grads(&d2, &p.fc3, &ds, n, hidden, NUM_CLASSES, true);
        let undrop = |d: Vec<f32>, mask: &Option<Vec<f32>>| match mask {
            Some(m) => d.iter().zip(m).map(|(d, m)| d * m).collect(),
            None => d,
        };
        let dg2 = undrop(dd2, &mask2);
        let mut df2 = vec![0f32; dg2.len()];
        let dslope2 = prelu_kernels::prelu_backward(&f2, p.fc_slope, &dg2, 1, &mut df2);
        let (fc2, dd1) = linear_grads(&d1, &p.fc2, &df2, n, hidden, hidden, true);
        let dg1 = undrop(dd1, &mask1);
        let mut df1 = vec![0f32; dg1.len()];
        let dslope1 = prelu_kernels::prelu_backward(&f1, p.fc_slope, &dg1, 1, &mut df1);
        let fc_slope = vec![dslope2[0] + dslope1[0]];
        let (fc1, dp5) = linear_grads(&p5, &p.fc1, &df1, n, fc_in, hidden, true);

        // One conv block backward: the PReLU, then the conv's weight, bias and (optionally)
        // input.
        let block = |layer: usize,
                     input: &[f32],
                     c: Vec<f32>,
                     da: Vec<f32>,
                     want_dx: bool|
         -> (ConvParams<Vec<f32>>, Vec<f32>) {
            let (s, l) = (convs[layer], &p.convs[layer]);
            let mut dc = ws.take(c.len());
            let slope = prelu_kernels::prelu_backward(&c, l.slope, &da, 1, &mut dc);
            ws.give([c, da]);
            let mut weight = vec![0f32; l.weight.len()];
            let mut bias = vec![0f32; s.cout];
            conv_kernels::conv2d_grad_weight(input, &dc, s, &mut weight, Some(&mut bias));
            let mut dx = Vec::new();
            if want_dx {
                dx = ws.take(input.len());
                conv_kernels::conv2d_grad_input(&dc, l.weight, s, &mut dx);
            }
            ws.give([dc]);
            (
                ConvParams {
                    weight,
                    bias,
                    slope,
                },
                dx,
            )
        };
        let mut da5 = ws.take(a5.len());
        pool_kernels::pool_backward(&a5, &dp5, pool5, &mut da5);
        ws.give([a5, p5]);
        let (conv5, da4) = block(4, &a4, c5, da5, true);
        ws.give([a4]);
        let (conv4, dp3) = block(3, &p3, c4, da4, true);
        let mut da3 = ws.take(a3.len());
        pool_kernels::pool_backward(&a3, &dp3, pool3, &mut da3);
        ws.give([p3, dp3, a3]);
        let (conv3, da2) = block(2, &a2, c3, da3, true);
        ws.give([a2]);
        let (conv2, dp1) = block(1, &p1, c2, da2, true);
        let mut da1 = ws.take(a1.len());
        pool_kernels::max_pool_backward(&argmax1, &dp1, pool1, &mut da1);
        ws.give([p1, dp1, a1]);
        let (conv1, _) = block(0, x, c1, da1, false);
        let grads = SeedParams {
            convs: [conv1, conv2, conv3, conv4, conv5],
            fc1,
            fc_slope,
            fc2,
            fc3,
        };
        Ok((loss, grads))
    })?;
    let mut store = GradStore::default();
    for (param, grad) in params.clone().pairs(grads) {
        store.insert(param, Tensor::from_vec(grad, param.shape(), &Device::Cpu)?);
    }
    Ok((loss, store))
}

/// The number of images of an (N, 1, 48, 48) batch, or an error naming its shape.
fn image_count(images: &Tensor) -> Result<usize> {
    match *images.dims() {
        [n, 1, IMAGE_SIDE, IMAGE_SIDE] => Ok(n),
        _ => bail!(
            "the seed CNN takes (N, 1, {IMAGE_SIDE}, {IMAGE_SIDE}) images, got {:?}",
            images.dims()
        ),
    }
}

/// Inference: the scores (log-probabilities for the softmax head) of `images`, no dropout,
/// nothing recorded for backpropagation.
pub(crate) fn predict(
    ws: &Workspace,
    params: &SeedParams<&Tensor>,
    head: Head,
    images: &Tensor,
) -> Result<Tensor> {
    let n = image_count(images)?;
    let images = images.contiguous()?;
    let image_guard = images.storage_and_layout();
    let x = slice(&image_guard.0, image_guard.1)?;
    let scores = with_values(params, |p| {
        Ok(if n == 1 || n < rayon::current_num_threads() {
            // One image, or fewer images than threads (batch-1 latency): each image's layers
            // as stages on all threads at once.
            let mut scores = Vec::with_capacity(n * NUM_CLASSES);
            for image in x.chunks(IMAGE_PIXELS) {
                scores.extend(one_image::forward(ws, p, image));
            }
            scores
        } else {
            // The whole forward runs on a pool thread: a caller from outside the pool hands
            // over once, instead of once for every parallel region.
            rayon::scope(|_| forward_scores(ws, p, n, x))
        })
    })?;
    Tensor::from_vec(finish_scores(head, scores), (n, NUM_CLASSES), &Device::Cpu)
}

/// The network's raw scores (n x 7) for `n` images `x`.
fn forward_scores(ws: &Workspace, p: &SeedParams<&[f32]>, n: usize, x: &[f32]) -> Vec<f32> {
    let (convs, [pool1, pool3, pool5]) = geometry(n);
    let block = |x: &[f32], layer: usize| {
        let (s, l) = (convs[layer], &p.convs[layer]);
        let mut a = ws.take(s.batch * s.cout * s.out_h() * s.out_w());
        conv_kernels::conv2d_prelu_forward(x, l.weight, l.bias, l.slope, s, &mut a);
        a
    };
    let (fc_in, hidden) = (fc_inputs(), FC_HIDDEN);
    let a1 = block(x, 0);
    let p1 = pool(ws, &a1, pool1, None);
    let a2 = block(&p1, 1);
    let a3 = block(&a2, 2);
    let p3 = pool(ws, &a3, pool3, None);
    let a4 = block(&p3, 3);
    let a5 = block(&a4, 4);
    let p5 = pool(ws, &a5, pool5, None);
    let g1 = prelu(ws, &linear(&p5, &p.fc1, n, fc_in, hidden), p.fc_slope);
    let g2 = prelu(ws, &linear(&g1, &p.fc2, n, hidden, hidden), p.fc_slope);
    let scores = linear(&g2, &p.fc3, n, hidden, NUM_CLASSES);
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
