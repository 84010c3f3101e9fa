//! 2-D batch normalisation followed by ReLU (`nn.BatchNorm2d` then `nn.ReLU`), fused into one
//! candle custom op with a fast, deterministic CPU forward and backward.
//!
//! Training mode normalises with the batch's statistics and updates the running ones (PyTorch's
//! momentum 0.1, unbiased running variance); evaluation mode uses the running statistics. On
//! devices other than the CPU (or dtypes other than f32) the same maths runs through candle's
//! own ops. Parameter names are PyTorch's: `weight`, `bias`, `running_mean`, `running_var`.

use std::sync::{Arc, Mutex};

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var, bail,
};
use candle_nn::{Init, VarBuilder};

use super::storage::{contiguous_f32, cpu_f32s, is_cpu_f32};
use crate::cpu::batch_norm::{self, Planes};
use crate::cpu::uninit;

/// PyTorch's default `eps` and `momentum` of `nn.BatchNorm2d`.
pub const EPS: f64 = 1e-5;
pub const MOMENTUM: f64 = 0.1;

/// Names of the running statistics, which are state rather than trained parameters.
pub fn is_running_statistic(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// `nn.BatchNorm2d(channels)` followed by ReLU.
#[derive(Debug, Clone)]
pub struct BatchNormRelu {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNormRelu {
    /// Creates (or loads) `weight` = 1, `bias` = 0, `running_mean` = 0, `running_var` = 1.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(BatchNormRelu {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean: vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?,
            running_var: vb.get_with_hints(channels, "running_var", Init::Const(1.0))?,
        })
    }

    /// `relu(batch_norm(x))` for `x` (N, C, H, W). With `train`, normalises with the batch's
    /// statistics and moves the running statistics towards them; otherwise uses the running ones.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let channels = self.channels();
        if x.rank() != 4 || x.dim(1)? != channels {
            bail!(
                "batch norm over {channels} channels got an input of shape {:?}",
                x.dims()
            );
        }
        let fast = [x, &self.weight, &self.bias]
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
        if !train {
            return self.forward_eval(x);
        }
        if x.dim(0)? * x.dim(2)? * x.dim(3)? < 2 {
            bail!(
                "batch norm in training needs more than one value per channel, got shape {:?}",
                x.dims()
            );
        }
        let (y, mean, var) = if fast {
            let op = BatchNormReluTrain::default();
            let y = x.contiguous()?.apply_op3(
                &self.weight.contiguous()?,
                &self.bias.contiguous()?,
                op.clone(),
            )?;
            // A copy: the op keeps its own for the backward pass.
            let stats = op.stats.lock().expect("batch norm stats").clone();
            let Some((mean, var)) = stats else {
                bail!("batch norm: the forward pass recorded no statistics");
            };
            let device = x.device();
            (
                y,
                Tensor::from_vec(mean, channels, device)?,
                Tensor::from_vec(var, channels, device)?,
            )
        } else {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
            let shape = (1, channels, 1, 1);
            let y = centred
                .broadcast_div(&(var.clone() + EPS)?.sqrt()?)?
                .broadcast_mul(&self.weight.reshape(shape)?)?
                .broadcast_add(&self.bias.reshape(shape)?)?
                .relu()?;
            (y, mean.flatten_all()?.detach(), var.flatten_all()?.detach())
        };
        self.move_running_statistics(mean, var, x.elem_count() / channels)?;
        Ok(y)
    }

    /// Moves the running statistics towards a training batch's `mean` and biased `var` over
    /// `count` values per channel (PyTorch's momentum; the running variance unbiased).
    pub(crate) fn move_running_statistics(
        &self,
        mean: Tensor,
        var: Tensor,
        count: usize,
    ) -> Result<()> {
        let count = count as f64;
        let unbiased = (var * (count / (count - 1.0)))?;
        update_running(&self.running_mean, &mean)?;
        update_running(&self.running_var, &unbiased)
    }

    /// The scale (`weight`) and shift (`bias`), the trained parameters.
    pub(crate) fn affine_parameters(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    /// Evaluation mode as an affine map per channel: `batch_norm(x) = x * scale + shift` with
    /// `scale = weight / sqrt(running_var + eps)` and `shift = bias - running_mean * scale`.
    /// On the CPU in f32 this is the formula the fused CPU paths use (`cpu::batch_norm::frozen_affine`).
    pub fn frozen_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let parts = self.frozen_parts();
        if is_cpu_f32(&parts) {
            let guards: Vec<_> = parts.iter().map(|t| t.storage_and_layout()).collect();
            let values = cpu_f32s(&guards, "batch norm's frozen scale")?;
            let (scale, shift) =
                batch_norm::frozen_affine(values[0], values[1], values[2], values[3], EPS);
            let (channels, device) = (scale.len(), self.weight.device());
            return Ok((
                Tensor::from_vec(scale, channels, device)?,
                Tensor::from_vec(shift, channels, device)?,
            ));
        }
        let scale = (&self.weight * (&self.running_var + EPS)?.sqrt()?.recip()?)?;
        let shift = (&self.bias - (&self.running_mean * &scale)?)?;
        Ok((scale, shift))
    }

    /// (weight, bias, running mean, running variance), for a fused inference path.
    pub(crate) fn frozen_parts(&self) -> [&Tensor; 4] {
        [
            &self.weight,
            &self.bias,
            &self.running_mean,
            &self.running_var,
        ]
    }

    /// Channels normalised.
    pub fn channels(&self) -> usize {
        self.weight.elem_count()
    }

    fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let (scale, shift) = self.frozen_scale_shift()?;
        let shape = (1, scale.elem_count(), 1, 1);
        x.broadcast_mul(&scale.reshape(shape)?)?
            .broadcast_add(&shift.reshape(shape)?)?
            .relu()
    }
}

