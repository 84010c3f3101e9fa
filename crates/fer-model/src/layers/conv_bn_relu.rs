//! A convolution without bias, batch norm and ReLU as one layer (`nn.Conv2d(bias=False)`,
//! `nn.BatchNorm2d`, `nn.ReLU`). On the CPU in f32, training runs one candle op whose
//! backward goes from the output's gradient to the input's, the weight's and the batch
//! norm's: the convolution's output and its gradient never become candle tensors (one
//! activation-sized tensor fewer alive per layer, no graph node or gradient entry for
//! them); evaluation runs one pass, the frozen batch norm folded into the convolution's
//! output. Either can end with a 2 x 2 max pool ([`Conv2dBnRelu::forward_max_pool`]) whose
//! full-size input is never stored. Elsewhere: the convolution, then [`BatchNormRelu`] (and
//! the pool).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use candle_nn::VarBuilder;

use super::batch_norm::{BatchNormRelu, EPS};
use super::conv::{conv_output, conv_shape, conv2d};
use super::init::conv_weight;
use super::pool::max_pool_2x2;
use super::storage::{contiguous_f32, cpu_f32s, is_cpu_f32};
use crate::cpu::batch_norm::{self as bn_kernels, Planes};
use crate::cpu::conv as kernels;
use crate::cpu::shape::{ConvShape, PoolShape};
use crate::cpu::uninit;

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
        let fused = self.has_cpu_kernels(x, &shape)
            && (!train || shape.batch * shape.out_h() * shape.out_w() >= 2);
        if !fused {
            let y = conv2d(x, &self.weight, None, self.padding)?;
            return self.norm.forward(&y, train);
        }
        if train {
            return self.forward_train(x, shape, false);
        }
        self.forward_frozen(x, false)
    }

    /// [`Conv2dBnRelu::forward`], then a max pool over 2 x 2 windows at stride 2 (floor, as
    /// `nn.MaxPool2d(2)`). On the CPU in f32 the pool runs inside the layer's pass, on each
    /// output plane while it is in cache, so the unpooled output is never stored: in
    /// evaluation as the convolution computes it, in training after the batch's statistics,
    /// whose backward rebuilds the pool's routing plane by plane from the convolution's saved
    /// output. Elsewhere the two steps. The same values either way.
    pub fn forward_max_pool(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let shape = conv_shape(x.dims(), self.weight.dims(), self.padding)?;
        let fused = self.has_cpu_kernels(x, &shape) && shape.out_h() >= 2 && shape.out_w() >= 2;
        if !fused {
            return max_pool_2x2(&self.forward(x, train)?);
        }
        if train {
            return self.forward_train(x, shape, true);
        }
        self.forward_frozen(x, true)
    }

    /// Whether the crate's CPU kernels take `x` through this layer (`shape`, from
    /// [`conv_shape`]): every tensor on the CPU in f32, a supported shape and as many output
    /// channels as the batch norm has.
    fn has_cpu_kernels(&self, x: &Tensor, shape: &ConvShape) -> bool {
        let (gamma, beta) = self.norm.affine_parameters();
        is_cpu_f32(&[x, &self.weight, gamma, beta])
            && shape.supported()
            && shape.cout == self.norm.channels()
    }

    /// The frozen pass on the CPU ([`FrozenConvBnRelu`]), optionally max-pooled.
    fn forward_frozen(&self, x: &Tensor, max_pool: bool) -> Result<Tensor> {
        let (scale, shift) = self.norm.frozen_scale_shift()?;
        let affine = Tensor::stack(&[scale, shift], 0)?;
        x.contiguous()?.apply_op3_no_bwd(
            &self.weight.contiguous()?,
            &affine,
            &FrozenConvBnRelu {
                padding: self.padding,
                max_pool,
            },
        )
    }
}

impl Conv2dBnRelu {
    /// Training on the CPU: [`ConvBnReluTrain`], then the running statistics moved.
    fn forward_train(&self, x: &Tensor, shape: ConvShape, max_pool: bool) -> Result<Tensor> {
        let (gamma, beta) = self.norm.affine_parameters();
        let op = ConvBnReluTrain {
            padding: self.padding,
            max_pool,
            saved: Arc::default(),
        };
        let gamma_beta = Tensor::cat(&[gamma, beta], 0)?;
        let out = x
            .contiguous()?
            .apply_op3(&self.weight.contiguous()?, &gamma_beta, op.clone())?;
        let saved = op.saved.lock().expect("saved forward");
        let Some(saved) = saved.as_ref() else {
            bail!("conv + batch norm: the forward pass saved nothing");
        };
        let device = x.device();
        let channels = shape.cout;
        self.norm.move_running_statistics(
            Tensor::from_vec(saved.mean.clone(), channels, device)?,
            Tensor::from_vec(saved.var.clone(), channels, device)?,
            shape.batch * shape.out_h() * shape.out_w(),
        )?;
        Ok(out)
    }
}

