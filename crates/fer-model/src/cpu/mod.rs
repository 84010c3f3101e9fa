//! CPU compute on f32 NCHW slices, apart from candle: the kernels behind the layers' custom
//! ops and the seed CNN's fused step.
//!
//! - [`shape`]: the geometry of a convolution ([`ConvShape`](shape::ConvShape)) and of a pool
//!   ([`PoolShape`](shape::PoolShape)).
//! - [`gemm`]: the matrix product every convolution and linear layer runs on (the `gemm`
//!   crate, AVX-512 picked at run time) and the per-thread im2col scratch.
//! - [`conv`], [`prelu`], [`pool`], [`batch_norm`], [`linear`] (few rows): the operations, whole batches split over
//!   rayon's pool; [`winograd`]: F(2x2, 3x3), [`winograd4`]: F(4x4, 3x3), [`tiling`]: the
//!   two behind one interface and the rule that picks one for a shape, [`winograd_conv`]:
//!   whole batches (3x3 forward, grad-input and grad-weight); [`stages`]: one image's layers spread
//!   over every thread, and [`one_image`] the chain of convolutions, pools and fully
//!   connected layers built on it (batch-1 latency), with its cache in [`workspace`];
//!   [`reduce`]: sums across images in a fixed order; [`uninit`]: outputs that the kernels
//!   zero part by part as they write them, instead of a zeroing pass first.
//! - [`portable`] holds the per-plane inner loops written for any CPU; [`avx512`] holds the
//!   same operations in AVX-512 registers, and [`avx2`] the portable loops compiled for AVX2
//!   with FMA. The operation modules choose between them at run time through [`kernels`].
//!
//! Invariants: every kernel is deterministic whatever the thread count or scheduling. Work is
//! split over images (or fixed groups of images) on rayon's pool; a batch smaller than the pool
//! (batch-1 latency) is split inside each image instead, by im2col rows and output channels
//! (Winograd: by input channels, tile positions and output channels; a linear layer: by fixed
//! blocks of output features), so each output is still one dot product over the whole patch
//! (or, for Winograd, over all input channels at one position); reductions across images
//! (weight, bias and slope gradients) are made per fixed group and summed in group order, and
//! gemm only splits its output, never its inner dimension. An AVX-512 kernel gives the
//! portable kernel's values (bit for bit for pooling; within 1e-5 where FMA rounds once), and
//! so does an AVX2 one (bit for bit but for the first convolution's FMA).
//! Shapes are checked by the callers (the layers); the kernels assert slice lengths (an
//! internal invariant, not user input).

/// `simd_return!(module::function(args))`: returns from the calling function with
/// `avx512::module::function(args)` or `avx2::module::function(args)` where [`kernels`] picks
/// AVX-512 or AVX2, and falls through on the portable kernels (the caller's next line runs
/// the portable loop). Each SIMD kernel gives its portable twin's values.
macro_rules! simd_return {
    ($($path:ident)::+ ($($arg:expr),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        match $crate::cpu::kernels() {
            // SAFETY: the CPU has AVX-512F (`kernels` checked it).
            $crate::cpu::Kernels::Avx512 => {
                return unsafe { $crate::cpu::avx512::$($path)::+($($arg),*) };
            }
            // SAFETY: the CPU has AVX2 and FMA (`kernels` checked it).
            $crate::cpu::Kernels::Avx2 => {
                return unsafe { $crate::cpu::avx2::$($path)::+($($arg),*) };
            }
            $crate::cpu::Kernels::Portable => {}
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod linear;
pub(crate) mod one_image;
pub(crate) mod pool;
pub(crate) mod portable;
pub(crate) mod prelu;
pub(crate) mod reduce;
pub(crate) mod shape;
pub(crate) mod stages;
pub(crate) mod tiling;
pub(crate) mod uninit;
pub(crate) mod winograd;
pub(crate) mod winograd4;
pub(crate) mod winograd_conv;
pub(crate) mod workspace;

/// The environment variable that, set to anything but `0`, keeps every kernel of this crate
/// on its portable path even on an AVX-512 or AVX2 CPU (so that every path can be tested on
/// any machine). The `gemm` crate still chooses its own instructions.
pub const PORTABLE_KERNELS_VAR: &str = "FER_PORTABLE_KERNELS";

/// The instructions this crate's own kernels run on (the `gemm` crate chooses its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// [`avx512`]: AVX-512F (and FMA).
    Avx512,
    /// [`avx2`]: the portable loops compiled for AVX2 with FMA.
    Avx2,
    /// [`portable`] as compiled for the target's baseline.
    Portable,
}

impl Kernels {
    /// How benches and logs name them.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernels::Avx512 => "AVX-512",
            Kernels::Avx2 => "AVX2 + FMA",
            Kernels::Portable => "portable",
        }
    }
}

/// The kernels this process runs its own CPU operations on: "AVX-512", "AVX2 + FMA" or
/// "portable" (benches print it beside their figures; gemm chooses its own instructions).
pub fn cpu_kernels() -> &'static str {
    kernels().name()
}

/// The kernels that run: the widest the CPU has (AVX-512F, else AVX2 with FMA), unless
/// [`PORTABLE_KERNELS_VAR`] asks for the portable ones. Read once per process.
#[inline]
pub(crate) fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        static KERNELS: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *KERNELS.get_or_init(|| {
            choose_kernels(
                portable_forced(),
                std::arch::is_x86_feature_detected!("avx512f"),
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma"),
            )
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Kernels::Portable
}

/// Whether [`PORTABLE_KERNELS_VAR`] is set to anything but `0`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn portable_forced() -> bool {
    std::env::var_os(PORTABLE_KERNELS_VAR).is_some_and(|v| v != "0")
}

/// The widest kernels the CPU's features allow, or the portable ones when forced.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn choose_kernels(forced_portable: bool, avx512f: bool, avx2_fma: bool) -> Kernels {
    match (forced_portable, avx512f, avx2_fma) {
        (true, _, _) => Kernels::Portable,
        (false, true, _) => Kernels::Avx512,
        (false, false, true) => Kernels::Avx2,
        (false, false, false) => Kernels::Portable,
    }
}

#[cfg(test)]
mod tests {
    use super::{Kernels, choose_kernels};

    /// The widest kernels the features allow; the variable overrides them all.
    #[test]
    fn the_widest_kernels_run_unless_the_portable_ones_are_asked_for() {
        assert_eq!(choose_kernels(false, true, true), Kernels::Avx512);
        assert_eq!(choose_kernels(false, false, true), Kernels::Avx2);
        assert_eq!(choose_kernels(false, false, false), Kernels::Portable);
        for features in [(true, true), (false, true), (false, false)] {
            assert_eq!(
                choose_kernels(true, features.0, features.1),
                Kernels::Portable
            );
        }
    }

    /// This process runs what this CPU and FER_PORTABLE_KERNELS choose (CI runs the tests
    /// both ways).
    #[test]
    fn the_environment_chooses_the_kernels() {
        #[cfg(target_arch = "x86_64")]
        let expected = choose_kernels(
            super::portable_forced(),
            std::arch::is_x86_feature_detected!("avx512f"),
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let expected = Kernels::Portable;
        assert_eq!(super::kernels(), expected);
        eprintln!("kernels: {}", expected.name());
    }
}
