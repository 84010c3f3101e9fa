//! Adadelta as `torch.optim.Adadelta` computes it (the seed notebook's optimizer), with an
//! in-place fused CPU update.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use super::in_place::{all_fit, update, with_values};

/// Hyper-parameters of [`Adadelta`] (PyTorch's defaults are lr 1.0, rho 0.9, eps 1e-6; the
/// seed notebook uses lr 0.1, rho 0.95, eps 1e-8, which `Default` gives).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdadeltaConfig {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 0.1,
            rho: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adadelta (Zeiler 2012) exactly as `torch.optim.Adadelta` computes it:
///
/// ```text
/// g      = grad + weight_decay * p
/// v      = rho * v + (1 - rho) * g^2
/// delta  = sqrt(u + eps) / sqrt(v + eps) * g
/// u      = rho * u + (1 - rho) * delta^2
/// p      = p - lr * delta
/// ```
pub struct Adadelta {
    pub(super) vars: Vec<Var>,
    /// Running average of squared gradients (`square_avg` in PyTorch), one per var.
    pub(super) square_avg: Vec<Tensor>,
    /// Running average of squared updates (`acc_delta` in PyTorch), one per var.
    pub(super) acc_delta: Vec<Tensor>,
    pub(super) config: AdadeltaConfig,
}

impl Adadelta {
    /// The optimizer's state: (square_avg, acc_delta) per var, in var order.
    pub fn state(&self) -> (&[Tensor], &[Tensor]) {
        (&self.square_avg, &self.acc_delta)
    }

    /// Replaces the state (e.g. from a checkpoint); shapes must match the vars.
    pub fn set_state(&mut self, square_avg: Vec<Tensor>, acc_delta: Vec<Tensor>) -> Result<()> {
        if square_avg.len() != self.vars.len() || acc_delta.len() != self.vars.len() {
            candle_core::bail!("optimizer state has the wrong number of tensors");
        }
        for ((var, v), u) in self.vars.iter().zip(&square_avg).zip(&acc_delta) {
            if v.shape() != var.shape() || u.shape() != var.shape() {
                candle_core::bail!(
                    "optimizer state shape {:?} does not match parameter {:?}",
                    v.shape(),
                    var.shape()
                );
            }
        }
        // Own copies: the CPU step updates them in place.
        self.square_avg = square_avg.iter().map(Tensor::copy).collect::<Result<_>>()?;
        self.acc_delta = acc_delta.iter().map(Tensor::copy).collect::<Result<_>>()?;
        Ok(())
    }
}

impl Optimizer for Adadelta {
    type Config = AdadeltaConfig;

