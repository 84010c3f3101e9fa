//! SGD with momentum, Nesterov and weight decay, as `torch.optim.SGD` computes it.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

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
        let SgdConfig {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } = self.config;
        for (var, buffer) in self.vars.iter().zip(&mut self.buffers) {
            let Some(grad) = grads.get(var) else { continue };
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
                    None => g.clone(),
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
            var.set(&(param - (direction * lr)?)?)?;
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
