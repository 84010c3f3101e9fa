//! The kernels written for AVX-512F registers (x86-64 only): each is called only after
//! [`kernels`](super::kernels) said the CPU has the instructions, and gives
//! the portable kernel's values.

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod pool;
pub(crate) mod winograd;
pub(crate) mod winograd4;

/// The AVX-512 lane masks (16 lanes per vector, four vectors) of padded row positions
/// `pad..pad + len`: the lanes of a zero-padded row that hold its `len` values.
pub(crate) fn lanes_inside(pad: usize, len: usize) -> [u16; 4] {
    assert!(pad + len <= 64, "a padded row of at most four vectors");
    let bits = if len == 0 {
        0
    } else {
        (u64::MAX >> (64 - len)) << pad
    };
    std::array::from_fn(|g| (bits >> (16 * g)) as u16)
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

    /// Whether this CPU runs the AVX-512 kernels; says so when it does not.
    fn available(test: &str) -> bool {
        use std::io::Write as _;
        let yes = std::arch::is_x86_feature_detected!("avx512f");
        if !yes {
            // Straight to stderr: the harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: this CPU has no AVX-512F"
            );
        }
        yes
    }

    /// Each AVX-512 pooling kernel gives its portable twin's values bit for bit, on the seed
    /// CNN's pools and odd shapes, with and without NaNs (whatever FER_PORTABLE_KERNELS says).
    #[test]
    fn avx512_pools_equal_the_portable_pools_bit_for_bit() {
        if !available("avx512_pools_equal_the_portable_pools_bit_for_bit") {
            return;
        }
        let shapes = [
            (PoolKind::Max, 44, 44, 5, 2, 2),
            (PoolKind::Avg, 22, 22, 3, 2, 0),
            (PoolKind::Avg, 10, 10, 3, 2, 1),
            (PoolKind::Max, 13, 17, 3, 2, 1),
            (PoolKind::Avg, 9, 30, 3, 2, 1),
            (PoolKind::Max, 7, 7, 2, 1, 0),
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
            let mut plane = values(h * w, seed as u64);
            for with_nan in [false, true] {
                if with_nan {
                    plane[h * w / 2] = f32::NAN;
                }
                let len = s.out_h() * s.out_w();
                let (mut ours, mut theirs) = (vec![0f32; len], vec![0f32; len]);
                let mut scratch = portable::pool::PlaneScratch::default();
                portable::pool::pool_plane_values_for_k(&plane, &s, &mut theirs, &mut scratch);
                // SAFETY: the CPU has AVX-512F (checked above).
                unsafe { super::pool::pool_plane_values(&plane, &s, &mut ours, &mut scratch) };
                if super::pool::average_3x3_stride_2_fits(&s) {
                    // SAFETY: as above; the shape fits (checked).
                    unsafe { super::pool::average_3x3_stride_2(&plane, &s, &mut ours) };
                }
                // SAFETY: as above; the shape fits (checked).
                if super::pool::max_stride_2_fits(&s)
                    && !unsafe { super::pool::max_stride_2(&plane, &s, &mut ours) }
                {
                    assert!(with_nan, "{s:?}: the register max gave up without a NaN");
                    // SAFETY: as above.
                    unsafe { super::pool::pool_plane_values(&plane, &s, &mut ours, &mut scratch) };
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ours), bits(&theirs), "{s:?}, NaN: {with_nan}");
            }
        }
    }

    /// The single-plane convolution with fused multiply-adds stays within 1e-5 (relative to
    /// the largest output) of the portable one.
    #[test]
    fn avx512_single_plane_convolution_matches_the_portable_one() {
        if !available("avx512_single_plane_convolution_matches_the_portable_one") {
            return;
        }
        let s = ConvShape {
            batch: 1,
            cin: 1,
            h: 48,
            w: 48,
            cout: 64,
            k: 5,
            pad: 0,
        };
        let (x, weight, bias, alpha) = (
            values(48 * 48, 1),
            values(64 * 25, 2),
            values(64, 3),
            [0.25],
        );
        let len = 64 * s.out_h() * s.out_w();
        let (mut ours, mut theirs) = (vec![0f32; len], vec![0f32; len]);
        portable::conv::conv_single_plane_with::<false>(
            &x,
            &weight,
            &bias,
            &alpha,
            &s,
            0,
            &mut theirs,
        );
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { super::conv::conv_single_plane(&x, &weight, &bias, &alpha, &s, 0, &mut ours) };
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
    }

    /// The Winograd input transform in registers (rows split, then combined) gives the portable
    /// loops' values bit for bit (the seed CNN's 22x22 and 10x10 planes, vgg-bn's 48x48, odd
    /// ones).
    #[test]
    fn avx512_winograd_input_transform_equals_the_portable_one() {
        use crate::cpu::portable::winograd::{
            InputScratch, PortableRows, XI, slots, transform_input_with,
        };
        if !available("avx512_winograd_input_transform_equals_the_portable_one") {
            return;
        }
        for (h, w, pad) in [
            (22, 22, 1),
            (10, 10, 1),
            (7, 9, 0),
            (48, 48, 1),
            (24, 33, 1),
            (9, 62, 1),
        ] {
            let s = ConvShape {
                batch: 1,
                cin: 1,
                h,
                w,
                cout: 1,
                k: 3,
                pad,
            };
            let plane = values(h * w, h as u64);
            let len = slots(&s);
            let transform = |portable: bool| {
                let mut v = vec![f32::NAN; XI * len];
                let mut rows: Vec<&mut [f32]> = v.chunks_mut(len).collect();
                let rows: &mut [&mut [f32]; XI] = (&mut rows[..]).try_into().expect("16 rows");
                let mut scratch = InputScratch::default();
                if portable {
                    transform_input_with::<PortableRows>(&plane, &s, rows, &mut scratch);
                } else {
                    // SAFETY: the CPU has AVX-512F (checked above).
                    unsafe { super::winograd::transform_input(&plane, &s, rows, &mut scratch) };
                }
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(transform(false), transform(true), "{h}x{w}, pad {pad}");
        }
    }

    /// The inverse transform in registers gives the portable one's values bit for bit: planes
    /// with odd sizes (dropped columns and rows), more than 16 tiles in a row, ReLU (slope 0),
    /// PReLU and a NaN.
    #[test]
    fn avx512_winograd_inverse_transform_equals_the_portable_one() {
        use crate::cpu::portable::winograd::{XI, inverse_transform_with, slots};
        if !available("avx512_winograd_inverse_transform_equals_the_portable_one") {
            return;
        }
        for (case, (h, w, pad)) in [(48, 48, 1), (7, 9, 0), (24, 33, 1), (9, 62, 1), (3, 3, 1)]
            .into_iter()
            .enumerate()
        {
            let s = ConvShape {
                batch: 1,
                cin: 1,
                h,
                w,
                cout: 1,
                k: 3,
                pad,
            };
            let len = slots(&s);
            let mut m = values(XI * len, 40 + case as u64);
            m[len / 2] = f32::NAN;
            let rows: [&[f32]; XI] = std::array::from_fn(|xi| &m[xi * len..(xi + 1) * len]);
            let hw = s.out_h() * s.out_w();
            for (bias, slope) in [(0.1, 0.0), (-0.2, 0.25)] {
                let mut theirs = vec![f32::NAN; hw];
                let mut scratch = vec![0f32; 12 * len];
                inverse_transform_with(&rows, &s, bias, slope, &mut theirs, &mut scratch);
                let mut ours = vec![f32::NAN; hw];
                // SAFETY: the CPU has AVX-512F (checked above).
                unsafe {
                    super::winograd::inverse_transform(&rows, &s, bias, slope, &mut ours, &mut [])
                };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(theirs.iter().any(|v| v.is_nan()));
                assert_eq!(theirs.iter().any(|&v| v < 0.0), slope > 0.0);
                assert_eq!(
                    bits(&ours),
                    bits(&theirs),
                    "{h}x{w}, pad {pad}, slope {slope}"
                );
            }
        }
    }

    /// The F(4x4, 3x3) transforms in registers give the portable loops' values bit for bit:
    /// vgg-bn's 48x48 and 24x24 planes, partial tiles, no padding, more than 16 tiles in a
    /// row, ReLU (slope 0), PReLU and a NaN.
    #[test]
    fn avx512_winograd4_transforms_equal_the_portable_ones() {
        use crate::cpu::portable::winograd4::{
            InputScratch, XI, inverse_transform_with, slots, transform_input_with,
        };
        if !available("avx512_winograd4_transforms_equal_the_portable_ones") {
            return;
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // One scratch for the register path across all shapes, larger ones first: a split
        // must not keep values from an earlier plane.
        let mut reused = InputScratch::default();
        for (case, (h, w, pad)) in [
            (48, 48, 1),
            (24, 24, 1),
            (25, 27, 1),
            (26, 30, 0),
            (70, 66, 1),
            (3, 3, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let s = ConvShape {
                batch: 1,
                cin: 1,
                h,
                w,
                cout: 1,
                k: 3,
                pad,
            };
            let len = slots(&s);
            let plane = values(h * w, 70 + case as u64);
            let mut transform = |portable: bool| {
                let mut v = vec![f32::NAN; XI * len];
                let mut rows: Vec<&mut [f32]> = v.chunks_mut(len).collect();
                if portable {
                    let mut scratch = InputScratch::default();
                    transform_input_with(&plane, &s, &mut rows, &mut scratch);
                } else {
                    // SAFETY: the CPU has AVX-512F (checked above).
                    unsafe {
                        super::winograd4::transform_input(&plane, &s, &mut rows, &mut reused)
                    };
                }
                bits(&v)
            };
            let theirs = transform(true);
            assert_eq!(transform(false), theirs, "input {h}x{w}, pad {pad}");
            let mut m = values(XI * len, 80 + case as u64);
            m[0] = f32::NAN;
            let rows: Vec<&[f32]> = m.chunks(len).collect();
            let hw = s.out_h() * s.out_w();
            for (bias, slope) in [(0.1, 0.0), (-0.2, 0.25)] {
                let mut theirs = vec![f32::NAN; hw];
                inverse_transform_with(&rows, &s, bias, slope, &mut theirs, &mut Vec::new());
                let mut ours = vec![f32::NAN; hw];
                // SAFETY: the CPU has AVX-512F (checked above).
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
                assert_eq!(theirs.iter().any(|&v| v < 0.0), slope > 0.0);
                assert_eq!(
                    bits(&ours),
                    bits(&theirs),
                    "inverse {h}x{w}, pad {pad}, slope {slope}"
                );
            }
        }
    }
}