/// What the training forward keeps for its backward: the convolution's output (the batch
/// norm's input) and the batch's per-channel mean and biased variance.
#[derive(Debug)]
struct Saved {
    conv: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

/// (x, weight, [gamma; beta]) -> relu(batch_norm(conv2d(x, weight))) with the batch's
/// statistics, in training, optionally max-pooled. The backward takes the saved convolution
/// output.
#[derive(Debug, Clone)]
struct ConvBnReluTrain {
    padding: usize,
    /// Followed by a 2 x 2 max pool of stride 2: each plane pooled from a scratch copy of its
    /// ReLU output.
    max_pool: bool,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl ConvBnReluTrain {
    /// The output's height and width: the convolution's, halved (floor) by the pool.
    fn output_side(&self, shape: &ConvShape) -> (usize, usize) {
        let (h, w) = (shape.out_h(), shape.out_w());
        if self.max_pool {
            (h / 2, w / 2)
        } else {
            (h, w)
        }
    }
}

impl CustomOp3 for ConvBnReluTrain {
    fn name(&self) -> &'static str {
        "fer-conv2d-bn-relu-train"
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
        if l3.dims() != [2 * shape.cout] {
            bail!(
                "{}: weight and bias have shape {:?}, expected [{}]",
                self.name(),
                l3.dims(),
                2 * shape.cout
            );
        }
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let (gamma, beta) = contiguous_f32(s3, l3, self.name())?.split_at(shape.cout);
        // SAFETY: the forward kernel initialises its whole output.
        let (conv, out_shape) =
            unsafe { conv_output(shape, |out| kernels::conv2d_forward(x, w, None, shape, out)) };
        let CpuStorage::F32(conv) = conv else {
            unreachable!("conv_output gives f32")
        };
        let p = planes(&shape);
        let (mean, var) = bn_kernels::channel_statistics(&conv, p);
        let inv = bn_kernels::inverse_std(&var, EPS);
        let (scale, shift) = bn_kernels::affine(gamma, beta, &mean, &inv);
        let (out, out_shape) = if self.max_pool {
            let (oh, ow) = self.output_side(&shape);
            let width = shape.out_w();
            // SAFETY: scale_shift_relu_max_pool initialises every plane of its output.
            let out = unsafe {
                uninit::written(shape.batch * shape.cout * oh * ow, |out| {
                    bn_kernels::scale_shift_relu_max_pool(&conv, p, width, &scale, &shift, out)
                })
            };
            (out, Shape::from((shape.batch, shape.cout, oh, ow)))
        } else {
            // SAFETY: scale_shift_relu initialises every plane of its output.
            let out = unsafe {
                uninit::written(conv.len(), |out| {
                    bn_kernels::scale_shift_relu(&conv, p, &scale, &shift, out)
                })
            };
            (out, out_shape)
        };
        *self.saved.lock().expect("saved forward") = Some(Saved { conv, mean, var });
        Ok((CpuStorage::F32(out), out_shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        gamma_beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = conv_shape(x.dims(), weight.dims(), self.padding)?;
        let Some(saved) = self.saved.lock().expect("saved forward").take() else {
            bail!("conv + batch norm backward: no saved forward pass (or a second backward)");
        };
        let grad = grad.contiguous()?;
        let tensors = [x, weight, gamma_beta, &grad];
        let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let [x_data, w, gb, dz] = cpu_f32s(&guards, self.name())?[..] else {
            unreachable!("four tensors")
        };
        let (oh, ow) = self.output_side(&shape);
        if grad.dims() != [shape.batch, shape.cout, oh, ow] {
            bail!(
                "{}: gradient of shape {:?}, expected {:?}",
                self.name(),
                grad.dims(),
                [shape.batch, shape.cout, oh, ow]
            );
        }
        let (gamma, beta) = gb.split_at(shape.cout);
        let inv = bn_kernels::inverse_std(&saved.var, EPS);
        let p = planes(&shape);
        let (conv, mean) = (&saved.conv, &saved.mean);
        // [dconv, dgamma, dbeta]: dgamma and dbeta are [gamma; beta]'s gradient as laid out.
        let packed = if self.max_pool {
            let width = shape.out_w();
            bn_kernels::relu_max_pool_backward(conv, dz, p, width, gamma, beta, mean, &inv)
        } else {
            bn_kernels::relu_backward(conv, dz, p, gamma, beta, mean, &inv)
        };
        let conv_len = conv.len();
        drop(saved);
        let (dconv, d_gamma_beta) = packed.split_at(conv_len);
        let device = x.device();
        let grad_x = if x.track_op() {
            // SAFETY: grad-input is a forward convolution, which initialises its whole output.
            let dx = unsafe {
                uninit::written(x_data.len(), |dx| {
                    kernels::conv2d_grad_input(dconv, w, shape, dx)
                })
            };
            Some(Tensor::from_vec(dx, x.dims(), device)?)
        } else {
            None
        };
        let mut dw = vec![0f32; w.len()];
        kernels::conv2d_grad_weight(x_data, dconv, shape, &mut dw, None);
        let grad_w = Tensor::from_vec(dw, weight.dims(), device)?;
        let grad_gb = Tensor::from_vec(d_gamma_beta.to_vec(), 2 * shape.cout, device)?;
        Ok((grad_x, Some(grad_w), Some(grad_gb)))
    }
}

/// The batch-norm geometry of a convolution's output.
fn planes(shape: &ConvShape) -> Planes {
    Planes {
        batch: shape.batch,
        channels: shape.cout,
        plane: shape.out_h() * shape.out_w(),
    }
}

/// (x, weight, [scale; shift]) -> relu(conv2d(x, weight) * scale + shift), evaluation only,
/// optionally max-pooled.
struct FrozenConvBnRelu {
    padding: usize,
    /// Followed by a 2 x 2 max pool of stride 2, each plane pooled as it is computed.
    max_pool: bool,
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
        let (oh, ow) = if self.max_pool {
            let pool = PoolShape::max_2x2(1, shape.out_h(), shape.out_w());
            (pool.out_h(), pool.out_w())
        } else {
            (shape.out_h(), shape.out_w())
        };
        let max_pool = self.max_pool;
        // SAFETY: the forward kernel initialises its whole output.
        let out = unsafe {
            uninit::written(shape.batch * shape.cout * oh * ow, |out| {
                kernels::conv2d_scale_shift_relu_forward(x, w, scale, shift, shape, max_pool, out)
            })
        };
        Ok((
            CpuStorage::F32(out),
            Shape::from((shape.batch, shape.cout, oh, ow)),
        ))
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

