//! A fully connected layer for a few rows (batch-1 inference): the output features split over
//! rayon's pool in fixed blocks, so that both cores stream the weight matrix (at width 64,
//! vgg-bn's first linear layer reads 37.7 MB per image, bound by memory bandwidth).

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::matmul;

/// Output features per task: a fixed count (not a share of the pool), so that the results do
/// not depend on the thread count.
const FEATURES_PER_TASK: usize = 64;

/// `out` (rows, n) = `x` (rows, k) times `weight` (n, k) transposed, plus `bias` (n).
pub(crate) fn linear_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    (rows, k, n): (usize, usize, usize),
    out: &mut [f32],
) {
    assert_eq!(x.len(), rows * k);
    assert_eq!(weight.len(), n * k);
    assert_eq!(out.len(), rows * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    // Each task computes features [f0, f0 + FEATURES_PER_TASK) of every row (a column block
    // of `out`), copied into place after.
    let blocks = n.div_ceil(FEATURES_PER_TASK);
    let columns: Vec<Vec<f32>> = (0..blocks)
        .into_par_iter()
        .map(|block| {
            let f0 = block * FEATURES_PER_TASK;
            let count = FEATURES_PER_TASK.min(n - f0);
            let mut part = vec![0f32; rows * count];
            if let Some(bias) = bias {
                for row in part.chunks_mut(count) {
                    row.copy_from_slice(&bias[f0..f0 + count]);
                }
            }
            matmul(
                (rows, count, k),
                &mut part,
                count,
                bias.is_some(),
                x,
                (k, 1),
                &weight[f0 * k..(f0 + count) * k],
                (1, k),
                Parallelism::None,
            );
            part
        })
        .collect();
    for (block, part) in columns.iter().enumerate() {
        let f0 = block * FEATURES_PER_TASK;
        let count = part.len() / rows;
        for (row, values) in part.chunks(count).enumerate() {
            out[row * n + f0..row * n + f0 + count].copy_from_slice(values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Against the definition (f64 sums) within 1e-5 of the largest output, with and without
    /// bias, for a partial last block; the same bits on 1 and 3 threads.
    #[test]
    fn linear_forward_matches_the_definition_on_any_thread_count() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (rows, k, n) = (2, 300, 150);
        let mut r =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (x, w, b) = (r(rows * k), r(n * k), r(n));
        for bias in [Some(&b[..]), None] {
            let run = |threads: usize| {
                let mut out = vec![f32::NAN; rows * n];
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| linear_forward(&x, &w, bias, (rows, k, n), &mut out));
                out
            };
            let out = run(1);
            assert!(
                out.iter()
                    .zip(run(3))
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            for (i, &v) in out.iter().enumerate() {
                let (row, f) = (i / n, i % n);
                let dot: f64 = (0..k)
                    .map(|j| (x[row * k + j] * w[f * k + j]) as f64)
                    .sum::<f64>()
                    + bias.map_or(0.0, |b| b[f] as f64);
                assert!((v as f64 - dot).abs() <= 1e-4, "{i}: {v} vs {dot}");
            }
        }
    }
}
