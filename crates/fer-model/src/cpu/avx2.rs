//! The portable kernels compiled again for AVX2 with FMA (x86-64 CPUs without AVX-512: most
//! laptops and desktops, and some servers): the same loops in 8-lane registers instead of
//! the baseline's 4. Each is called only after [`kernels`](super::kernels) said the CPU has
//! the instructions.
//!
//! The same operations in the same order as the portable loops (Rust never fuses a multiply
//! and an add on its own), so the same bits; the one exception is the first convolution,
//! which, as on AVX-512, uses fused multiply-adds (within 1e-5 of the portable values).

/// Batch norm's per-plane reductions ([`crate::cpu::portable::batch_norm`]) compiled for AVX2.
pub(crate) mod batch_norm {
    use crate::cpu::portable::batch_norm as portable;

    /// [`portable::plane_sum`] compiled for AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn plane_sum(plane: &[f32]) -> f32 {
        portable::plane_sum(plane)
    }

    /// [`portable::plane_squared_deviations`] compiled for AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn plane_squared_deviations(plane: &[f32], mean: f32) -> f32 {
        portable::plane_squared_deviations(plane, mean)
    }

    /// [`portable::plane_relu_grad_sums`] compiled for AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn plane_relu_grad_sums(
        x: &[f32],
        dy: &[f32],
        statistics: [f32; 2],
        affine: [f32; 2],
    ) -> (f32, f32) {
        portable::plane_relu_grad_sums(x, dy, statistics, affine)
    }
}

/// The first convolution compiled for AVX2 with fused multiply-adds.
pub(crate) mod conv {
    use crate::cpu::portable;
    use crate::cpu::shape::ConvShape;

    /// `cpu::conv::conv_single_plane` compiled for AVX2 with fused multiply-adds.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn conv_single_plane(
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        alpha: &[f32],
        s: &ConvShape,
        c0: usize,
        out: &mut [f32],
    ) {
        portable::conv::conv_single_plane_with::<true>(x, weight, bias, alpha, s, c0, out)
    }
}

/// Pooling ([`crate::cpu::portable::pool`]) compiled for AVX2.
pub(crate) mod pool {
    use crate::cpu::portable;
    use crate::cpu::shape::PoolShape;

    /// [`portable::pool::pool_plane_values_for_k`] compiled for AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn pool_plane_values(
        plane: &[f32],
        s: &PoolShape,
        out: &mut [f32],
        scratch: &mut portable::pool::PlaneScratch,
    ) {
        portable::pool::pool_plane_values_for_k(plane, s, out, scratch)
    }
}

