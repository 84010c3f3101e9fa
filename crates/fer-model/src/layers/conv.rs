//! 2-D convolution as a candle op ([`conv2d`], padding fused) with its own CPU forward and
//! backward on the crate's `cpu` kernels; candle's own convolution on other devices.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

use super::storage::{contiguous_f32, is_cpu_f32};
use crate::cpu::conv as kernels;
use crate::cpu::shape::ConvShape;
use crate::cpu::uninit;

/// 2-D convolution, stride 1, zero padding `padding` on every side, optional bias:
/// `x` (N, Cin, H, W), `weight` (Cout, Cin, K, K), `bias` (Cout) -> (N, Cout, H', W').
///
/// Same as `x.conv2d(weight, padding, 1, 1, 1)` plus the bias, with a fast CPU forward and
/// backward (grad-input as a convolution with the flipped kernel, grad-weight as im2col +
/// gemm; no gradient is computed for an input that does not need one, such as the images).
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
) -> Result<Tensor> {
    let shape = conv_shape(x.dims(), weight.dims(), padding)?;
    if let Some(bias) = bias
        && bias.dims() != [shape.cout]
    {
        bail!(
            "conv2d: bias has shape {:?}, expected [{}]",
            bias.dims(),
            shape.cout
        );
    }
    let fast =
        shape.supported() && is_cpu_f32(&[x, weight]) && bias.is_none_or(|b| is_cpu_f32(&[b]));
    if !fast {
        let y = x.conv2d(weight, padding, 1, 1, 1)?;
        return match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, shape.cout, 1, 1))?),
            None => Ok(y),
        };
    }
    let op = Conv2dOp {
        padding,
        has_bias: bias.is_some(),
    };
    // Without a bias, an untracked placeholder takes its argument slot; the kernels skip it.
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(shape.cout, DType::F32, x.device())?,
    };
    x.contiguous()?.apply_op3(&weight.contiguous()?, &bias, op)
}

pub(super) fn conv_shape(x: &[usize], w: &[usize], pad: usize) -> Result<ConvShape> {
    let (&[batch, cin, h, wd], &[cout, wcin, k, k2]) = (x, w) else {
        bail!("conv2d expects x (N, C, H, W) and weight (Cout, Cin, K, K), got {x:?} and {w:?}");
    };
    if wcin != cin || k != k2 || k == 0 {
        bail!("conv2d: weight {w:?} does not fit input {x:?} (square kernels only)");
    }
    if h + 2 * pad < k || wd + 2 * pad < k {
        bail!("conv2d: kernel {k} is larger than the padded input {x:?} (padding {pad})");
    }
    Ok(ConvShape {
        batch,
        cin,
        h,
        w: wd,
        cout,
        k,
        pad,
    })
}

/// The (batch, cout, oh, ow) output of a convolution of geometry `shape`, filled by `kernel`
/// without being zeroed first.
///
/// # Safety
/// `kernel` must initialise every slot of the output, as the `cpu::conv` forward kernels do.
pub(super) unsafe fn conv_output(
    shape: ConvShape,
    kernel: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> (CpuStorage, Shape) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    // SAFETY: passed on to the caller.
    let out = unsafe { uninit::written(shape.batch * shape.cout * oh * ow, kernel) };
    (
        CpuStorage::F32(out),
        Shape::from((shape.batch, shape.cout, oh, ow)),
    )
}

/// (x, weight, bias) -> convolution output; without `has_bias` the third argument is a
/// placeholder, neither added nor differentiated.
#[derive(Debug, Clone, Copy)]
struct Conv2dOp {
    padding: usize,
    has_bias: bool,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fer-conv2d"
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
        let shape = conv_shape(l1.dims(), l2.dims(), self.padding)?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let b = contiguous_f32(s3, l3, self.name())?;
        // SAFETY: the forward kernel initialises its whole output.
        Ok(unsafe {
            conv_output(shape, |out| {
                kernels::conv2d_forward(x, w, self.has_bias.then_some(b), shape, out)
            })
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let shape = conv_shape(x.dims(), weight.dims(), self.padding)?;
        let grad_x = if x.track_op() {
            Some(grad.apply_op2_no_bwd(weight, &ConvGradInput(shape))?)
        } else {
            None
        };
        let with_bias = self.has_bias && bias.track_op();
        let (grad_w, grad_b) = if weight.track_op() || with_bias {
            let packed = x.apply_op2_no_bwd(&grad, &ConvGradWeight { shape, with_bias })?;
            let nw = weight.elem_count();
            let grad_b = if with_bias {
                Some(packed.narrow(0, nw, shape.cout)?)
            } else {
                None
            };
            (
                Some(packed.narrow(0, 0, nw)?.reshape(weight.shape())?),
                grad_b,
            )
        } else {
            (None, None)
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

/// (grad_out, weight) -> grad_x.
struct ConvGradInput(ConvShape);

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "fer-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = self.0;
        if l1.dims() != [s.batch, s.cout, s.out_h(), s.out_w()] {
            bail!("conv2d gradient has shape {:?}", l1.dims());
        }
        let dy = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        // SAFETY: grad-input is a forward convolution, which initialises its whole output.
        let dx = unsafe {
            uninit::written(s.batch * s.cin * s.h * s.w, |dx| {
                kernels::conv2d_grad_input(dy, w, s, dx)
            })
        };
        Ok((CpuStorage::F32(dx), Shape::from((s.batch, s.cin, s.h, s.w))))
    }
}

/// (x, grad_out) -> grad_weight, followed by grad_bias `with_bias`, in one vector.
struct ConvGradWeight {
    shape: ConvShape,
    with_bias: bool,
}

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "fer-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = self.shape;
        if l2.dims() != [s.batch, s.cout, s.out_h(), s.out_w()] {
            bail!("conv2d gradient has shape {:?}", l2.dims());
        }
        let x = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        let nw = s.cout * s.patch();
        let mut packed = vec![0f32; nw + if self.with_bias { s.cout } else { 0 }];
        let (dw, db) = packed.split_at_mut(nw);
        kernels::conv2d_grad_weight(x, dy, s, dw, self.with_bias.then_some(db));
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