/// `running = (1 - momentum) * running + momentum * batch`, in place (detached).
fn update_running(running: &Tensor, batch: &Tensor) -> Result<()> {
    let updated = ((running.detach() * (1.0 - MOMENTUM))? + (batch.detach() * MOMENTUM)?)?;
    Var::from_tensor(running)?.set(&updated)
}

/// Per-channel mean and biased variance of the last training forward pass.
type Stats = (Vec<f32>, Vec<f32>);

/// (x, weight, bias) -> relu(batch_norm(x)) with batch statistics; records them for the caller
/// and for its own backward pass.
#[derive(Debug, Clone, Default)]
struct BatchNormReluTrain {
    stats: Arc<Mutex<Option<Stats>>>,
}

/// The batch-norm geometry of an NCHW tensor's dims.
fn planes(dims: &[usize]) -> Result<Planes> {
    let &[batch, channels, h, w] = dims else {
        bail!("batch norm expects (N, C, H, W), got {dims:?}");
    };
    Ok(Planes {
        batch,
        channels,
        plane: h * w,
    })
}

impl CustomOp3 for BatchNormReluTrain {
    fn name(&self) -> &'static str {
        "fer-batch-norm-relu"
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
        let p = planes(l1.dims())?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let gamma = contiguous_f32(s2, l2, self.name())?;
        let beta = contiguous_f32(s3, l3, self.name())?;
        let (mean, var) = batch_norm::channel_statistics(x, p);
        let inv = batch_norm::inverse_std(&var, EPS);
        let (scale, shift) = batch_norm::affine(gamma, beta, &mean, &inv);
        // SAFETY: scale_shift_relu initialises every plane of its output.
        let out = unsafe {
            uninit::written(x.len(), |out| {
                batch_norm::scale_shift_relu(x, p, &scale, &shift, out)
            })
        };
        *self.stats.lock().expect("batch norm stats") = Some((mean, var));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.lock().expect("batch norm stats").clone();
        let Some((mean, var)) = stats else {
            bail!("batch norm backward: the forward pass recorded no statistics");
        };
        let grad_op = BatchNormReluGrad {
            gamma: gamma.to_dtype(DType::F32)?.to_vec1()?,
            beta: beta.to_dtype(DType::F32)?.to_vec1()?,
            mean,
            inv: batch_norm::inverse_std(&var, EPS),
        };
        let packed = x.apply_op2_no_bwd(&grad.contiguous()?, &grad_op)?;
        let (n, c) = (x.elem_count(), gamma.elem_count());
        let grad_x = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let grad_gamma = packed.narrow(0, n, c)?;
        let grad_beta = packed.narrow(0, n + c, c)?;
        Ok((Some(grad_x), Some(grad_gamma), Some(grad_beta)))
    }
}

/// (x, grad_y) -> grad_x, grad_weight and grad_bias, packed in one vector, given the forward
/// pass's per-channel mean and inverse standard deviation and the layer's weight and bias
/// (with which the kernel recomputes where the output was positive).
struct BatchNormReluGrad {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    inv: Vec<f32>,
}

