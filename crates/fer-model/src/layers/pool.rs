//! Max and average pooling with any kernel, stride and zero padding, forward and backward, as
//! candle ops.
//!
//! candle 0.11's `max_pool2d_with_stride` / `avg_pool2d_with_stride` run forward but refuse
//! backward when kernel != stride, which is exactly the seed's 5/2 max pool and 3/2 average
//! pools. These ops follow PyTorch's `nn.ZeroPad2d(pad)` followed by `MaxPool2d` / `AvgPool2d`
//! (floor mode): padded zeros take part in the max and count in the average; the max routes its
//! gradient to the first maximum of each window, the average spreads it evenly. Fusing the
//! padding saves the padded copy and its backward. The kernels are CPU ones
//! (the private `cpu::pool`); on other devices (CUDA) `Pool2d::forward` composes the window
//! from candle ops that run there forward and backward ([`Pool2d::forward_composed`]), so
//! that no activation leaves the device.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::storage::contiguous_f32;
use crate::cpu::pool as kernels;
pub use crate::cpu::shape::PoolKind;
use crate::cpu::shape::PoolShape;
use crate::cpu::uninit;

/// A 2-D pooling window over NCHW tensors, after zero padding by `pad` on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pool2d {
    pub fn max(kernel: usize, stride: usize) -> Self {
        Pool2d {
            kind: PoolKind::Max,
            kernel,
            stride,
            pad: 0,
        }
    }

    pub fn avg(kernel: usize, stride: usize) -> Self {
        Pool2d {
            kind: PoolKind::Avg,
            kernel,
            stride,
            pad: 0,
        }
    }

    /// The same window after `nn.ZeroPad2d(pad)`.
    pub fn with_zero_padding(self, pad: usize) -> Self {
        Pool2d { pad, ..self }
    }

    /// Applies the pooling to `x` (N, C, H, W), recording it for backpropagation: the CPU
    /// kernels on the CPU, [`Pool2d::forward_composed`] on other devices.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() {
            x.contiguous()?.apply_op1(*self)
        } else {
            self.forward_composed(x)
        }
    }

    /// The same pooling built from candle ops that every device runs forward and backward
    /// (padding, narrowing, reshapes, `maximum`, sums): each of the `kernel`² window offsets is
    /// one strided view of the padded input, and the result is their maximum or mean. Where a
    /// window holds two equal maxima the gradient is split between them (the CPU kernel gives
    /// it to the first); with real-valued activations that does not occur.
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.shape(x.dims())?;
        let (oh, ow) = (s.out_h(), s.out_w());
        let (n, c) = (x.dims()[0], x.dims()[1]);
        // Zero padding, plus `stride` extra zero rows and columns at the end so that every
        // offset's strided view can be taken as a reshape (the extra ones are never selected).
        let padded = x
            .pad_with_zeros(2, self.pad, self.pad + self.stride)?
            .pad_with_zeros(3, self.pad, self.pad + self.stride)?;
        let width = padded.dims()[3];
        let mut pooled: Option<Tensor> = None;
        for dy in 0..self.kernel {
            // Rows dy, dy + stride, ..., (oh rows): (n, c, oh, width).
            let rows = padded
                .narrow(2, dy, oh * self.stride)?
                .reshape((n, c, oh, self.stride, width))?
                .narrow(3, 0, 1)?
                .squeeze(3)?;
            for dx in 0..self.kernel {
                let view = rows
                    .narrow(3, dx, ow * self.stride)?
                    .reshape((n, c, oh, ow, self.stride))?
                    .narrow(4, 0, 1)?
                    .squeeze(4)?;
                pooled = Some(match (pooled, self.kind) {
                    (None, _) => view,
                    (Some(acc), PoolKind::Max) => acc.maximum(&view)?,
                    (Some(acc), PoolKind::Avg) => (acc + view)?,
                });
            }
        }
        let pooled = pooled.expect("a window has at least one offset");
        match self.kind {
            PoolKind::Max => Ok(pooled),
            PoolKind::Avg => pooled / (self.kernel * self.kernel) as f64,
        }
    }

    fn shape(&self, dims: &[usize]) -> Result<PoolShape> {
        let &[n, c, h, w] = dims else {
            bail!("pooling expects an NCHW tensor, got shape {dims:?}");
        };
        let fits = |side: usize| side + 2 * self.pad >= self.kernel;
        if self.kernel == 0 || self.stride == 0 || !fits(h) || !fits(w) {
            bail!(
                "pool {}x{} stride {} does not fit an input of {h}x{w} padded by {}",
                self.kernel,
                self.kernel,
                self.stride,
                self.pad
            );
        }
        Ok(PoolShape {
            kind: self.kind,
            planes: n * c,
            h,
            w,
            k: self.kernel,
            stride: self.stride,
            pad: self.pad,
        })
    }
}

/// A 2 x 2 max pool at stride 2 (`nn.MaxPool2d(2)`): the crate's CPU kernel ([`Pool2d`]) on
/// the CPU, candle's own pool (which has a backward where kernel == stride) elsewhere.
pub(crate) fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        Pool2d::max(2, 2).forward(x)
    } else {
        x.max_pool2d(2)
    }
}