    fn new(vars: Vec<Var>, config: AdadeltaConfig) -> Result<Self> {
        let zeros = |var: &Var| var.as_tensor().zeros_like();
        Ok(Adadelta {
            square_avg: vars.iter().map(zeros).collect::<Result<_>>()?,
            acc_delta: vars.iter().map(zeros).collect::<Result<_>>()?,
            vars,
            config,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdadeltaConfig {
            lr,
            rho,
            eps,
            weight_decay,
        } = self.config;
        for ((var, v), u) in self
            .vars
            .iter()
            .zip(&mut self.square_avg)
            .zip(&mut self.acc_delta)
        {
            let Some(grad) = grads.get(var) else { continue };
            if adadelta_in_place(var, grad, v, u, &self.config)? {
                continue;
            }
            // Detached: optimizer state must not hold on to this step's autograd graph.
            let (grad, param) = (grad.detach(), var.as_tensor().detach());
            let g = if weight_decay != 0.0 {
                (&grad + (&param * weight_decay)?)?
            } else {
                grad
            };
            *v = ((&*v * rho)? + (g.sqr()? * (1.0 - rho))?)?;
            let delta = (((&*u + eps)?.sqrt()? / (&*v + eps)?.sqrt()?)? * &g)?;
            *u = ((&*u * rho)? + (delta.sqr()? * (1.0 - rho))?)?;
            var.set(&(param - (delta * lr)?)?)?;
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

/// The Adadelta update of one parameter in place on the CPU, three parallel passes (square_avg,
/// parameter, acc_delta) with the same f32 formulas as the tensor path. Returns false (nothing
/// done) where it does not apply: other devices or dtypes, weight decay.
fn adadelta_in_place(
    var: &Var,
    grad: &Tensor,
    v: &Tensor,
    u: &Tensor,
    config: &AdadeltaConfig,
) -> Result<bool> {
    if config.weight_decay != 0.0 || !all_fit(var.elem_count(), &[var.as_tensor(), grad, v, u]) {
        return Ok(false);
    }
    let (lr, rho) = (config.lr as f32, config.rho as f32);
    let (keep, eps) = ((1.0 - config.rho) as f32, config.eps as f32);
    let delta = |u: f32, v: f32, g: f32| (u + eps).sqrt() / (v + eps).sqrt() * g;
    with_values(grad, |g| -> Result<()> {
        update(v, "fer-adadelta-square-avg", |at, v| {
            for (v, &g) in v.iter_mut().zip(&g[at..]) {
                *v = *v * rho + g * g * keep;
            }
        })?;
        with_values(v, |v_new| -> Result<()> {
            with_values(u, |u_old| {
                update(var.as_tensor(), "fer-adadelta-param", |at, p| {
                    let inputs = g[at..].iter().zip(&v_new[at..]).zip(&u_old[at..]);
                    for (p, ((&g, &v), &u)) in p.iter_mut().zip(inputs) {
                        *p -= delta(u, v, g) * lr;
                    }
                })
            })??;
            update(u, "fer-adadelta-acc-delta", |at, u| {
                for (u, (&g, &v)) in u.iter_mut().zip(g[at..].iter().zip(&v_new[at..])) {
                    let d = delta(*u, v, g);
                    *u = *u * rho + d * d * keep;
                }
            })
        })?
    })??;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps on f(p) = p^2 / 2 (gradient p) from p = 1, worked out by hand with the
    /// seed's lr 0.1, rho 0.95, eps 1e-8.
    #[test]
    fn first_steps_match_the_hand_computation() {
        let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut opt = Adadelta::new(vec![p.clone()], AdadeltaConfig::default()).unwrap();
        let (lr, rho, eps) = (0.1f64, 0.95f64, 1e-8f64);

        // Step 1: g = 1; v = 0.05; delta = sqrt(1e-8) / sqrt(0.05 + 1e-8) * 1; u = 0.05 delta^2.
        let v1 = (1.0 - rho) * 1.0;
        let d1 = eps.sqrt() / (v1 + eps).sqrt();
        let u1 = (1.0 - rho) * d1 * d1;
        let p1 = 1.0 - lr * d1;
        // Step 2: g = p1.
        let g2 = p1;
        let v2 = rho * v1 + (1.0 - rho) * g2 * g2;
        let d2 = (u1 + eps).sqrt() / (v2 + eps).sqrt() * g2;
        let p2 = p1 - lr * d2;

        for expected in [p1, p2] {
            let loss = (p.as_tensor().sqr().unwrap() * 0.5)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.backward_step(&loss).unwrap();
            let got = p.as_tensor().to_vec1::<f32>().unwrap()[0];
            assert!(
                (f64::from(got) - expected).abs() < 1e-7,
                "got {got}, expected {expected}"
            );
        }
        // The update after step 1 is about 4.47e-5: tiny, as Adadelta's first steps are.
        assert!((1.0 - p1 - 4.472e-6 * 10.0).abs() < 1e-7);
    }

    #[test]
    fn weight_decay_adds_to_the_gradient() {
        let p = Var::new(&[2.0f32], &Device::Cpu).unwrap();
        let config = AdadeltaConfig {
            weight_decay: 0.5,
            ..AdadeltaConfig::default()
        };
        let mut opt = Adadelta::new(vec![p.clone()], config).unwrap();
        // Loss p^2 / 2 has gradient p = 2; with decay g = 2 + 0.5 * 2 = 3.
        let loss = (p.as_tensor().sqr().unwrap() * 0.5)
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
        let v1 = 0.05f64 * 9.0;
        let d1 = 1e-8f64.sqrt() / (v1 + 1e-8).sqrt() * 3.0;
        let got = f64::from(p.as_tensor().to_vec1::<f32>().unwrap()[0]);
        assert!((got - (2.0 - 0.1 * d1)).abs() < 1e-6, "{got}");
        assert!(got < 2.0);
    }
}
