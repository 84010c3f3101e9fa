//! Outputs written without a zeroing pass first: a kernel takes its output as slots (`f32` or
//! `MaybeUninit<f32>`) and zeroes each part just before it writes it, on the thread that
//! writes it and while that part is in its cache.
//!
//! A fresh `vec![0f32; n]` costs a single-threaded memset of the whole tensor before the
//! kernel runs (at vgg-bn width 32, batch 128, 38 MB for each first-stage activation): about
//! a tenth of inference time. [`written`] allocates without it and hands the kernel
//! uninitialised slots; the kernel initialises every slot through [`Slot::zeroed`], or
//! through [`Slot::set`] where it writes every value of a part in one loop.

use std::mem::MaybeUninit;

/// An output element a kernel may write: an `f32` (already initialised, as callers with their
/// own buffers pass) or a `MaybeUninit<f32>` (a fresh allocation from [`written`]).
pub(crate) trait Slot: Send + Sync + Sized {
    /// `chunk` set to zero, viewed as initialised values.
    fn zeroed(chunk: &mut [Self]) -> &mut [f32];

    /// The slot set to `value`: a kernel that writes every slot of a part this way needs no
    /// zeroing first.
    fn set(&mut self, value: f32);

    /// `chunk` as slots that may be uninitialised, for a kernel that overwrites every one
    /// (such as [`matmul_overwrite`](super::gemm::matmul_overwrite)).
    ///
    /// # Safety
    /// Only initialised values may be written through the result: an `f32` chunk must stay
    /// initialised.
    unsafe fn as_uninit(chunk: &mut [Self]) -> &mut [MaybeUninit<f32>];
}

impl Slot for f32 {
    fn zeroed(chunk: &mut [f32]) -> &mut [f32] {
        chunk.fill(0.0);
        chunk
    }

    #[inline(always)]
    fn set(&mut self, value: f32) {
        *self = value;
    }

    unsafe fn as_uninit(chunk: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: same layout; the caller writes only initialised values through the result.
        unsafe { &mut *(chunk as *mut [f32] as *mut [MaybeUninit<f32>]) }
    }
}

impl Slot for MaybeUninit<f32> {
    fn zeroed(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
        for slot in chunk.iter_mut() {
            slot.write(0.0);
        }
        // SAFETY: every element of `chunk` was initialised just above, and `MaybeUninit<f32>`
        // has the layout of `f32`.
        unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }

    #[inline(always)]
    fn set(&mut self, value: f32) {
        self.write(value);
    }

    unsafe fn as_uninit(chunk: &mut [MaybeUninit<f32>]) -> &mut [MaybeUninit<f32>] {
        chunk
    }
}

/// A vector of `len` values, all written by `kernel` into uninitialised slots.
///
/// # Safety
/// `kernel` must initialise every one of the `len` slots (a kernel of this crate does so by
/// passing each part of its output through [`Slot::zeroed`] before writing it, or by
/// [`Slot::set`] on each of its values, its parts covering the whole output).
pub(crate) unsafe fn written(len: usize, kernel: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    kernel(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees that `kernel` initialised all `len` slots, within the
    // capacity reserved above.
    unsafe { values.set_len(len) };
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_slots_read_as_zero_and_keep_what_is_written_after() {
        let values = unsafe {
            written(37, |out| {
                for (i, chunk) in out.chunks_mut(10).enumerate() {
                    let chunk = Slot::zeroed(chunk);
                    chunk[0] = i as f32 + 1.0;
                }
            })
        };
        assert_eq!(values.len(), 37);
        let expected: Vec<f32> = (0..37)
            .map(|i| {
                if i % 10 == 0 {
                    (i / 10) as f32 + 1.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(values, expected);
        let mut plain = vec![5f32; 4];
        assert_eq!(Slot::zeroed(&mut plain[1..3]), &[0.0, 0.0]);
        assert_eq!(plain, [5.0, 0.0, 0.0, 5.0]);
    }
}