impl CustomOp1 for Pool2d {
    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "fer-max-pool2d",
            PoolKind::Avg => "fer-avg-pool2d",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, self.name())?;
        let s = self.shape(layout.dims())?;
        let (oh, ow) = (s.out_h(), s.out_w());
        // SAFETY: pool_forward initialises every plane of its output.
        let out = unsafe {
            uninit::written(s.planes * oh * ow, |out| {
                kernels::pool_forward(input, s, out, None)
            })
        };
        let dims = layout.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from((dims[0], dims[1], oh, ow)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &PoolGrad(*self))?;
        Ok(Some(grad))
    }
}

/// Gradient of a [`Pool2d`] with respect to its input: (input, output gradient) -> input gradient.
struct PoolGrad(Pool2d);

impl CustomOp2 for PoolGrad {
    fn name(&self) -> &'static str {
        "fer-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(s1, l1, self.name())?;
        let grad_out = contiguous_f32(s2, l2, self.name())?;
        let s = self.0.shape(l1.dims())?;
        let dims = l1.dims();
        let expected = [dims[0], dims[1], s.out_h(), s.out_w()];
        if l2.dims() != expected {
            bail!(
                "pool gradient has shape {:?}, expected {expected:?}",
                l2.dims()
            );
        }
        // SAFETY: pool_backward initialises every plane of its output.
        let grad_in = unsafe {
            uninit::written(input.len(), |grad_in| {
                kernels::pool_backward(input, grad_out, s, grad_in)
            })
        };
        Ok((CpuStorage::F32(grad_in), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn input(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        // Distinct values so max windows have no ties.
        let len = shape.0 * shape.1 * shape.2 * shape.3;
        let values: Vec<f32> = (0..len)
            .map(|i| (((i as u64 * 7919 + seed * 104_729) % 10_007) as f32) / 1000.0 - 5.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn forward_matches_candles_reference_pools() {
        let x = input((2, 3, 12, 11), 1);
        let ours = Pool2d::max(5, 2).forward(&x).unwrap();
        let reference = x.max_pool2d_with_stride(5, 2).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 4, 4]);
        let diff = (ours - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);

        let ours = Pool2d::avg(3, 2).forward(&x).unwrap();
        let reference = x.avg_pool2d_with_stride(3, 2).unwrap();
        let diff = (ours - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    /// Central finite differences of `sum(pool(x) * weights)` against the op's gradient.
    fn check_gradient(pool: Pool2d) {
        let x = Var::from_tensor(&input((2, 2, 9, 10), 3)).unwrap();
        let out_shape = pool.forward(x.as_tensor()).unwrap().dims().to_vec();
        let weights = input((out_shape[0], out_shape[1], out_shape[2], out_shape[3]), 5);
        let objective = |t: &Tensor| -> f64 {
            let y = pool.forward(t).unwrap();
            (y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let loss = (pool.forward(x.as_tensor()).unwrap() * &weights)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let analytic: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-2f32;
        for i in (0..base.len()).step_by(7) {
            let mut plus = base.clone();
            plus[i] += eps;
            let mut minus = base.clone();
            minus[i] -= eps;
            let t = |v: Vec<f32>| Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap();
            let numeric = (objective(&t(plus)) - objective(&t(minus))) / (2.0 * f64::from(eps));
            assert!(
                (numeric - f64::from(analytic[i])).abs() < 1e-2,
                "{pool:?} element {i}: numeric {numeric}, analytic {}",
                analytic[i]
            );
        }
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences() {
        check_gradient(Pool2d::max(5, 2));
    }

    #[test]
    fn avg_pool_gradient_matches_finite_differences() {
        check_gradient(Pool2d::avg(3, 2));
    }

    /// Largest difference between two tensors of the same shape.
    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_composed_pool_for_other_devices_matches_the_cpu_kernels() {
        for pool in [
            Pool2d::max(5, 2),
            Pool2d::avg(3, 2),
            Pool2d::max(2, 2),
            Pool2d::max(3, 2).with_zero_padding(1),
            Pool2d::avg(3, 2).with_zero_padding(1),
        ] {
            let x = Var::from_tensor(&input((2, 3, 13, 10), 7)).unwrap();
            let kernel_out = pool.forward(x.as_tensor()).unwrap();
            let composed_out = pool.forward_composed(x.as_tensor()).unwrap();
            assert_eq!(kernel_out.dims(), composed_out.dims(), "{pool:?}");
            let diff = max_difference(&kernel_out, &composed_out);
            assert!(diff < 1e-5, "{pool:?}: outputs differ by {diff}");

            let weights = input(
                (
                    kernel_out.dims()[0],
                    kernel_out.dims()[1],
                    kernel_out.dims()[2],
                    kernel_out.dims()[3],
                ),
                11,
            );
            let gradient = |out: Tensor| {
                let loss = (out * &weights).unwrap().sum_all().unwrap();
                loss.backward().unwrap().get(&x).unwrap().clone()
            };
            let from_kernel = gradient(kernel_out);
            let from_composed = gradient(composed_out);
            let diff = max_difference(&from_kernel, &from_composed);
            assert!(diff < 1e-4, "{pool:?}: gradients differ by {diff}");
            let size = from_kernel
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(size > 1.0, "{pool:?}: no gradient reached the input");
        }
    }

    #[test]
    fn rejects_inputs_smaller_than_the_window() {
        let x = input((1, 1, 3, 3), 0);
        let err = Pool2d::max(5, 2).forward(&x).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
    }
}
