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

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use rand_chacha::ChaCha8Rng;

use crate::head::{Head, NUM_CLASSES};
use crate::layers::BatchNormRelu;
use crate::layers::dropout::dropout;
use crate::layers::init::{conv_weight, linear};
use crate::layers::{Pool2d, conv2d};
use crate::nets::classifier::Classifier;

/// Stages of the network; each halves the side (48 -> 3).
const STAGES: usize = 4;
/// Modules per stage in the PyTorch `features` sequence.
const MODULES_PER_STAGE: usize = 7;

/// One conv + batch norm + ReLU unit.
struct ConvBnRelu {
    weight: Tensor,
    norm: BatchNormRelu,
}

impl ConvBnRelu {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = conv2d(x, &self.weight, None, 1)?;
        self.norm.forward(&y, train)
    }
}

/// The VGG-style batch-norm network; `width` is the channel count of the first stage.
pub struct VggBn {
    units: Vec<ConvBnRelu>,
    fc1: Linear,
    fc2: Linear,
    head: Head,
    dropout: f32,
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
                units.push(ConvBnRelu {
                    weight: conv_weight(inputs, outputs, 3, features.pp(index.to_string()))?,
                    norm: BatchNormRelu::new(outputs, features.pp((index + 1).to_string()))?,
                });
                inputs = outputs;
            }
        }
        let flat = inputs * 3 * 3;
        let hidden = 4 * inputs;
        let classifier = vb.pp("classifier");
        Ok(VggBn {
            units,
            fc1: linear(flat, hidden, classifier.pp("1"))?,
            fc2: linear(hidden, NUM_CLASSES, classifier.pp("4"))?,
            head,
            dropout,
        })
    }
}

impl Classifier for VggBn {
    fn forward(&self, images: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let train = rng.is_some();
        let mut x = images.clone();
        for pair in self.units.chunks(2) {
            for unit in pair {
                x = unit.forward(&x, train)?;
            }
            // candle's own 2x2 pool has a backward (kernel == stride) and runs on every
            // device; the crate's CPU kernel is the faster one there.
            x = if x.device().is_cpu() {
                Pool2d::max(2, 2).forward(&x)?
            } else {
                x.max_pool2d(2)?
            };
        }
        let x = x.flatten_from(1)?;
        let x = dropout(&x, self.dropout, rng.as_deref_mut())?;
        let x = self.fc1.forward(&x)?.relu()?;
        let x = dropout(&x, self.dropout, rng)?;
        let scores = self.fc2.forward(&x)?;
        match self.head {
            Head::Softmax => candle_nn::ops::log_softmax(&scores, 1),
            Head::Svm => Ok(scores),
        }
    }

    fn head(&self) -> Head {
        self.head
    }
}
