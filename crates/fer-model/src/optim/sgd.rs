//! SGD with momentum, Nesterov and weight decay, as `torch.optim.SGD` computes it.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use super::in_place::{all_fit, update, with_values};

/// Hyper-parameters of [`Sgd`] (PyTorch `torch.optim.SGD`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub lr: f64,
    #[serde(default)]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    #[serde(default)]
    pub weight_decay: f64,
}

/// SGD with momentum, Nesterov and weight decay, as `torch.optim.SGD` (dampening 0):
///
/// ```text
/// g = grad + weight_decay * p
/// b = momentum * b + g            (b = g on the first step)
/// d = g + momentum * b  if nesterov, else b
/// p = p - lr * d
/// ```
pub struct Sgd {
    pub(super) vars: Vec<Var>,
    pub(super) buffers: Vec<Option<Tensor>>,
    pub(super) config: SgdConfig,
}

impl Optimizer for Sgd {
    type Config = SgdConfig;

    fn new(vars: Vec<Var>, config: SgdConfig) -> Result<Self> {
        Ok(Sgd {
            buffers: vec![None; vars.len()],
            vars,
            config,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, buffer) in self.vars.iter().zip(&mut self.buffers) {
            let Some(grad) = grads.get(var) else { continue };
            if !sgd_in_place(var, grad, buffer, &self.config)? {
                sgd_tensors(var, grad, buffer, &self.config)?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}

/// The SGD update of one parameter as tensor operations (any device and dtype).
fn sgd_tensors(
    var: &Var,
    grad: &Tensor,
    buffer: &mut Option<Tensor>,
    config: &SgdConfig,
) -> Result<()> {
    let SgdConfig {
        lr,
        momentum,
        nesterov,
        weight_decay,
    } = *config;
    // Detached: optimizer state must not hold on to this step's autograd graph.
    let (grad, param) = (grad.detach(), var.as_tensor().detach());
    let g = if weight_decay != 0.0 {
        (&grad + (&param * weight_decay)?)?
    } else {
        grad
    };
    let direction = if momentum != 0.0 {
        let b = match buffer.take() {
            Some(b) => ((b * momentum)? + &g)?,
            // A copy: the CPU path updates the buffer in place.
            None => g.copy()?,
        };
        let d = if nesterov {
            (&g + (&b * momentum)?)?
        } else {
            b.clone()
        };
        *buffer = Some(b);
        d
    } else {
        g
    };
    var.set(&(param - (direction * lr)?)?)
}

/// The SGD update of one parameter in place on the CPU: the momentum buffer, then the
/// parameter, each one parallel pass, with the tensor path's f32 operations in its order
/// (`x * c` being candle's affine `x * c + 0`), so the values are the same bit for bit.
/// Returns false (nothing done) where it does not apply: other devices or dtypes.
fn sgd_in_place(
    var: &Var,
    grad: &Tensor,
    buffer: &mut Option<Tensor>,
    config: &SgdConfig,
) -> Result<bool> {
    let n = var.elem_count();
    let param = var.as_tensor();
    if !all_fit(n, &[param, grad]) || buffer.as_ref().is_some_and(|b| !all_fit(n, &[b])) {
        return Ok(false);
    }
    let (lr, momentum) = (config.lr as f32, config.momentum as f32);
    let (decay, weight_decay) = (config.weight_decay != 0.0, config.weight_decay as f32);
    // g = grad + weight_decay * p
    let decayed = move |g: f32, p: f32| {
        if decay {
            g + (p * weight_decay + 0.0)
        } else {
            g
        }
    };
    with_values(grad, |grad| -> Result<()> {
        if config.momentum != 0.0 {
            match buffer {
                // b = g on the first step: a tensor of its own, updated in place from then on.
                None => {
                    let b = with_values(param, |p| -> Vec<f32> {
                        grad.iter().zip(p).map(|(&g, &p)| decayed(g, p)).collect()
                    })?;
                    *buffer = Some(Tensor::from_vec(b, param.shape(), param.device())?);
                }
                // b = momentum * b + g
                Some(b) => with_values(param, |p| {
                    update(b, "fer-sgd-momentum", |at, b| {
                        for (b, (&g, &p)) in b.iter_mut().zip(grad[at..].iter().zip(&p[at..])) {
                            *b = (*b * momentum + 0.0) + decayed(g, p);
                        }
                    })
                })??,
            }
        }
        // p = p - lr * d, d = g + momentum * b with Nesterov, else b (g without momentum).
        let step = |b: Option<&[f32]>| {
            update(param, "fer-sgd-param", |at, p| {
                for (i, p) in p.iter_mut().enumerate() {
                    let g = decayed(grad[at + i], *p);
                    let d = match b {
                        Some(b) if config.nesterov => g + (b[at + i] * momentum + 0.0),
                        Some(b) => b[at + i],
                        None => g,
                    };
                    *p -= d * lr + 0.0;
                }
            })
        };
        match buffer {
            Some(b) if config.momentum != 0.0 => with_values(b, |b| step(Some(b)))?,
            _ => step(None),
        }
    })??;
    Ok(true)
}

impl Default for SgdConfig {
    /// lr 0.01, Nesterov momentum 0.9, weight decay 5e-4: the `cpu` profile's optimizer.
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Seeded values in [-1, 1), with zeros and signed zeros among them.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| match (i * 7 + seed) % 11 {
                0 => 0.0,
                1 => -0.0,
                k => {
                    let hash = i.wrapping_mul(2_654_435_761).wrapping_add(seed);
                    (hash % 2000) as f32 / 1000.0 - 1.0 + k as f32 * 1e-4
                }
            })
            .collect()
    }

    /// The in-place CPU update against the tensor path over five steps, for every mix of
    /// momentum, Nesterov and weight decay: the same bits.
    #[test]
    fn in_place_update_is_the_tensor_update_bit_for_bit() {
        let n = 40_000; // more than one parallel chunk
        for (momentum, nesterov, weight_decay) in [
            (0.9, true, 5e-4),
            (0.9, false, 5e-4),
            (0.9, true, 0.0),
            (0.0, false, 1e-3),
        ] {
            let config = SgdConfig {
                lr: 0.05,
                momentum,
                nesterov,
                weight_decay,
            };
            let start = Tensor::from_vec(values(n, 1), n, &Device::Cpu).unwrap();
            let (fast, slow) = (
                Var::from_tensor(&start.copy().unwrap()).unwrap(),
                Var::from_tensor(&start.copy().unwrap()).unwrap(),
            );
            let (mut fast_buffer, mut slow_buffer) = (None, None);
            for step in 0..5 {
                let grad = Tensor::from_vec(values(n, 10 + step), n, &Device::Cpu).unwrap();
                assert!(sgd_in_place(&fast, &grad, &mut fast_buffer, &config).unwrap());
                sgd_tensors(&slow, &grad, &mut slow_buffer, &config).unwrap();
                let bits = |t: &Tensor| -> Vec<u32> {
                    t.to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                let case = format!("momentum {momentum}, nesterov {nesterov}, step {step}");
                assert!(
                    bits(fast.as_tensor()) == bits(slow.as_tensor()),
                    "{case}: parameters"
                );
                assert_eq!(fast_buffer.is_some(), slow_buffer.is_some(), "{case}");
                if let (Some(f), Some(s)) = (&fast_buffer, &slow_buffer) {
                    assert!(bits(f) == bits(s), "{case}: momentum");
                }
            }
            // And the step moved the parameters.
            assert_ne!(
                fast.as_tensor().to_vec1::<f32>().unwrap(),
                start.to_vec1::<f32>().unwrap()
            );
        }
    }

    /// The first step's buffer is a tensor of its own: updating it in place leaves the
    /// gradient it was made from as it was.
    #[test]
    fn the_momentum_buffer_does_not_alias_the_gradient() {
        let n = 100;
        let config = SgdConfig {
            weight_decay: 0.0,
            ..SgdConfig::default()
        };
        let var =
            Var::from_tensor(&Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap();
        let grad = Tensor::from_vec(values(n, 3), n, &Device::Cpu).unwrap();
        let before = grad.to_vec1::<f32>().unwrap();
        let mut buffer = None;
        for _ in 0..3 {
            assert!(sgd_in_place(&var, &grad, &mut buffer, &config).unwrap());
        }
        assert_eq!(grad.to_vec1::<f32>().unwrap(), before);
    }
}
