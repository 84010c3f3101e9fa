//! AdamW (decoupled weight decay) as `torch.optim.AdamW` computes it.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`AdamW`] (PyTorch `torch.optim.AdamW` defaults but lr).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_adam_eps")]
    pub eps: f64,
    #[serde(default = "default_adamw_decay")]
    pub weight_decay: f64,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}

/// AdamW (decoupled weight decay) as `torch.optim.AdamW` computes it, with bias correction.
pub struct AdamW {
    pub(super) vars: Vec<Var>,
    pub(super) exp_avg: Vec<Tensor>,
    pub(super) exp_avg_sq: Vec<Tensor>,
    pub(super) steps: u64,
    pub(super) config: AdamWConfig,
}

impl Optimizer for AdamW {
    type Config = AdamWConfig;

    fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let zeros = |var: &Var| var.as_tensor().zeros_like();
        Ok(AdamW {
            exp_avg: vars.iter().map(zeros).collect::<Result<_>>()?,
            exp_avg_sq: vars.iter().map(zeros).collect::<Result<_>>()?,
            steps: 0,
            vars,
            config,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamWConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        self.steps += 1;
        let t = self.steps as i32;
        let correction1 = 1.0 - beta1.powi(t);
        let correction2 = 1.0 - beta2.powi(t);
        for ((var, m), v) in self
            .vars
            .iter()
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            let Some(g) = grads.get(var) else { continue };
            // Detached: optimizer state must not hold on to this step's autograd graph.
            let g = &g.detach();
            let decayed = (var.as_tensor().detach() * (1.0 - lr * weight_decay))?;
            *m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denominator = ((&*v / correction2)?.sqrt()? + eps)?;
            let update = ((&*m / correction1)? / denominator)?;
            var.set(&(decayed - (update * lr)?)?)?;
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

impl Default for AdamWConfig {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_adam_eps(),
            weight_decay: default_adamw_decay(),
        }
    }
}
