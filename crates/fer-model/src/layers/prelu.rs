//! PReLU as a candle op ([`prelu`]): one shared slope or one per channel, with a one-pass
//! CPU backward; candle's own ops on other devices.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::storage::{contiguous_f32, is_cpu_f32};
use crate::cpu::prelu as kernels;

/// PReLU: `max(x, 0) + alpha * min(x, 0)`, with `alpha` of one value (shared) or one per
/// channel (dimension 1 of `x`), as `candle_nn::PReLU`. The CPU backward computes the input
/// and slope gradients in one pass.
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    prelu_inner(x.dims(), alpha.elem_count())?;
    if !is_cpu_f32(&[x, alpha]) {
        let weight = if alpha.elem_count() == 1 {
            alpha.reshape(())?
        } else {
            let mut s = vec![1; x.rank()];
            s[1] = alpha.elem_count();
            alpha.reshape(s)?
        };
        let zeros = x.zeros_like()?;
        return x.maximum(&zeros)? + x.minimum(&zeros)?.broadcast_mul(&weight)?;
    }
    x.contiguous()?
        .apply_op2(&alpha.flatten_all()?.contiguous()?, PreluOp)
}

/// Elements per (item, channel) of a PReLU input; errors when the slopes do not fit.
fn prelu_inner(dims: &[usize], slopes: usize) -> Result<usize> {
    if slopes == 1 {
        return Ok(1);
    }
    if dims.len() < 2 || dims[1] != slopes {
        bail!("prelu: {slopes} slopes do not fit an input of shape {dims:?} (channels on dim 1)");
    }
    Ok(dims[2..].iter().product())
}

/// (x, alpha) -> PReLU output.
#[derive(Debug, Clone, Copy)]
struct PreluOp;

impl CustomOp2 for PreluOp {
    fn name(&self) -> &'static str {
        "fer-prelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let alpha = contiguous_f32(s2, l2, self.name())?;
        let inner = prelu_inner(l1.dims(), alpha.len())?;
        let mut out = vec![0f32; x.len()];
        kernels::prelu_forward(x, alpha, inner, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        alpha: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(alpha, &grad.contiguous()?, &PreluGrad)?;
        let n = x.elem_count();
        let grad_x = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let grad_alpha = packed.narrow(0, n, alpha.elem_count())?;
        Ok((
            x.track_op().then_some(grad_x),
            alpha.track_op().then_some(grad_alpha),
        ))
    }
}

/// (x, alpha, grad_out) -> grad_x and grad_alpha, packed.
struct PreluGrad;

impl CustomOp3 for PreluGrad {
    fn name(&self) -> &'static str {
        "fer-prelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let alpha = contiguous_f32(s2, l2, self.name())?;
        let dy = contiguous_f32(s3, l3, self.name())?;
        if dy.len() != x.len() {
            bail!(
                "prelu gradient has {} elements, expected {}",
                dy.len(),
                x.len()
            );
        }
        let inner = prelu_inner(l1.dims(), alpha.len())?;
        let mut packed = vec![0f32; x.len() + alpha.len()];
        let (dx, da) = packed.split_at_mut(x.len());
        da.copy_from_slice(&kernels::prelu_backward(x, alpha, dy, inner, dx));
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
