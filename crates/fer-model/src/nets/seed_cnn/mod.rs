//! The seed notebook's CNN: five PReLU convolutions with max and average pools, then three
//! fully connected layers (PReLU, dropout), with PyTorch `state_dict` names.
//!
//! - `params`: the network's geometry and named parameters, read by every path below.
//! - This module: [`SeedCnn`] and its candle forward (any device, autograd).
//! - `step`: on the CPU, the whole training step and batch inference without candle's
//!   graph (its reused buffers in `cpu::workspace`); `one_image`: one image's layers for
//!   `cpu::one_image` (batch-1 latency).

pub(crate) mod one_image;
pub(crate) mod params;
pub(crate) mod step;

use candle_core::backprop::GradStore;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use rand_chacha::ChaCha8Rng;

use self::params::{
    CONV_NAMES, ConvParams, FC_HIDDEN, LinearParams, SeedParams, fc_inputs, geometry, pool_after,
};
use crate::cpu::shape::{PoolKind, PoolShape};
use crate::cpu::workspace::Workspace;
use crate::head::{Head, NUM_CLASSES};
use crate::layers::dropout::dropout;
use crate::layers::init::{conv_weight_and_bias, linear};
use crate::layers::{Pool2d, conv2d, prelu};
use crate::loss::Loss;
use crate::nets::classifier::Classifier;

/// The seed notebook's CNN. Parameter names are the PyTorch `state_dict` names of the
/// notebook's `nn.Sequential` layers (`layer1.0.weight`, `layer1.1.weight`, ..., `fc3.bias`),
/// so weights move between the two frameworks unchanged.
pub struct SeedCnn {
    params: SeedParams<Tensor>,
    head: Head,
    dropout: f32,
    /// Activation buffers of the fused CPU paths, reused from call to call.
    workspace: Workspace,
}

impl SeedCnn {
    /// Creates (or loads from `vb`) the parameters, initialised as PyTorch does.
    pub fn new(vb: VarBuilder, head: Head, dropout: f32) -> Result<Self> {
        let prelu = |name: &str| {
            Ok::<_, candle_core::Error>(candle_nn::prelu(None, vb.pp(name))?.weight().clone())
        };
        let (shapes, _) = geometry(1);
        let mut convs = Vec::with_capacity(shapes.len());
        for (s, (conv_name, prelu_name)) in shapes.iter().zip(CONV_NAMES) {
            let (weight, bias) = conv_weight_and_bias(s.cin, s.cout, s.k, vb.pp(conv_name))?;
            convs.push(ConvParams {
                weight,
                bias,
                slope: prelu(prelu_name)?,
            });
        }
        let dense = |inputs, outputs, name: &str| -> Result<LinearParams<Tensor>> {
            let layer = linear(inputs, outputs, vb.pp(name))?;
            Ok(LinearParams {
                weight: layer.weight().clone(),
                bias: layer.bias().expect("linear() has a bias").clone(),
            })
        };
        let fc1 = dense(fc_inputs(), FC_HIDDEN, "fc1")?;
        let params = SeedParams {
            convs: convs
                .try_into()
                .unwrap_or_else(|_| unreachable!("five convolutions")),
            fc1,
            fc_slope: prelu("prelu")?,
            fc2: dense(FC_HIDDEN, FC_HIDDEN, "fc2")?,
            fc3: dense(FC_HIDDEN, NUM_CLASSES, "fc3")?,
        };
        Ok(SeedCnn {
            params,
            head,
            dropout,
            workspace: Workspace::default(),
        })
    }

    /// The parameters, by name.
    fn tensors(&self) -> SeedParams<&Tensor> {
        self.params.map(|t| t)
    }
}

/// The pool of `shape` as a candle op.
fn pool_op(shape: &PoolShape) -> Pool2d {
    match shape.kind {
        PoolKind::Max => Pool2d::max(shape.k, shape.stride),
        PoolKind::Avg => Pool2d::avg(shape.k, shape.stride),
    }
    .with_zero_padding(shape.pad)
}

/// A fully connected layer of the parameters.
fn dense(layer: &LinearParams<Tensor>, x: &Tensor) -> Result<Tensor> {
    Linear::new(layer.weight.clone(), Some(layer.bias.clone())).forward(x)
}

impl Classifier for SeedCnn {
    fn forward(&self, images: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let (convs, pools) = geometry(images.dim(0)?);
        let mut x = images.clone();
        for (layer, (shape, p)) in convs.iter().zip(&self.params.convs).enumerate() {
            x = conv2d(&x, &p.weight, Some(&p.bias), shape.pad)?;
            x = prelu(&x, &p.slope)?;
            if let Some(pool) = pool_after(layer) {
                x = pool_op(&pools[pool]).forward(&x)?;
            }
        }
        let x = x.flatten_from(1)?; // 3200
        let slope = &self.params.fc_slope;
        let x = prelu(&dense(&self.params.fc1, &x)?, slope)?;
        let x = dropout(&x, self.dropout, rng.as_deref_mut())?;
        let x = prelu(&dense(&self.params.fc2, &x)?, slope)?;
        let x = dropout(&x, self.dropout, rng)?;
        let scores = dense(&self.params.fc3, &x)?;
        match self.head {
            Head::Softmax => candle_nn::ops::log_softmax(&scores, 1),
            Head::Svm => Ok(scores),
        }
    }

    fn head(&self) -> Head {
        self.head
    }

    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let params = self.tensors();
        if step::applies(images, &params) {
            return step::predict(&self.workspace, &params, self.head, images);
        }
        Ok(self.forward(images, None)?.detach())
    }

    /// On the CPU, the whole step written for this network (see the `step` module): the same values
    /// as the default autograd path, without its graph.
    fn loss_and_grads(
        &self,
        images: &Tensor,
        labels: &Tensor,
        loss: &Loss,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(f32, GradStore)> {
        let params = self.tensors();
        if loss.is_plain() && step::applies(images, &params) {
            return step::loss_and_grads(
                &self.workspace,
                &params,
                self.head,
                self.dropout,
                images,
                labels,
                dropout,
            );
        }
        let scores = self.forward(images, dropout)?;
        let batch_loss = loss.compute(self.head, &scores, labels)?;
        Ok((batch_loss.to_scalar::<f32>()?, batch_loss.backward()?))
    }
}