/// The F(2x2, 3x3) transforms ([`crate::cpu::portable::winograd`]) compiled for AVX2.
pub(crate) mod winograd {
    use crate::cpu::portable::winograd::{
        InputScratch, PortableRows, XI, inverse_transform_with, transform_input_with,
        transform_output_gradient_with,
    };
    use crate::cpu::shape::ConvShape;

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn transform_input(
        plane: &[f32],
        s: &ConvShape,
        v: &mut [&mut [f32]; XI],
        scratch: &mut InputScratch,
    ) {
        transform_input_with::<PortableRows>(plane, s, v, scratch)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn inverse_transform(
        m: &[&[f32]; XI],
        s: &ConvShape,
        bias: f32,
        slope: f32,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        inverse_transform_with(m, s, bias, slope, out, scratch)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn transform_output_gradient(
        dy_t: &[f32],
        s: &ConvShape,
        dm: &mut [&mut [f32]; XI],
    ) {
        transform_output_gradient_with(dy_t, s, dm)
    }
}

/// The F(4x4, 3x3) transforms ([`crate::cpu::portable::winograd4`]) compiled for AVX2.
pub(crate) mod winograd4 {
    use crate::cpu::portable::winograd4::{
        InputScratch, inverse_transform_with, transform_input_with, transform_output_gradient_with,
    };
    use crate::cpu::shape::ConvShape;

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn transform_input(
        plane: &[f32],
        s: &ConvShape,
        v: &mut [&mut [f32]],
        scratch: &mut InputScratch,
    ) {
        transform_input_with(plane, s, v, scratch)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn inverse_transform(
        m: &[&[f32]],
        s: &ConvShape,
        bias: f32,
        slope: f32,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        inverse_transform_with(m, s, bias, slope, out, scratch)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn transform_output_gradient(dy_t: &[f32], s: &ConvShape, dm: &mut [&mut [f32]]) {
        transform_output_gradient_with(dy_t, s, dm)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use crate::cpu::portable;
    use crate::cpu::shape::{ConvShape, PoolKind, PoolShape};

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Whether this CPU runs the AVX2 kernels; says so when it does not.
    fn available(test: &str) -> bool {
        use std::io::Write as _;
        let yes = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if !yes {
            // Straight to stderr: the harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: this CPU has no AVX2 with FMA"
            );
        }
        yes
    }

    fn conv3x3(h: usize, w: usize, pad: usize) -> ConvShape {
        ConvShape {
            batch: 1,
            cin: 1,
            h,
            w,
            cout: 1,
            k: 3,
            pad,
        }
    }

    /// Batch norm's plane reductions give the portable sums bit for bit, on plane lengths
    /// that are and are not multiples of the 16 lanes.
    #[test]
    fn avx2_batch_norm_sums_equal_the_portable_ones_bit_for_bit() {
        if !available("avx2_batch_norm_sums_equal_the_portable_ones_bit_for_bit") {
            return;
        }
        for (case, len) in [2304, 576, 37, 9, 1].into_iter().enumerate() {
            let (x, dy) = (values(len, case as u64), values(len, 10 + case as u64));
            // SAFETY (each call below): the CPU has AVX2 and FMA (checked above).
            let ours = unsafe {
                (
                    super::batch_norm::plane_sum(&x),
                    super::batch_norm::plane_squared_deviations(&x, 0.1),
                    super::batch_norm::plane_relu_grad_sums(&x, &dy, [0.1, 1.7], [0.9, -0.05]),
                )
            };
            let theirs = (
                portable::batch_norm::plane_sum(&x),
                portable::batch_norm::plane_squared_deviations(&x, 0.1),
                portable::batch_norm::plane_relu_grad_sums(&x, &dy, [0.1, 1.7], [0.9, -0.05]),
            );
            assert_eq!(ours.0.to_bits(), theirs.0.to_bits(), "sum, {len}");
            assert_eq!(ours.1.to_bits(), theirs.1.to_bits(), "deviations, {len}");
            assert_eq!(
                (ours.2.0.to_bits(), ours.2.1.to_bits()),
                (theirs.2.0.to_bits(), theirs.2.1.to_bits()),
                "relu gradient sums, {len}"
            );
            assert_ne!(theirs.2.0, 0.0, "a gradient reached the sums");
        }
    }

    /// Pooling gives the portable values bit for bit: vgg-bn's and the seed CNN's pools and
    /// odd shapes, with and without a NaN.
    #[test]
    fn avx2_pools_equal_the_portable_pools_bit_for_bit() {
        if !available("avx2_pools_equal_the_portable_pools_bit_for_bit") {
            return;
        }
        let shapes = [
            (PoolKind::Max, 48, 48, 2, 2, 0),
            (PoolKind::Max, 44, 44, 5, 2, 2),
            (PoolKind::Avg, 22, 22, 3, 2, 0),
            (PoolKind::Max, 13, 17, 3, 2, 1),
            (PoolKind::Avg, 9, 30, 3, 2, 1),
        ];
        for (seed, (kind, h, w, k, stride, pad)) in shapes.into_iter().enumerate() {
            let s = PoolShape {
                kind,
                planes: 1,
                h,
                w,
                k,
                stride,
                pad,
            };
            let mut plane = values(h * w, 20 + seed as u64);
            for with_nan in [false, true] {
                if with_nan {
                    plane[h * w / 2] = f32::NAN;
                }
                let len = s.out_h() * s.out_w();
                let (mut ours, mut theirs) = (vec![0f32; len], vec![0f32; len]);
                let mut scratch = portable::pool::PlaneScratch::default();
                portable::pool::pool_plane_values_for_k(&plane, &s, &mut theirs, &mut scratch);
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe { super::pool::pool_plane_values(&plane, &s, &mut ours, &mut scratch) };
                assert_eq!(bits(&ours), bits(&theirs), "{s:?}, NaN: {with_nan}");
                assert_eq!(theirs.iter().any(|v| v.is_nan()), with_nan);
            }
        }
    }

    /// The first convolution with fused multiply-adds stays within 1e-5 (relative to the
    /// largest output) of the portable one.
    #[test]
    fn avx2_single_plane_convolution_matches_the_portable_one() {
        if !available("avx2_single_plane_convolution_matches_the_portable_one") {
            return;
        }
        for (k, cout) in [(3, 32), (5, 64)] {
            let s = ConvShape {
                batch: 1,
                cin: 1,
                h: 48,
                w: 48,
                cout,
                k,
                pad: 0,
            };
            let (x, weight, bias) = (values(48 * 48, 1), values(cout * k * k, 2), values(cout, 3));
            let len = cout * s.out_h() * s.out_w();
            let (mut ours, mut theirs) = (vec![0f32; len], vec![0f32; len]);
            portable::conv::conv_single_plane_with::<false>(
                &x,
                &weight,
                &bias,
                &[0.25],
                &s,
                0,
                &mut theirs,
            );
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe {
                super::conv::conv_single_plane(&x, &weight, &bias, &[0.25], &s, 0, &mut ours)
            };
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.1);
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * scale, "{k}x{k}: {a} vs {b}");
            }
        }
    }

    /// Both Winograd tilings' input, inverse and output-gradient transforms give the portable
    /// loops' values bit for bit: vgg-bn's planes, the seed CNN's, partial tiles, no padding,
    /// ReLU and PReLU, a NaN.
    #[test]
    fn avx2_winograd_transforms_equal_the_portable_ones_bit_for_bit() {
        use portable::{winograd as w2, winograd4 as w4};
        if !available("avx2_winograd_transforms_equal_the_portable_ones_bit_for_bit") {
            return;
        }
        let shapes = [
            (48, 48, 1),
            (24, 24, 1),
            (22, 22, 1),
            (25, 27, 1),
            (7, 9, 0),
            (3, 3, 1),
        ];
        for (case, (h, w, pad)) in shapes.into_iter().enumerate() {
            let s = conv3x3(h, w, pad);
            let seed = 100 * case as u64;
            let plane = values(h * w, seed);
            let hw = s.out_h() * s.out_w();
            // F(2x2, 3x3).
            let len = w2::slots(&s);
            let input = |ours: bool| {
                let mut v = vec![f32::NAN; w2::XI * len];
                let mut rows: Vec<&mut [f32]> = v.chunks_mut(len).collect();
                let rows: &mut [&mut [f32]; w2::XI] = (&mut rows[..]).try_into().expect("16");
                let mut scratch = w2::InputScratch::default();
                if ours {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { super::winograd::transform_input(&plane, &s, rows, &mut scratch) };
                } else {
                    w2::transform_input_with::<w2::PortableRows>(&plane, &s, rows, &mut scratch);
                }
                bits(&v)
            };
            assert_eq!(input(true), input(false), "F(2,3) input {h}x{w}, pad {pad}");
            let mut m = values(w2::XI * len, seed + 1);
            m[len / 2] = f32::NAN;
            let rows: [&[f32]; w2::XI] = std::array::from_fn(|xi| &m[xi * len..(xi + 1) * len]);
            for (bias, slope) in [(0.1, 0.0), (-0.2, 0.25)] {
                let mut theirs = vec![f32::NAN; hw];
                let mut scratch = vec![0f32; 12 * len];
                w2::inverse_transform_with(&rows, &s, bias, slope, &mut theirs, &mut scratch);
                let mut ours = vec![f32::NAN; hw];
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe {
                    super::winograd::inverse_transform(
                        &rows,
                        &s,
                        bias,
                        slope,
                        &mut ours,
                        &mut scratch,
                    )
                };
                assert!(theirs.iter().any(|v| v.is_nan()));
                assert_eq!(
                    bits(&ours),
                    bits(&theirs),
                    "F(2,3) inverse {h}x{w}, {slope}"
                );
            }
            // The output gradient of three output channels, channels last.
            let channels = 3;
            let g = ConvShape {
                cout: channels,
                ..s
            };
            let dy_t = values(hw * channels, seed + 2);
            let gradient = |ours: bool| {
                let mut dm = vec![f32::NAN; w2::XI * len * channels];
                let mut rows: Vec<&mut [f32]> = dm.chunks_mut(len * channels).collect();
                let rows: &mut [&mut [f32]; w2::XI] = (&mut rows[..]).try_into().expect("16");
                if ours {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { super::winograd::transform_output_gradient(&dy_t, &g, rows) };
                } else {
                    w2::transform_output_gradient_with(&dy_t, &g, rows);
                }
                bits(&dm)
            };
            assert_eq!(gradient(true), gradient(false), "F(2,3) gradient {h}x{w}");
            // F(4x4, 3x3).
            let len = w4::slots(&s);
            let input = |ours: bool| {
                let mut v = vec![f32::NAN; w4::XI * len];
                let mut rows: Vec<&mut [f32]> = v.chunks_mut(len).collect();
                let mut scratch = w4::InputScratch::default();
                if ours {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe {
                        super::winograd4::transform_input(&plane, &s, &mut rows, &mut scratch)
                    };
                } else {
                    w4::transform_input_with(&plane, &s, &mut rows, &mut scratch);
                }
                bits(&v)
            };
            assert_eq!(input(true), input(false), "F(4,3) input {h}x{w}, pad {pad}");
            let mut m = values(w4::XI * len, seed + 3);
            m[0] = f32::NAN;
            let rows: Vec<&[f32]> = m.chunks(len).collect();
            for (bias, slope) in [(0.1, 0.0), (-0.2, 0.25)] {
                let mut theirs = vec![f32::NAN; hw];
                w4::inverse_transform_with(&rows, &s, bias, slope, &mut theirs, &mut Vec::new());
                let mut ours = vec![f32::NAN; hw];
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe {
                    super::winograd4::inverse_transform(
                        &rows,
                        &s,
                        bias,
                        slope,
                        &mut ours,
                        &mut Vec::new(),
                    )
                };
                assert!(theirs.iter().any(|v| v.is_nan()));
                assert_eq!(
                    bits(&ours),
                    bits(&theirs),
                    "F(4,3) inverse {h}x{w}, {slope}"
                );
            }
            let gradient = |ours: bool| {
                let mut dm = vec![f32::NAN; w4::XI * len * channels];
                let mut rows: Vec<&mut [f32]> = dm.chunks_mut(len * channels).collect();
                if ours {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { super::winograd4::transform_output_gradient(&dy_t, &g, &mut rows) };
                } else {
                    w4::transform_output_gradient_with(&dy_t, &g, &mut rows);
                }
                bits(&dm)
            };
            assert_eq!(gradient(true), gradient(false), "F(4,3) gradient {h}x{w}");
        }
    }
}
