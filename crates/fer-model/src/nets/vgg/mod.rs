//! A VGG-style CNN with batch norm sized for 48x48 faces: four stages of two 3x3 convolutions
//! (each followed by batch norm and ReLU) and a 2x2 max pool, then a two-layer classifier.
//!
//! ```text
//! 1x48x48 -> [w] x2 -> pool -> [2w] x2 -> pool -> [4w] x2 -> pool -> [8w] x2 -> pool
//!         -> 8w x 3 x 3 -> dropout -> linear(72w, 32w) -> ReLU -> dropout -> linear(32w, 7)
//! ```
//!
//! Parameter names are those of the equivalent PyTorch module, a `features` `nn.Sequential`
//! of (Conv2d(bias=False), BatchNorm2d, ReLU, Conv2d, BatchNorm2d, ReLU, MaxPool2d) per stage
//! and a `classifier` `nn.Sequential` of (Dropout, Linear, ReLU, Dropout, Linear):
//! `features.0.weight`, `features.1.running_mean`, ..., `classifier.4.bias`.
//!
//! On the CPU, fewer than eight images (batch-1 latency) take the `one_image` path.

mod one_image;

use std::time::Instant;

use candle_core::{Result, Tensor, Var};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;

use crate::cpu::workspace::Workspace;
use crate::head::{Head, NUM_CLASSES};
use crate::layers::dropout::dropout;
use crate::layers::{Conv2dBnRelu, Linear};
use crate::loss::Loss;
use crate::nets::classifier::Classifier;

/// Stages of the network; each halves the side (48 -> 3).
const STAGES: usize = 4;
/// Modules per stage in the PyTorch `features` sequence.
const MODULES_PER_STAGE: usize = 7;

/// The VGG-style batch-norm network; `width` is the channel count of the first stage.
pub struct VggBn {
    units: Vec<Conv2dBnRelu>,
    fc1: Linear,
    fc2: Linear,
    head: Head,
    dropout: f32,
    /// The one-image path's buffers and cached Winograd weights.
    workspace: Workspace,
}

impl VggBn {
    pub fn new(vb: VarBuilder, width: usize, head: Head, dropout: f32) -> Result<Self> {
        if width == 0 {
            candle_core::bail!("vgg-bn: width must be at least 1");
        }
        let features = vb.pp("features");
        let mut units = Vec::with_capacity(2 * STAGES);
        let mut inputs = 1;
        for stage in 0..STAGES {
            let outputs = width << stage;
            for unit in 0..2 {
                let index = stage * MODULES_PER_STAGE + unit * 3;
                units.push(Conv2dBnRelu::new(
                    inputs,
                    outputs,
                    3,
                    1,
                    features.pp(index.to_string()),
                    features.pp((index + 1).to_string()),
                )?);
                inputs = outputs;
            }
        }
        let flat = inputs * 3 * 3;
        let hidden = 4 * inputs;
        let classifier = vb.pp("classifier");
        Ok(VggBn {
            units,
            fc1: Linear::new(flat, hidden, classifier.pp("1"))?,
            fc2: Linear::new(hidden, NUM_CLASSES, classifier.pp("4"))?,
            head,
            dropout,
            workspace: Workspace::default(),
        })
    }
}

impl VggBn {
    /// Every parameter and running statistic in order: per convolution its weight and its
    /// batch norm's weight, bias, running mean and variance; then the linear layers' weights
    /// and biases.
    fn tensors(&self) -> Vec<&Tensor> {
        let mut tensors = Vec::with_capacity(5 * self.units.len() + 4);
        for unit in &self.units {
            let (weight, norm) = unit.parts();
            tensors.push(weight);
            tensors.extend(norm.frozen_parts());
        }
        for fc in [&self.fc1, &self.fc2] {
            let (weight, bias) = fc.parts();
            tensors.push(weight);
            tensors.extend(bias);
        }
        tensors
    }

    /// The classifier on the last stage's output: dropout, linear, ReLU, dropout, linear, head.
    fn classify(&self, x: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let x = x.flatten_from(1)?;
        let train = rng.is_some();
        let x = dropout(&x, self.dropout, rng.as_deref_mut())?;
        let x = self.fc1.forward(&x, train)?.relu()?;
        let x = dropout(&x, self.dropout, rng)?;
        self.finish(self.fc2.forward(&x, train)?)
    }

    /// The head on the last layer's raw scores: log-probabilities (softmax) or the margins.
    fn finish(&self, scores: Tensor) -> Result<Tensor> {
        match self.head {
            Head::Softmax => candle_nn::ops::log_softmax(&scores, 1),
            Head::Svm => Ok(scores),
        }
    }

