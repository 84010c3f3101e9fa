//! Optimizers candle-nn lacks, written to match PyTorch's definitions step for step, one file
//! each ([`adadelta`], [`sgd`], [`adamw`]), each config with its `Default`; and
//! [`OptimizerConfig`] / [`AnyOptimizer`], which a training run saves and checkpoints.

pub mod adadelta;
pub mod adamw;
pub(crate) mod in_place;
pub mod sgd;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

pub use adadelta::{Adadelta, AdadeltaConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use sgd::{Sgd, SgdConfig};

/// The optimizers a training run can use, with their hyper-parameters (saved with the run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    Adadelta(AdadeltaConfig),
    Sgd(SgdConfig),
    AdamW(AdamWConfig),
}

impl OptimizerConfig {
    /// The configured learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adadelta(c) => c.lr,
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
        }
    }

    /// Replaces the learning rate, keeping the other hyper-parameters.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimizerConfig::Adadelta(c) => c.lr = lr,
            OptimizerConfig::Sgd(c) => c.lr = lr,
            OptimizerConfig::AdamW(c) => c.lr = lr,
        }
    }
}

impl Default for OptimizerConfig {
    /// The seed's Adadelta(lr 0.1, rho 0.95, eps 1e-8).
    fn default() -> Self {
        OptimizerConfig::Adadelta(AdadeltaConfig::default())
    }
}

/// Any of the optimizers, with its state exposed as named tensors for checkpoints.
pub enum AnyOptimizer {
    Adadelta(Adadelta),
    Sgd(Sgd),
    AdamW(AdamW),
}

impl AnyOptimizer {
    /// Creates the optimizer for `vars` (keep their order stable: state is saved by position).
    pub fn new(config: OptimizerConfig, vars: Vec<Var>) -> Result<Self> {
        Ok(match config {
            OptimizerConfig::Adadelta(c) => AnyOptimizer::Adadelta(Adadelta::new(vars, c)?),
            OptimizerConfig::Sgd(c) => AnyOptimizer::Sgd(Sgd::new(vars, c)?),
            OptimizerConfig::AdamW(c) => AnyOptimizer::AdamW(AdamW::new(vars, c)?),
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            AnyOptimizer::Adadelta(o) => o.step(grads),
            AnyOptimizer::Sgd(o) => o.step(grads),
            AnyOptimizer::AdamW(o) => o.step(grads),
        }
    }

    pub fn learning_rate(&self) -> f64 {
        match self {
            AnyOptimizer::Adadelta(o) => o.learning_rate(),
            AnyOptimizer::Sgd(o) => o.learning_rate(),
            AnyOptimizer::AdamW(o) => o.learning_rate(),
        }
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            AnyOptimizer::Adadelta(o) => o.set_learning_rate(lr),
            AnyOptimizer::Sgd(o) => o.set_learning_rate(lr),
            AnyOptimizer::AdamW(o) => o.set_learning_rate(lr),
        }
    }

