//! A convolution without bias, batch norm and ReLU as one layer (`nn.Conv2d(bias=False)`,
//! `nn.BatchNorm2d`, `nn.ReLU`): in training the convolution then the fused batch norm + ReLU;
//! in evaluation one pass, the frozen batch norm folded into the convolution's output.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use candle_nn::VarBuilder;

use super::batch_norm::BatchNormRelu;
use super::conv::{conv_output, conv_shape, conv2d};
use super::init::conv_weight;
use super::storage::{contiguous_f32, is_cpu_f32};
use crate::cpu::conv as kernels;

/// `relu(batch_norm(conv2d(x, weight)))`, stride 1, zero padding `padding`.
#[derive(Debug, Clone)]
pub struct Conv2dBnRelu {
    weight: Tensor,
    norm: BatchNormRelu,
    padding: usize,
}

impl Conv2dBnRelu {
    /// Creates (or loads) the convolution's `weight` (PyTorch's default initialisation) from
    /// `conv` and the batch norm's parameters and running statistics from `norm`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        padding: usize,
        conv: VarBuilder,
        norm: VarBuilder,
    ) -> Result<Self> {
        Ok(Conv2dBnRelu {
            weight: conv_weight(inputs, outputs, kernel, conv)?,
            norm: BatchNormRelu::new(outputs, norm)?,
            padding,
        })
    }

    /// The convolution's weight and the batch norm, for a fused inference path.
    pub(crate) fn parts(&self) -> (&Tensor, &BatchNormRelu) {
        (&self.weight, &self.norm)
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.norm.channels()
    }

    /// With `train`: the convolution, then batch norm with the batch's statistics (moving the
    /// running ones) and ReLU. Without: batch norm with the running statistics, fused into
    /// the convolution on the CPU.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let shape = conv_shape(x.dims(), self.weight.dims(), self.padding)?;
        let fused = !train
            && is_cpu_f32(&[x, &self.weight])
            && shape.supported()
            && shape.cout == self.norm.channels();
        if !fused {
            let y = conv2d(x, &self.weight, None, self.padding)?;
            return self.norm.forward(&y, train);
        }
        let (scale, shift) = self.norm.frozen_scale_shift()?;
        let affine = Tensor::stack(&[scale, shift], 0)?;
        x.contiguous()?.apply_op3_no_bwd(
            &self.weight.contiguous()?,
            &affine,
            &FrozenConvBnRelu {
                padding: self.padding,
            },
        )
    }
}

/// (x, weight, [scale; shift]) -> relu(conv2d(x, weight) * scale + shift), evaluation only.
struct FrozenConvBnRelu {
    padding: usize,
}

impl CustomOp3 for FrozenConvBnRelu {
    fn name(&self) -> &'static str {
        "fer-conv2d-bn-relu-eval"
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
        if l3.dims() != [2, shape.cout] {
            bail!(
                "{}: scale and shift have shape {:?}, expected [2, {}]",
                self.name(),
                l3.dims(),
                shape.cout
            );
        }
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let (scale, shift) = contiguous_f32(s3, l3, self.name())?.split_at(shape.cout);
        // SAFETY: the forward kernel initialises its whole output.
        Ok(unsafe {
            conv_output(shape, |out| {
                kernels::conv2d_scale_shift_relu_forward(x, w, scale, shift, shape, out)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use rand::{Rng, SeedableRng};

    /// A tensor of seeded values uniform in [lo, hi).
    fn seeded(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// The fused evaluation pass against candle's own convolution followed by the frozen batch
    /// norm and ReLU written out in tensor ops, with running statistics and affine parameters
    /// away from their initial values: relative error <= 1e-5 of the largest output, for one
    /// image and for a batch, 3x3 padded and 1x1.
    #[test]
    fn frozen_forward_matches_candle_reference_ops() {
        for (case, (batch, cin, side, cout, kernel, padding)) in
            [(1, 3, 9, 16, 3, 1), (5, 8, 7, 6, 3, 1), (2, 4, 5, 3, 1, 0)]
                .into_iter()
                .enumerate()
        {
            let seed = 10 * case as u64;
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let layer = Conv2dBnRelu::new(cin, cout, kernel, padding, vb.pp("conv"), vb.pp("norm"))
                .unwrap();
            // Seeded values for every parameter and statistic (the initialisation is not).
            let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
            names.sort();
            for (i, name) in names.iter().enumerate() {
                let (lo, hi) = match name.as_str() {
                    "norm.running_var" => (0.5, 2.0),
                    "norm.weight" => (0.5, 1.5),
                    _ => (-0.5, 0.5),
                };
                let var = vars.data().lock().unwrap()[name].clone();
                var.set(&seeded(var.dims(), seed + i as u64, lo, hi))
                    .unwrap();
            }
            let x = seeded(&[batch, cin, side, side], seed + 9, -1.0, 1.0);
            let got = layer.forward(&x, false).unwrap();
            let get = |name: &str| {
                vars.data().lock().unwrap()[&format!("norm.{name}")]
                    .as_tensor()
                    .reshape((1, cout, 1, 1))
                    .unwrap()
            };
            let y = x.conv2d(&layer.weight, padding, 1, 1, 1).unwrap();
            let expected = y
                .broadcast_sub(&get("running_mean"))
                .unwrap()
                .broadcast_div(&(get("running_var") + 1e-5).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(&get("weight"))
                .unwrap()
                .broadcast_add(&get("bias"))
                .unwrap()
                .relu()
                .unwrap();
            assert_eq!(got.dims(), expected.dims());
            let (got, expected) = (
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                expected.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0 && expected.contains(&0.0));
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "output {i}: {a} vs {b}");
            }
        }
    }

    /// In training the layer is the convolution then [`BatchNormRelu`] in training mode.
    #[test]
    fn training_forward_is_the_convolution_then_batch_norm() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let layer = Conv2dBnRelu::new(2, 4, 3, 1, vb.pp("conv"), vb.pp("norm")).unwrap();
        let x = seeded(&[3, 2, 6, 6], 1, -1.0, 1.0);
        let got = layer.forward(&x, true).unwrap();
        let y = conv2d(&x, &layer.weight, None, 1).unwrap();
        // The same statistics, so the same output (the running ones move twice; not compared).
        let expected = layer.norm.forward(&y, true).unwrap();
        let diff = (got - expected).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn a_wrong_input_is_an_error() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let layer = Conv2dBnRelu::new(2, 4, 3, 1, vb.pp("conv"), vb.pp("norm")).unwrap();
        let x = Tensor::zeros((1, 3, 6, 6), DType::F32, &Device::Cpu).unwrap();
        let err = layer.forward(&x, false).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
    }
}
