//! Zero-padded max and average pooling on the CPU: whole batches split over rayon's pool,
//! with window indices for training and values only for inference, and their backward.

use rayon::prelude::*;

use super::portable;
use super::portable::pool::{MaxScratch, PlaneScratch, max_plane};
use super::shape::{PADDED, PoolKind, PoolShape};
use super::uninit::Slot;

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

/// Max or average pooling of one plane, values only (no window indices). Separable: a row
/// pass reduces each zero-padded row at stride 1 (each window read straight from the row,
/// so it vectorises across windows) and keeps every stride-th window, then a column pass
/// reduces whole output rows. The average adds a window's values row by row, in scan order,
/// then divides by k * k.
fn pool_plane_values(plane: &[f32], s: &PoolShape, out: &mut [f32], scratch: &mut PlaneScratch) {
    #[cfg(target_arch = "x86_64")]
    match super::kernels() {
        super::Kernels::Avx512 => {
            use super::avx512::pool::{
                average_3x3_stride_2, average_3x3_stride_2_fits, max_stride_2, max_stride_2_fits,
                pool_plane_values as pool_plane_values_avx512,
            };
            if average_3x3_stride_2_fits(s) {
                // SAFETY: the CPU has AVX-512F (`kernels`); the shape fits (checked).
                return unsafe { average_3x3_stride_2(plane, s, out) };
            }
            // SAFETY: the CPU has AVX-512F (`kernels`); the shape fits (checked).
            if max_stride_2_fits(s) && unsafe { max_stride_2(plane, s, out) } {
                return;
            }
            // SAFETY: the CPU has AVX-512F (`kernels`).
            return unsafe { pool_plane_values_avx512(plane, s, out, scratch) };
        }
        // SAFETY: the CPU has AVX2 and FMA (`kernels` checked it).
        super::Kernels::Avx2 => {
            return unsafe { super::avx2::pool::pool_plane_values(plane, s, out, scratch) };
        }
        super::Kernels::Portable => {}
    }
    portable::pool::pool_plane_values_for_k(plane, s, out, scratch)
}

/// Pooling forward: `out` (planes, oh, ow) from `x` (planes, h, w); for a max pool, `argmax`
/// (same length as `out`) receives each window's input index for [`max_pool_backward`].
pub(crate) fn pool_forward(
    x: &[f32],
    s: PoolShape,
    out: &mut [impl Slot],
    argmax: Option<&mut [u32]>,
) {
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
                max_plane(plane, &s, Slot::zeroed(o), i, scratch)
            });
        return;
    }
    // Values only: inference, and the average (whose backward needs no indices).
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(s.h * s.w))
        .with_min_len(share)
        .for_each_init(PlaneScratch::default, |scratch, (o, plane)| {
            pool_plane_values(plane, &s, Slot::zeroed(o), scratch)
        });
}