    /// A layer whose parameters and running statistics are all seeded values away from their
    /// initial ones (the initialisation is not seeded).
    fn seeded_layer(
        cin: usize,
        cout: usize,
        kernel: usize,
        padding: usize,
        seed: u64,
    ) -> (VarMap, Conv2dBnRelu) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let layer =
            Conv2dBnRelu::new(cin, cout, kernel, padding, vb.pp("conv"), vb.pp("norm")).unwrap();
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
        (vars, layer)
    }

    /// After the backward of `sum(out * upstream)`: the output, then every variable of `vars`
    /// (by name) each followed by its gradient when it has one, then the gradient of `x` when
    /// it has one ("d x").
    fn backward_values(
        vars: &VarMap,
        out: &Tensor,
        upstream: &Tensor,
        x: &candle_core::Var,
    ) -> Vec<(String, Tensor)> {
        let grads = (out * upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let data = vars.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut values = vec![("out".to_string(), out.clone())];
        for name in names {
            let var = data[name].as_tensor();
            values.push((name.clone(), var.clone()));
            values.extend(grads.get(var).map(|g| (format!("d {name}"), g.clone())));
        }
        values.extend(
            grads
                .get(x.as_tensor())
                .map(|g| ("d x".to_string(), g.clone())),
        );
        values
    }

    /// The pooled evaluation pass is the evaluation pass then candle's 2x2 max pool, bit for
    /// bit: on the Winograd path with a batch and with one image (even and odd planes), and
    /// on the im2col path (3 input channels).
    #[test]
    fn max_pooled_evaluation_is_evaluation_then_the_pool_exactly() {
        for (case, (batch, cin, side, cout)) in [
            (8, 8, 12, 16),
            (9, 8, 7, 8),
            (1, 16, 24, 16),
            (1, 8, 25, 8),
            (3, 3, 10, 5),
        ]
        .into_iter()
        .enumerate()
        {
            let (_vars, layer) = seeded_layer(cin, cout, 3, 1, 100 + 10 * case as u64);
            let x = seeded(&[batch, cin, side, side], 7 + case as u64, -1.0, 1.0);
            let got = layer.forward_max_pool(&x, false).unwrap();
            let expected = layer.forward(&x, false).unwrap().max_pool2d(2).unwrap();
            assert_eq!(got.dims(), [batch, cout, side / 2, side / 2], "case {case}");
            let (got, expected) = (
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                expected.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(expected.iter().any(|v| *v > 0.0) && expected.contains(&0.0));
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "case {case}, output {i}: {a} vs {b}"
                );
            }
        }
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
            let (vars, layer) = seeded_layer(cin, cout, kernel, padding, seed);
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

    /// The fused training op against the convolution then [`BatchNormRelu`] as two candle
    /// ops: the same output, gradients (input, weight, batch norm's weight and bias) within
    /// 1e-6 of the largest, and the same running statistics, for a 3x3 padded layer whose
    /// input has a gradient and a first layer whose input has none.
    #[test]
    fn fused_training_matches_the_convolution_then_batch_norm() {
        for (case, (batch, cin, side, cout, input_grad)) in
            [(3, 4, 7, 6, true), (2, 1, 9, 5, false)]
                .into_iter()
                .enumerate()
        {
            let seed = 20 * case as u64;
            let make = || {
                let vars = VarMap::new();
                let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
                let layer =
                    Conv2dBnRelu::new(cin, cout, 3, 1, vb.pp("conv"), vb.pp("norm")).unwrap();
                let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
                names.sort();
                for (i, name) in names.iter().enumerate() {
                    let (lo, hi) = match name.as_str() {
                        "norm.running_var" | "norm.weight" => (0.5, 1.5),
                        _ => (-0.5, 0.5),
                    };
                    let var = vars.data().lock().unwrap()[name].clone();
                    var.set(&seeded(var.dims(), seed + i as u64, lo, hi))
                        .unwrap();
                }
                (vars, layer)
            };
            let x = candle_core::Var::from_tensor(&seeded(
                &[batch, cin, side, side],
                seed + 9,
                -1.0,
                1.0,
            ))
            .unwrap();
            let input = if input_grad {
                x.as_tensor().clone()
            } else {
                x.as_tensor().detach()
            };
            let upstream = seeded(&[batch, cout, side, side], seed + 10, -1.0, 1.0);
            let run = |fused: bool| {
                let (vars, layer) = make();
                let out = if fused {
                    layer.forward(&input, true).unwrap()
                } else {
                    let y = conv2d(&input, &layer.weight, None, 1).unwrap();
                    layer.norm.forward(&y, true).unwrap()
                };
                backward_values(&vars, &out, &upstream, &x)
            };
            let (fused, reference) = (run(true), run(false));
            let names =
                |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&fused), names(&reference));
            assert_eq!(names(&fused).contains(&"d x".to_string()), input_grad);
            assert_eq!(
                names(&fused).iter().filter(|n| n.starts_with("d ")).count(),
                3 + input_grad as usize
            );
            for ((name, a), (_, b)) in fused.iter().zip(&reference) {
                let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{name}");
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-6 * scale,
                        "case {case} {name} [{i}]: {p} vs {q}"
                    );
                }
            }
        }
    }

    /// Pooled training is the layer's training pass then the crate's 2x2 max pool, bit for
    /// bit: the output, the moved running statistics and the gradients of the input, the
    /// weight and the batch norm's parameters. Even and odd planes (an odd last row and column
    /// get no gradient from the pool), one image, the im2col path (3 input channels), and a
    /// constant image whose windows hold equal positive values (the gradient goes to the
    /// first of them).
    #[test]
    fn pooled_training_is_training_then_the_pool_bit_for_bit() {
        for (case, (batch, cin, side, cout, constant)) in [
            (4, 8, 12, 16, false),
            (3, 8, 9, 8, false),
            (1, 16, 8, 8, false),
            (2, 3, 10, 5, false),
            (2, 8, 8, 8, true),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 300 + 10 * case as u64;
            let x = if constant {
                Tensor::full(0.5f32, (batch, cin, side, side), &Device::Cpu).unwrap()
            } else {
                seeded(&[batch, cin, side, side], seed, -1.0, 1.0)
            };
            let x = candle_core::Var::from_tensor(&x).unwrap();
            let upstream = seeded(&[batch, cout, side / 2, side / 2], seed + 1, -1.0, 1.0);
            let run = |fused: bool| {
                let (vars, layer) = seeded_layer(cin, cout, 3, 1, seed + 2);
                let out = if fused {
                    layer.forward_max_pool(x.as_tensor(), true).unwrap()
                } else {
                    let y = layer.forward(x.as_tensor(), true).unwrap();
                    crate::layers::Pool2d::max(2, 2).forward(&y).unwrap()
                };
                backward_values(&vars, &out, &upstream, &x)
            };
            let (fused, reference) = (run(true), run(false));
            let names: Vec<&String> = fused.iter().map(|(n, _)| n).collect();
            assert_eq!(names, reference.iter().map(|(n, _)| n).collect::<Vec<_>>());
            // The input, the weight, gamma and beta.
            assert_eq!(names.iter().filter(|n| n.starts_with("d ")).count(), 4);
            assert_eq!(fused[0].1.dims(), [batch, cout, side / 2, side / 2]);
            for ((name, a), (_, b)) in fused.iter().zip(&reference) {
                let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(b.iter().any(|v| *v != 0.0), "case {case} {name}: all zero");
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(
                        p.to_bits(),
                        q.to_bits(),
                        "case {case} {name} [{i}]: {p} vs {q}"
                    );
                }
            }
        }
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
