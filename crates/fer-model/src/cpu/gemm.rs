//! The matrix product under every convolution and linear layer (the `gemm` crate, its AVX-512
//! kernels chosen at run time), and the per-thread scratch that im2col fills.

use std::mem::MaybeUninit;

use gemm::Parallelism;

use super::uninit::Slot;

/// f32 lanes of the vector registers the `gemm` crate computes in on this CPU: 16 where it
/// has AVX-512F (gemm's AVX-512 kernels), else 8 (its AVX2 kernels, or two SSE registers).
/// gemm chooses whatever `FER_PORTABLE_KERNELS` says (std caches the feature detection).
pub(crate) fn vector_lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return 16;
    }
    8
}

thread_local! {
    /// im2col scratch of the calling thread, reused across calls (never shared).
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch of at least `len` floats (contents unspecified). The
/// buffer is taken out of the thread's slot for the call, so a nested call (rayon work stolen
/// while `f` waits) gets a buffer of its own instead of sharing this one.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buffer = SCRATCH.take();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    SCRATCH.set(buffer);
    result
}

/// `dst (m x n, contiguous) = lhs (m x k) * rhs (k x n)` into slots that may be
/// uninitialised: gemm without `read_dst` writes every value of `dst` and reads none.
/// Returns `dst` as the values written.
pub(crate) fn matmul_overwrite<'d>(
    (m, n, k): (usize, usize, usize),
    dst: &'d mut [MaybeUninit<f32>],
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    parallelism: Parallelism,
) -> &'d mut [f32] {
    assert_eq!(dst.len(), m * n, "gemm dst is the whole m x n output");
    if m == 0 || n == 0 || k == 0 {
        return Slot::zeroed(dst);
    }
    // SAFETY: `dst` holds the m x n output at row stride n and is borrowed mutably, so it
    // aliases neither operand; with `read_dst` false gemm stores each of its values without
    // loading any, so `dst` is initialised after.
    unsafe {
        product(
            (m, n, k),
            dst.as_mut_ptr().cast::<f32>(),
            (n, 1),
            false,
            (lhs, lhs_strides),
            (rhs, rhs_strides),
            parallelism,
        );
        &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32])
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)` with explicit (row, column) strides;
/// `dst` at row stride `dst_rs`, column stride 1 ([`matmul_strided`] with those strides).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    parallelism: Parallelism,
) {
    matmul_strided(
        dims,
        dst,
        (dst_rs, 1),
        accumulate,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        parallelism,
    );
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`, `dst` at (row, column) strides
/// `dst_strides`: with a row stride of 1 it writes the transpose of a row-major n x m matrix,
/// so that a product whose natural left operand is large and row-major (the weights of a
/// layer) can take it as a right operand, which gemm reads where it lies instead of packing
/// it first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        last(m, n, dst_rs, dst_cs) < dst.len(),
        "gemm dst out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_rs + c * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the assertion above keeps every index of `dst` gemm touches inside it, and
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        product(
            (m, n, k),
            dst.as_mut_ptr(),
            (dst_rs, dst_cs),
            accumulate,
            (lhs, lhs_strides),
            (rhs, rhs_strides),
            parallelism,
        )
    }
}

/// The offset of the last element of a (rows x cols) matrix at strides (rs, cs).
fn last(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// gemm on `dst` (m x n at (row, column) strides `dst_strides`), reading it first with
/// `read_dst`, after checking that both operands, at their (row, column) strides, lie inside
/// their slices.
///
/// # Safety
/// `dst` must be valid for writes (and, with `read_dst`, reads) of the m x n output at its
/// strides and alias neither operand; m, n and k must be positive.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    read_dst: bool,
    (lhs, (lhs_rs, lhs_cs)): (&[f32], (usize, usize)),
    (rhs, (rhs_rs, rhs_cs)): (&[f32], (usize, usize)),
    parallelism: Parallelism,
) {
    assert!(
        last(m, k, lhs_rs, lhs_cs) < lhs.len(),
        "gemm lhs out of bounds"
    );
    assert!(
        last(k, n, rhs_rs, rhs_cs) < rhs.len(),
        "gemm rhs out of bounds"
    );
    // SAFETY: the assertions keep every operand index gemm touches inside the slices; the
    // caller answers for `dst`. Without `read_dst` gemm ignores alpha and overwrites `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            read_dst,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