    /// Where a training step's time goes: each layer's forward and backward, timed alone on
    /// `images` (the activations it really sees). Each layer runs on a detached copy of its
    /// input; its backward is timed from a gradient of its output (for the classifier, from
    /// the loss of `labels`), so the figures add up to about one step without the optimizer.
    /// On a GPU every figure waits for the device.
    pub fn layer_times(
        &self,
        images: &Tensor,
        labels: &Tensor,
        loss: &Loss,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<LayerTime>> {
        let device = images.device().clone();
        let timed = |f: &mut dyn FnMut() -> Result<Tensor>| -> Result<(Tensor, f64)> {
            device.synchronize()?;
            let start = Instant::now();
            let out = f()?;
            device.synchronize()?;
            Ok((out, start.elapsed().as_secs_f64()))
        };
        // Forward, layer by layer, keeping each layer's input (a leaf) and output.
        // The images get no gradient (as in a real step): the first input is no Var.
        let mut layers: Vec<(String, Option<Var>, Tensor, f64)> = Vec::new();
        let mut x = images.clone();
        // The stage's last unit runs with its pool, as in a step.
        for (stage, pair) in self.units.chunks(2).enumerate() {
            for (k, unit) in pair.iter().enumerate() {
                let input = if layers.is_empty() {
                    None
                } else {
                    Some(Var::from_tensor(&x.detach())?)
                };
                let source = input.as_ref().map_or(images, Var::as_tensor);
                let pooled = k + 1 == pair.len();
                let (y, seconds) = timed(&mut || {
                    if pooled {
                        unit.forward_max_pool(source, true)
                    } else {
                        unit.forward(source, true)
                    }
                })?;
                let channels = unit.channels();
                let pool = if pooled { " + max pool 2x2" } else { "" };
                layers.push((
                    format!(
                        "stage {} conv3x3+bn+relu {k}{pool} ({channels} ch)",
                        stage + 1
                    ),
                    input,
                    y.clone(),
                    seconds,
                ));
                x = y;
            }
        }
        let input = Var::from_tensor(&x.detach())?;
        let (scores, seconds) = timed(&mut || {
            let scores = self.classify(input.as_tensor(), Some(&mut *rng))?;
            loss.compute(self.head, &scores, labels)
        })?;
        layers.push(("classifier + loss".into(), Some(input), scores, seconds));
        // Backward, from the loss down: each layer from its output's gradient.
        let mut times = Vec::with_capacity(layers.len());
        let mut upstream: Option<Tensor> = None;
        for (name, input, output, forward_s) in layers.into_iter().rev() {
            let target = match &upstream {
                Some(grad) => (&output * grad)?.sum_all()?,
                None => output.clone(),
            };
            let (grads, backward_s) = {
                device.synchronize()?;
                let start = Instant::now();
                let grads = target.backward()?;
                device.synchronize()?;
                (grads, start.elapsed().as_secs_f64())
            };
            upstream = input.and_then(|input| grads.get(input.as_tensor()).cloned());
            times.push(LayerTime {
                name,
                forward_s,
                backward_s,
            });
        }
        times.reverse();
        Ok(times)
    }
}

/// One layer's share of a training step, from [`VggBn::layer_times`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    pub name: String,
    pub forward_s: f64,
    /// Gradients of the layer's input and parameters (plus the product with the upstream
    /// gradient that stands for the layers above).
    pub backward_s: f64,
}

impl Classifier for VggBn {
    fn forward(&self, images: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let train = rng.is_some();
        let mut x = images.clone();
        for pair in self.units.chunks(2) {
            let Some((last, first)) = pair.split_last() else {
                continue;
            };
            for unit in first {
                x = unit.forward(&x, train)?;
            }
            // The pool runs inside the stage's last convolution's pass.
            x = last.forward_max_pool(&x, train)?;
        }
        self.classify(&x, rng)
    }

    fn head(&self) -> Head {
        self.head
    }

    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let tensors = self.tensors();
        if !one_image::applies(&tensors, images) {
            return Ok(self.forward(images, None)?.detach());
        }
        self.finish(one_image::scores(self, &tensors, &self.workspace, images)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    #[test]
    fn the_layer_profile_times_every_layer_both_ways() {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let model = VggBn::new(vb, 2, Head::Softmax, 0.2).unwrap();
        let images = Tensor::randn(0f32, 1.0, (3, 1, 48, 48), &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 3, 6], &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let times = model
            .layer_times(&images, &labels, &Loss::default(), &mut rng)
            .unwrap();
        // 4 stages of two conv units (the second with the pool), then the classifier.
        assert_eq!(times.len(), 9);
        assert_eq!(times[0].name, "stage 1 conv3x3+bn+relu 0 (2 ch)");
        assert_eq!(
            times[7].name,
            "stage 4 conv3x3+bn+relu 1 + max pool 2x2 (16 ch)"
        );
        assert_eq!(times[8].name, "classifier + loss");
        for layer in &times {
            assert!(layer.forward_s > 0.0 && layer.backward_s > 0.0, "{layer:?}");
        }
    }
}