impl CustomOp2 for BatchNormReluGrad {
    fn name(&self) -> &'static str {
        "fer-batch-norm-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = planes(l1.dims())?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        let channels_fit = [&self.gamma, &self.beta, &self.mean, &self.inv]
            .iter()
            .all(|v| v.len() == p.channels);
        if dy.len() != x.len() || !channels_fit {
            bail!(
                "batch norm gradient: shapes do not match the input {:?}",
                l1.dims()
            );
        }
        let (gamma, beta) = (&self.gamma, &self.beta);
        let packed = batch_norm::relu_backward(x, dy, p, gamma, beta, &self.mean, &self.inv);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: &[usize], seed: u64, offset: f32, spread: f32) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| offset + spread * rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn layer(channels: usize) -> (VarMap, BatchNormRelu) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let bn = BatchNormRelu::new(channels, vb).unwrap();
        // Non-trivial affine parameters.
        Var::from_tensor(&bn.weight)
            .unwrap()
            .set(&random(&[channels], 7, 1.0, 0.5))
            .unwrap();
        Var::from_tensor(&bn.bias)
            .unwrap()
            .set(&random(&[channels], 8, 0.0, 0.5))
            .unwrap();
        (vars, bn)
    }

    /// The same layer through candle's reference ops (the non-CPU path).
    fn reference(bn: &BatchNormRelu, x: &Tensor) -> Tensor {
        let channels = bn.weight.elem_count();
        let mean = x.mean_keepdim((0, 2, 3)).unwrap();
        let centred = x.broadcast_sub(&mean).unwrap();
        let var = centred.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
        let shape = (1, channels, 1, 1);
        centred
            .broadcast_div(&(var + EPS).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&bn.weight.reshape(shape).unwrap())
            .unwrap()
            .broadcast_add(&bn.bias.reshape(shape).unwrap())
            .unwrap()
            .relu()
            .unwrap()
    }

    fn max_relative_error(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0f32, f32::max)
    }

    #[test]
    fn forward_and_gradients_match_candle_reference_ops() {
        let (_vars, bn) = layer(5);
        let x = Var::from_tensor(&random(&[6, 5, 7, 9], 1, 0.3, 2.0)).unwrap();
        let upstream = random(&[6, 5, 7, 9], 2, 0.0, 1.0);

        let fast = bn.forward(x.as_tensor(), true).unwrap();
        let slow = reference(&bn, x.as_tensor());
        assert!(max_relative_error(&fast, &slow) < 1e-5);
        // About half the outputs are clamped by the ReLU, so its mask is exercised.
        let zeros = fast.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let clamped = zeros.iter().filter(|&&v| v == 0.0).count();
        assert!(clamped > zeros.len() / 5 && clamped < zeros.len() * 4 / 5);

        let fast_grads = (fast * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let slow_grads = (slow * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for tensor in [x.as_tensor(), &bn.weight, &bn.bias] {
            let a = fast_grads.get(tensor).unwrap();
            let b = slow_grads.get(tensor).unwrap();
            let error = max_relative_error(a, b);
            assert!(error < 1e-4, "gradient error {error}");
        }
    }

    #[test]
    fn running_statistics_follow_pytorch_and_drive_evaluation() {
        let (vars, bn) = layer(3);
        let x = random(&[4, 3, 5, 5], 3, 2.0, 1.0);
        bn.forward(&x, true).unwrap();
        let count = 4.0 * 25.0;
        let mean = x.mean_keepdim((0, 2, 3)).unwrap().flatten_all().unwrap();
        let var = x
            .broadcast_sub(&x.mean_keepdim((0, 2, 3)).unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_keepdim((0, 2, 3))
            .unwrap()
            .flatten_all()
            .unwrap()
            / (count - 1.0);
        let expected_mean = (mean * MOMENTUM).unwrap();
        let expected_var = ((var.unwrap() * MOMENTUM).unwrap() + (1.0 - MOMENTUM)).unwrap();
        assert!(max_relative_error(&bn.running_mean, &expected_mean) < 1e-5);
        assert!(max_relative_error(&bn.running_var, &expected_var) < 1e-5);
        // The VarMap holds the same (updated) statistics, so checkpoints save them.
        let data = vars.data().lock().unwrap();
        let saved = data["running_mean"].as_tensor();
        assert!(max_relative_error(saved, &expected_mean) < 1e-6);
        drop(data);

        // Evaluation normalises with the running statistics, not the batch's.
        let y = bn.forward(&x, false).unwrap();
        let shape = (1, 3, 1, 1);
        let expected = x
            .broadcast_sub(&bn.running_mean.reshape(shape).unwrap())
            .unwrap()
            .broadcast_div(
                &(bn.running_var.reshape(shape).unwrap() + EPS)
                    .unwrap()
                    .sqrt()
                    .unwrap(),
            )
            .unwrap()
            .broadcast_mul(&bn.weight.reshape(shape).unwrap())
            .unwrap()
            .broadcast_add(&bn.bias.reshape(shape).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        assert!(max_relative_error(&y, &expected) < 1e-5);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let (_vars, bn) = layer(3);
        let err = bn
            .forward(&random(&[2, 4, 3, 3], 1, 0.0, 1.0), true)
            .unwrap_err();
        assert!(err.to_string().contains("3 channels"), "{err}");
        let err = bn
            .forward(&random(&[1, 3, 1, 1], 1, 0.0, 1.0), true)
            .unwrap_err();
        assert!(err.to_string().contains("more than one value"), "{err}");
    }
}