/// Max pooling backward from the forward's window indices: `dx` (planes, h, w).
pub(crate) fn max_pool_backward(argmax: &[u32], dy: &[f32], s: PoolShape, dx: &mut [impl Slot]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(argmax.len(), dy.len());
    assert_eq!(dy.len(), s.planes * oh * ow);
    assert_eq!(dx.len(), s.planes * s.h * s.w);
    dx.par_chunks_mut(s.h * s.w)
        .zip(argmax.par_chunks(oh * ow).zip(dy.par_chunks(oh * ow)))
        .for_each(|(g, (index, go))| {
            let g = Slot::zeroed(g);
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
pub(crate) fn pool_backward(x: &[f32], dy: &[f32], s: PoolShape, dx: &mut [impl Slot]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(x.len(), s.planes * s.h * s.w);
    assert_eq!(dx.len(), x.len());
    assert_eq!(dy.len(), s.planes * oh * ow);
    if (s.kind, s.k, s.stride, s.pad) == (PoolKind::Max, 2, 2, 0) {
        return max_pool_2x2_backward(x, dy, s, dx);
    }
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
            let g = Slot::zeroed(g);
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

/// The backward of a 2x2 max pool at stride 2 without padding (vgg-bn's pools) in one pass
/// over each plane, without the forward's window indices: each window's gradient goes to
/// its first maximum in scan order (a NaN beating any number), every other cell gets zero.
/// The bits of [`max_pool_backward`] after [`pool_forward`]'s indices, in about half the time
/// (vgg-bn's four pools at batch 128: 24.2 against 52.4 ms in all, results/bench/kernels-b7c77f8).
fn max_pool_2x2_backward(x: &[f32], dy: &[f32], s: PoolShape, dx: &mut [impl Slot]) {
    let (h, w, oh, ow) = (s.h, s.w, s.out_h(), s.out_w());
    dx.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w).zip(dy.par_chunks(oh * ow)))
        .for_each(|(g, (plane, go))| {
            max_2x2_backward_plane(plane, go, h, w, Slot::zeroed(g));
        });
}

/// [`max_pool_2x2_backward`] of one plane (h, w) into `g`, which must be zeroed: the cells
/// that are no window's maximum (or in no window, an odd last row or column) keep the zero.
pub(crate) fn max_2x2_backward_plane(plane: &[f32], go: &[f32], h: usize, w: usize, g: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::kernels() == super::Kernels::Avx512 {
        // SAFETY: the CPU has AVX-512F (`kernels` checked it).
        unsafe { super::avx512::pool::max_2x2_backward_plane(plane, go, h, w, g) };
        return;
    }
    portable::pool::max_2x2_backward_plane(plane, go, h, w, g);
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
    /// The one-pass 2x2 backward gives the bits of the indexed one (forward indices, then the
    /// scatter), with ties, NaNs, signed zeros and odd sizes.
    #[test]
    fn one_pass_2x2_max_backward_equals_the_indexed_backward() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (h, w) in [(48, 48), (6, 6), (5, 7), (3, 2), (2, 3), (9, 67), (4, 34)] {
            let s = PoolShape {
                kind: PoolKind::Max,
                planes: 3,
                h,
                w,
                k: 2,
                stride: 2,
                pad: 0,
            };
            // Few distinct values, so windows hold ties; some NaNs and negative zeros.
            let x: Vec<f32> = (0..s.planes * h * w)
                .map(|_| match rng.random_range(0..12) {
                    0 => f32::NAN,
                    1 => -0.0,
                    v => (v % 4) as f32 - 1.0,
                })
                .collect();
            let n = s.planes * s.out_h() * s.out_w();
            let dy: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 5 == 0 {
                        -0.0
                    } else {
                        rng.random_range(-1.0f32..1.0)
                    }
                })
                .collect();
            let mut argmax = vec![0u32; n];
            pool_forward(&x, s, &mut vec![0f32; n], Some(&mut argmax));
            let mut expected = vec![f32::NAN; x.len()];
            max_pool_backward(&argmax, &dy, s, &mut expected);
            let mut fused = vec![f32::NAN; x.len()];
            max_pool_2x2_backward(&x, &dy, s, &mut fused);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&expected), "{h}x{w}");
            // The portable plane loop on its own (the line above took AVX-512 where the CPU
            // has it).
            let mut portable_only = vec![0f32; x.len()];
            let (plane, out) = (h * w, s.out_h() * s.out_w());
            for ((g, p), go) in portable_only
                .chunks_mut(plane)
                .zip(x.chunks(plane))
                .zip(dy.chunks(out))
            {
                portable::pool::max_2x2_backward_plane(p, go, h, w, g);
            }
            assert_eq!(bits(&portable_only), bits(&expected), "{h}x{w} portable");
            assert!(
                expected.iter().filter(|&&v| v != 0.0).count() * 2 >= n,
                "{h}x{w}"
            );
        }
    }

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
}
