//! Borrowing a candle tensor's CPU data as an f32 slice, for the layers' custom ops.

use std::ops::Deref;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, bail};

/// The contiguous f32 data of a CPU storage, or an error naming `op`.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op} supports f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op} needs a contiguous input");
    };
    Ok(&data[start..end])
}

/// The contiguous f32 data of a tensor's storage (from `Tensor::storage_and_layout`), or an
/// error naming `what` when it is not on the CPU.
pub(crate) fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        bail!("{what} runs on the CPU");
    };
    contiguous_f32(cpu, layout, what)
}

/// The data of several tensors, from their `Tensor::storage_and_layout` guards, each as
/// [`cpu_f32`] gives it.
pub(crate) fn cpu_f32s<'a, G: Deref<Target = Storage>>(
    guards: &'a [(G, &Layout)],
    what: &str,
) -> Result<Vec<&'a [f32]>> {
    guards
        .iter()
        .map(|(storage, layout)| cpu_f32(storage, layout, what))
        .collect()
}

/// Whether every tensor is an f32 tensor on the CPU (the custom ops' fast path).
pub(crate) fn is_cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}