    /// The state as `(name, tensor)` pairs: `square_avg.3`, `momentum.0`, `steps`, ...
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let named = |prefix: &str, tensors: &[Tensor]| -> Vec<(String, Tensor)> {
            tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("{prefix}.{i}"), t.clone()))
                .collect()
        };
        Ok(match self {
            AnyOptimizer::Adadelta(o) => {
                // Copies: Adadelta updates its state in place on the CPU.
                let mut state = named("square_avg", &o.square_avg);
                state.extend(named("acc_delta", &o.acc_delta));
                for (_, t) in &mut state {
                    *t = t.copy()?;
                }
                state
            }
            // Copies: SGD updates its momentum in place on the CPU.
            AnyOptimizer::Sgd(o) => o
                .buffers
                .iter()
                .enumerate()
                .filter_map(|(i, b)| b.as_ref().map(|b| Ok((format!("momentum.{i}"), b.copy()?))))
                .collect::<Result<_>>()?,
            AnyOptimizer::AdamW(o) => {
                let mut state = named("exp_avg", &o.exp_avg);
                state.extend(named("exp_avg_sq", &o.exp_avg_sq));
                let device = o
                    .vars
                    .first()
                    .map(|v| v.device().clone())
                    .unwrap_or(candle_core::Device::Cpu);
                state.push(("steps".into(), Tensor::new(&[o.steps as f32], &device)?));
                state
            }
        })
    }

    /// Restores the state saved by [`AnyOptimizer::state`]; every tensor must be present
    /// with its parameter's shape.
    pub fn load_state(
        &mut self,
        mut state: std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        let mut take = |name: String, like: &Var| -> Result<Tensor> {
            let t = state.remove(&name).ok_or_else(|| {
                candle_core::Error::Msg(format!("optimizer state has no '{name}'"))
            })?;
            if t.shape() != like.shape() {
                candle_core::bail!(
                    "optimizer state '{name}' has shape {:?}, expected {:?}",
                    t.shape(),
                    like.shape()
                );
            }
            t.to_device(like.device())
        };
        match self {
            AnyOptimizer::Adadelta(o) => {
                for (i, var) in o.vars.iter().enumerate() {
                    o.square_avg[i] = take(format!("square_avg.{i}"), var)?;
                    o.acc_delta[i] = take(format!("acc_delta.{i}"), var)?;
                }
            }
            AnyOptimizer::Sgd(o) => {
                for (i, var) in o.vars.iter().enumerate() {
                    // A copy of its own: the momentum is then updated in place.
                    o.buffers[i] = match take(format!("momentum.{i}"), var) {
                        Ok(b) => Some(b.copy()?),
                        Err(_) => None,
                    };
                }
            }
            AnyOptimizer::AdamW(o) => {
                for (i, var) in o.vars.iter().enumerate() {
                    o.exp_avg[i] = take(format!("exp_avg.{i}"), var)?;
                    o.exp_avg_sq[i] = take(format!("exp_avg_sq.{i}"), var)?;
                }
                let steps = state.remove("steps").ok_or_else(|| {
                    candle_core::Error::Msg("optimizer state has no 'steps'".into())
                })?;
                o.steps = steps
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .first()
                    .copied()
                    .unwrap_or(0.0) as u64;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use candle_core::Device;

    fn quadratic_steps(config: OptimizerConfig, steps: usize) -> Vec<f32> {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut opt = AnyOptimizer::new(config, vec![p.clone()]).unwrap();
        let mut trace = Vec::new();
        for _ in 0..steps {
            let loss = (p.as_tensor().sqr().unwrap() * 0.5)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            trace.push(p.as_tensor().to_vec1::<f32>().unwrap()[0]);
        }
        trace
    }

    #[test]
    fn sgd_momentum_and_nesterov_follow_torch_formulas() {
        // p=1, grad=p. Momentum 0.9, lr 0.1: b1 = 1, p1 = 0.9; b2 = 0.9 + 0.9 = 1.8, p2 = 0.72.
        let plain = quadratic_steps(
            OptimizerConfig::Sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            }),
            2,
        );
        assert!(
            (plain[0] - 0.9).abs() < 1e-6 && (plain[1] - 0.72).abs() < 1e-6,
            "{plain:?}"
        );
        // Nesterov: d1 = g + 0.9 b1 = 1.9, p1 = 0.81; g2 = 0.81, b2 = 0.9 + 0.81 = 1.71,
        // d2 = 0.81 + 0.9 * 1.71 = 2.349, p2 = 0.81 - 0.2349 = 0.5751.
        let nesterov = quadratic_steps(
            OptimizerConfig::Sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.0,
            }),
            2,
        );
        assert!(
            (nesterov[0] - 0.81).abs() < 1e-6 && (nesterov[1] - 0.5751).abs() < 1e-6,
            "{nesterov:?}"
        );
    }

    #[test]
    fn adamw_first_step_moves_by_lr_and_decays() {
        // Bias-corrected Adam's first step is lr * g / (|g| + eps) = lr * sign(g); decay first.
        let trace = quadratic_steps(
            OptimizerConfig::AdamW(AdamWConfig {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
            }),
            1,
        );
        let expected = 1.0 * (1.0 - 0.01 * 0.1) - 0.01;
        assert!((trace[0] - expected).abs() < 1e-6, "{trace:?}");
    }

    /// One configuration of each optimizer: Adadelta (the default), SGD with Nesterov momentum
    /// and weight decay, AdamW.
    fn every_optimizer() -> [OptimizerConfig; 3] {
        [
            OptimizerConfig::default(),
            OptimizerConfig::Sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-4,
            }),
            OptimizerConfig::AdamW(AdamWConfig {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            }),
        ]
    }

    /// State that kept a reference to a step's autograd graph would chain every step's graph
    /// to the next and grow memory without bound (seen as 1 GB per second on real data).
    #[test]
    fn optimizer_state_holds_no_autograd_graph() {
        for config in every_optimizer() {
            let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
            let mut opt = AnyOptimizer::new(config, vec![p.clone()]).unwrap();
            for _ in 0..2 {
                let loss = (p.as_tensor().sqr().unwrap() * 0.5)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            for (name, tensor) in opt.state().unwrap() {
                assert!(!tensor.track_op(), "{config:?}: {name} keeps a graph");
            }
        }
    }

    #[test]
    fn state_round_trips_and_continues_identically() {
        for config in every_optimizer() {
            let run = |split: Option<usize>| {
                let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
                let mut opt = AnyOptimizer::new(config, vec![p.clone()]).unwrap();
                for step in 0..4 {
                    if Some(step) == split {
                        let saved: std::collections::HashMap<_, _> =
                            opt.state().unwrap().into_iter().collect();
                        opt = AnyOptimizer::new(config, vec![p.clone()]).unwrap();
                        opt.load_state(saved).unwrap();
                    }
                    let loss = (p.as_tensor().sqr().unwrap() * 0.5)
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    opt.step(&loss.backward().unwrap()).unwrap();
                }
                p.as_tensor().to_vec1::<f32>().unwrap()
            };
            assert_eq!(run(None), run(Some(2)), "{config:?}");
        }
    }
}
