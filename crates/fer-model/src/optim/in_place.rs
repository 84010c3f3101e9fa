//! In-place elementwise updates of CPU f32 tensors, in parallel chunks: the fused optimizer
//! and weight-average steps, one pass per tensor where the tensor expressions make several
//! single-threaded passes with a fresh allocation each.

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor, bail};
use rayon::prelude::*;

use crate::layers::storage::{cpu_f32, is_cpu_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Whether `t` is a contiguous f32 tensor on the CPU: what the in-place paths handle.
pub(crate) fn is_cpu_contiguous_f32(t: &Tensor) -> bool {
    is_cpu_f32(&[t]) && t.is_contiguous()
}

/// Whether every tensor is a contiguous f32 CPU tensor of `n` elements.
pub(crate) fn all_fit(n: usize, tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| is_cpu_contiguous_f32(t) && t.elem_count() == n)
}

/// Runs `f` on the contiguous f32 CPU values of `t` (checked by [`is_cpu_contiguous_f32`]).
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    Ok(f(cpu_f32(&storage, layout, "in-place update")?))
}

/// Rewrites the values of `t` in place: `update(offset, values)` for consecutive chunks of
/// them in parallel, `offset` being the index of the chunk's first value (to read other
/// tensors at the same positions). `t` must not share its storage with a tensor that
/// `update` reads.
pub(crate) fn update(
    t: &Tensor,
    name: &'static str,
    update: impl Fn(usize, &mut [f32]) + Sync,
) -> Result<()> {
    t.inplace_op1(&Update { name, update })
}

struct Update<F> {
    name: &'static str,
    update: F,
}

impl<F: Fn(usize, &mut [f32]) + Sync> InplaceOp1 for Update<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            bail!("{}: f32 tensors only", self.name);
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: contiguous tensors only", self.name);
        };
        data[start..end]
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, values)| (self.update)(c * CHUNK, values));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn updates_every_value_with_its_offset() {
        let n = 3 * CHUNK + 5;
        let t = Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu).unwrap();
        update(&t, "test", |at, values| {
            for (i, v) in values.iter_mut().enumerate() {
                *v = (at + i) as f32;
            }
        })
        .unwrap();
        let got = t.to_vec1::<f32>().unwrap();
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32));
    }

    #[test]
    fn strided_tensors_are_not_handled() {
        let t = Tensor::zeros((4, 3), candle_core::DType::F32, &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        assert!(!is_cpu_contiguous_f32(&t));
        assert!(!all_fit(12, &[&t]));
    }
}
