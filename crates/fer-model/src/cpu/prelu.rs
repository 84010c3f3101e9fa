//! PReLU on the CPU: forward, and backward in one pass (input gradient and slope gradient).

use rayon::prelude::*;

/// PReLU in place on (channels, hw) planes: slope `alpha[c]` on channel c, or `alpha[0]` on
/// all when `alpha` has one value.
pub(crate) fn prelu_planes(planes: &mut [f32], hw: usize, alpha: &[f32]) {
    for (c, plane) in planes.chunks_mut(hw).enumerate() {
        let a = alpha[if alpha.len() == 1 { 0 } else { c }];
        for v in plane {
            *v = if *v > 0.0 { *v } else { a * *v };
        }
    }
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
