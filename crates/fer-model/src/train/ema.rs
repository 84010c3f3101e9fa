//! Exponential moving average of a model's weights (Polyak averaging as timm's `ModelEmaV2`
//! does it): a second copy of every parameter and batch-norm statistic that trails the
//! trained one, evaluated and saved in its place.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::nets::classifier::Classifier;
use crate::nets::config::ModelConfig;
use crate::optim::in_place::{all_fit, update, with_values};

/// The average's options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// After each step, `average = decay * average + (1 - decay) * weights`. Early steps use
    /// `min(decay, (1 + step) / (10 + step))` so the average does not start out stale.
    pub decay: f64,
}

impl EmaConfig {
    /// Checks the range; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(format!("ema.decay must be in [0, 1), got {}", self.decay));
        }
        Ok(())
    }

    /// The decay used after optimizer step `step` (counted from 0).
    pub fn decay_at(&self, step: u64) -> f64 {
        let warm = (1.0 + step as f64) / (10.0 + step as f64);
        self.decay.min(warm)
    }
}

/// The averaged copy of a model: its own variables (same names as the trained model's) and
/// the network that reads them.
pub struct WeightAverage {
    pub config: EmaConfig,
    pub vars: VarMap,
    pub model: Box<dyn Classifier>,
}

impl WeightAverage {
    /// A copy of `trained` (built from `model`) to start averaging from.
    pub fn new(
        config: EmaConfig,
        model: &ModelConfig,
        trained: &VarMap,
        device: &Device,
    ) -> Result<Self> {
        let vars = VarMap::new();
        let network = model.build(VarBuilder::from_varmap(&vars, DType::F32, device))?;
        let average = WeightAverage {
            config,
            vars,
            model: network,
        };
        average.copy_from(trained)?;
        Ok(average)
    }

    /// Sets every averaged variable to the trained one.
    pub fn copy_from(&self, trained: &VarMap) -> Result<()> {
        self.blend(trained, 0.0)
    }

    /// One averaging step after optimizer step `step` (counted from 0).
    pub fn update(&self, trained: &VarMap, step: u64) -> Result<()> {
        self.blend(trained, self.config.decay_at(step))
    }

    /// `average = decay * average + (1 - decay) * trained` for every variable, matched by name.
    fn blend(&self, trained: &VarMap, decay: f64) -> Result<()> {
        let trained = trained.data().lock().expect("var map lock");
        let averaged = self.vars.data().lock().expect("var map lock");
        for (name, average) in averaged.iter() {
            let Some(source) = trained.get(name) else {
                candle_core::bail!("weight average: the trained model has no variable {name}");
            };
            blend_one(average, &source.as_tensor().detach(), decay)?;
        }
        Ok(())
    }
}

/// `average = decay * average + (1 - decay) * source`: in place on the CPU in one parallel
/// pass, with the tensor path's f32 operations (`x * c` being candle's affine `x * c + 0`), so
/// the values are the same bit for bit; elsewhere as tensor operations.
fn blend_one(average: &Var, source: &Tensor, decay: f64) -> Result<()> {
    if !all_fit(average.elem_count(), &[average.as_tensor(), source]) {
        return blend_tensors(average, source, decay);
    }
    let (keep, mix) = (decay as f32, (1.0 - decay) as f32);
    with_values(source, |source| {
        update(average.as_tensor(), "fer-weight-average", |at, average| {
            for (a, &s) in average.iter_mut().zip(&source[at..]) {
                *a = if decay == 0.0 {
                    s
                } else {
                    (*a * keep + 0.0) + (s * mix + 0.0)
                };
            }
        })
    })?
}

/// [`blend_one`] as tensor operations (any device and dtype).
fn blend_tensors(average: &Var, source: &Tensor, decay: f64) -> Result<()> {
    if decay == 0.0 {
        average.set(source)
    } else {
        average.set(&((average.as_tensor().detach() * decay)? + (source * (1.0 - decay))?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Architecture;

    fn value(vars: &VarMap, name: &str) -> Vec<f32> {
        let data = vars.data().lock().unwrap();
        data[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn the_average_trails_the_weights_by_the_decay() {
        let model = ModelConfig {
            architecture: Architecture::VggBn,
            width: 4,
            ..ModelConfig::default()
        };
        let (trained, _) = model.init(&Device::Cpu, 1).unwrap();
        let config = EmaConfig { decay: 0.9 };
        let average = WeightAverage::new(config, &model, &trained, &Device::Cpu).unwrap();
        let names: Vec<String> = trained.data().lock().unwrap().keys().cloned().collect();
        assert_eq!(
            average.vars.data().lock().unwrap().len(),
            names.len(),
            "every parameter and statistic"
        );
        for name in &names {
            assert_eq!(value(&average.vars, name), value(&trained, name));
        }
        let name = "features.0.weight";
        let start = value(&trained, name);
        // Move the weights by +1 and average at a late step (decay 0.9, past the warm-up).
        {
            let data = trained.data().lock().unwrap();
            let var = &data[name];
            var.set(&(var.as_tensor() + 1.0).unwrap()).unwrap();
        }
        average.update(&trained, 1000).unwrap();
        for (a, s) in value(&average.vars, name).iter().zip(&start) {
            assert!((a - (s + 0.1)).abs() < 1e-5, "{a} vs {}", s + 0.1);
        }
        // The warm-up: step 0 keeps only 1/10 of the average.
        assert!((config.decay_at(0) - 0.1).abs() < 1e-12);
        assert!((config.decay_at(90) - 0.9).abs() < 1e-12);
        assert!(
            EmaConfig { decay: 1.0 }
                .validate()
                .unwrap_err()
                .contains("ema.decay")
        );
    }

    /// The in-place blend against the tensor path over five steps: the same bits.
    #[test]
    fn in_place_blend_is_the_tensor_blend_bit_for_bit() {
        let n = 40_000; // more than one parallel chunk
        let seeded = |seed: u32| -> Tensor {
            let v: Vec<f32> = (0..n as u32)
                .map(|i| {
                    (i.wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0
                })
                .collect();
            Tensor::from_vec(v, n, &Device::Cpu).unwrap()
        };
        let start = seeded(1);
        let fast = Var::from_tensor(&start.copy().unwrap()).unwrap();
        let slow = Var::from_tensor(&start.copy().unwrap()).unwrap();
        for (step, decay) in [0.0, 0.5, 0.9, 0.998, 0.999].into_iter().enumerate() {
            let source = seeded(10 + step as u32);
            blend_one(&fast, &source, decay).unwrap();
            blend_tensors(&slow, &source, decay).unwrap();
            let bits = |v: &Var| -> Vec<u32> {
                let values = v.as_tensor().to_vec1::<f32>().unwrap();
                values.iter().map(|x| x.to_bits()).collect()
            };
            assert!(bits(&fast) == bits(&slow), "decay {decay}");
        }
        assert_ne!(
            fast.as_tensor().to_vec1::<f32>().unwrap(),
            start.to_vec1::<f32>().unwrap()
        );
    }
}
