//! Model architectures behind one config and one trait; the seed CNN reads like the notebook.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Init, Linear, PReLU, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::loss::Loss;
use crate::ops;
use crate::pool::Pool2d;
use crate::seed_step;
use crate::vgg::VggBn;

/// Number of emotion classes.
pub const NUM_CLASSES: usize = fer_data::Emotion::COUNT;

/// The output layer and its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Log-softmax with negative log-likelihood (the seed notebook).
    #[default]
    Softmax,
    /// One-vs-rest linear SVM scores with the squared hinge loss (Tang 2013, the FER2013
    /// challenge winner), trained end to end.
    Svm,
}

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The notebook's 5-conv PReLU CNN.
    #[default]
    SeedCnn,
    /// A VGG-style network with batch norm (see [`crate::vgg`]), `width` channels first.
    VggBn,
}

/// Everything needed to rebuild a model's graph; saved beside its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub head: Head,
    /// Dropout probability of the fully connected layers (the seed uses 0.2).
    pub dropout: f32,
    /// Channels of the first stage of [`Architecture::VggBn`] (doubled at each stage).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Inference averages the class probabilities of each image and its mirror image
    /// (test-time augmentation); training is unaffected.
    #[serde(default)]
    pub test_time_flip: bool,
    /// Inference also averages four shifted copies of each image: moved by this many pixels
    /// toward each corner, edge pixels repeated (as `random_crop` with replicate fill trains).
    /// With `test_time_flip`, each of the five views and its mirror: a full-size ten-crop.
    /// 0 (the default) shifts nothing.
    #[serde(default)]
    pub test_time_shift: usize,
}

fn default_width() -> usize {
    32
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: Architecture::SeedCnn,
            head: Head::Softmax,
            dropout: 0.2,
            width: default_width(),
            test_time_flip: false,
            test_time_shift: 0,
        }
    }
}

impl ModelConfig {
    /// Creates the model's parameters in `vb` (new ones are initialised as PyTorch does).
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Classifier>> {
        let model: Box<dyn Classifier> = match self.architecture {
            Architecture::SeedCnn => Box::new(SeedCnn::new(vb, self.head, self.dropout)?),
            Architecture::VggBn => Box::new(VggBn::new(vb, self.width, self.head, self.dropout)?),
        };
        if self.test_time_shift >= 24 {
            candle_core::bail!(
                "model.test_time_shift must be below 24 pixels, got {}",
                self.test_time_shift
            );
        }
        Ok(if self.test_time_flip || self.test_time_shift > 0 {
            Box::new(TestTimeAugmented {
                network: model,
                flip: self.test_time_flip,
                shift: self.test_time_shift,
            })
        } else {
            model
        })
    }

    /// Builds the model with fresh parameters on `device`, drawn from a ChaCha8 stream
    /// seeded by `seed` (candle's CPU generator cannot be seeded), with PyTorch's default
    /// bounds: same seed, same weights, on every machine.
    pub fn init(&self, device: &Device, seed: u64) -> Result<(VarMap, Box<dyn Classifier>)> {
        let vars = VarMap::new();
        let model = self.build(VarBuilder::from_varmap(&vars, DType::F32, device))?;
        reinit_seeded(&vars, seed)?;
        Ok((vars, model))
    }
}

/// A network that maps a batch of normalised 48x48 images (N, 1, 48, 48) to class scores.
pub trait Classifier: Send + Sync {
    /// Scores (N, 7): log-probabilities for [`Head::Softmax`], SVM margins for [`Head::Svm`].
    /// `dropout` is the random stream for training mode; `None` evaluates deterministically.
    fn forward(&self, images: &Tensor, dropout: Option<&mut ChaCha8Rng>) -> Result<Tensor>;

    /// The head, which decides the loss.
    fn head(&self) -> Head;

    /// Scores of `images` for inference (no dropout), recording nothing for backpropagation.
    /// The default is [`Classifier::forward`] detached; a network may run a faster path.
    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.forward(images, None)?.detach())
    }

    /// One training step's loss and gradients: the batch `loss` of `labels` (N,) u32 and its
    /// gradient for every parameter. The default runs [`Classifier::forward`] and candle's
    /// autograd; a network may override it with a faster path giving the same values.
    fn loss_and_grads(
        &self,
        images: &Tensor,
        labels: &Tensor,
        loss: &Loss,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(f32, GradStore)> {
        let scores = self.forward(images, dropout)?;
        let batch_loss = loss.compute(self.head(), &scores, labels)?;
        Ok((batch_loss.to_scalar::<f32>()?, batch_loss.backward()?))
    }
}

/// Test-time augmentation around a network: inference averages the class probabilities
/// (SVM: the margins) of several views of each image (its mirror, shifted copies);
/// training passes straight through.
struct TestTimeAugmented {
    network: Box<dyn Classifier>,
    flip: bool,
    shift: usize,
}

impl TestTimeAugmented {
    /// The views: the image, its four corner shifts, then the mirror of each if flipping.
    fn views(&self, images: &Tensor) -> Result<Vec<Tensor>> {
        let mut views = vec![images.clone()];
        if self.shift > 0 {
            let s = self.shift;
            let (_, _, height, width) = images.dims4()?;
            let padded = images.pad_with_same(2, s, s)?.pad_with_same(3, s, s)?;
            for (top, left) in [(0, 0), (0, 2 * s), (2 * s, 0), (2 * s, 2 * s)] {
                let view = padded.narrow(2, top, height)?.narrow(3, left, width)?;
                views.push(view.contiguous()?);
            }
        }
        if self.flip {
            let width = images.dim(3)?;
            let reversed: Vec<u32> = (0..width as u32).rev().collect();
            let reversed = Tensor::from_vec(reversed, width, images.device())?;
            let mirrored = views
                .iter()
                .map(|view| view.index_select(&reversed, 3))
                .collect::<Result<Vec<_>>>()?;
            views.extend(mirrored);
        }
        Ok(views)
    }
}

impl Classifier for TestTimeAugmented {
    fn forward(&self, images: &Tensor, dropout: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        match dropout {
            Some(rng) => self.network.forward(images, Some(rng)),
            None => self.predict(images),
        }
    }

    fn head(&self) -> Head {
        self.network.head()
    }

    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let views = self.views(images)?;
        let count = views.len() as f64;
        let mut total: Option<Tensor> = None;
        for view in &views {
            let scores = self.network.predict(view)?;
            let term = match self.network.head() {
                Head::Softmax => scores.exp()?,
                Head::Svm => scores,
            };
            total = Some(match total {
                None => term,
                Some(sum) => (sum + term)?,
            });
        }
        let mean = (total.expect("at least the image itself") / count)?;
        match self.network.head() {
            // Log-probabilities: average the probabilities, back to log space.
            Head::Softmax => mean.log(),
            Head::Svm => Ok(mean),
        }
    }

    fn loss_and_grads(
        &self,
        images: &Tensor,
        labels: &Tensor,
        loss: &Loss,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(f32, GradStore)> {
        self.network.loss_and_grads(images, labels, loss, dropout)
    }
}

/// Redraws every weight and bias of `vars` uniformly in PyTorch's default bounds from a seeded
/// stream, in name order; single-value PReLU weights keep their constant 0.25.
fn reinit_seeded(vars: &VarMap, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    let data = vars.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let fan_in = |weight: &str| -> Option<usize> {
        let dims = data.get(weight)?.dims().to_vec();
        (dims.len() >= 2).then(|| dims[1..].iter().product())
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let weight_name = match name.strip_suffix(".bias") {
            Some(layer) => format!("{layer}.weight"),
            None => name.clone(),
        };
        let Some(fan_in) = fan_in(&weight_name) else {
            continue; // PReLU slope: constant init
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
    }
    Ok(())
}

/// PyTorch's default init for conv and linear layers: weights and biases uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (kaiming_uniform with a = sqrt(5)).
fn torch_default(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// The weight of a bias-free `Conv2d(inputs, outputs, kernel)`, PyTorch's default init.
pub(crate) fn conv_weight(
    inputs: usize,
    outputs: usize,
    kernel: usize,
    vb: VarBuilder,
) -> Result<Tensor> {
    let init = torch_default(inputs * kernel * kernel);
    vb.get_with_hints((outputs, inputs, kernel, kernel), "weight", init)
}

fn conv(
    inputs: usize,
    outputs: usize,
    kernel: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let init = torch_default(inputs * kernel * kernel);
    let weight = vb.get_with_hints((outputs, inputs, kernel, kernel), "weight", init)?;
    let bias = vb.get_with_hints(outputs, "bias", init)?;
    let config = Conv2dConfig {
        padding,
        ..Default::default()
    };
    Ok(Conv2d::new(weight, Some(bias), config))
}

pub(crate) fn linear(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let init = torch_default(inputs);
    let weight = vb.get_with_hints((outputs, inputs), "weight", init)?;
    let bias = vb.get_with_hints(outputs, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A convolution with its own padding, then PReLU, through the fast [`ops`].
fn conv_prelu(x: &Tensor, conv: &Conv2d, prelu: &PReLU) -> Result<Tensor> {
    conv_prelu_padded(x, conv, conv.config().padding, prelu)
}

fn conv_prelu_padded(x: &Tensor, conv: &Conv2d, padding: usize, prelu: &PReLU) -> Result<Tensor> {
    let y = ops::conv2d(x, conv.weight(), conv.bias(), padding)?;
    ops::prelu(&y, prelu.weight())
}

/// Inverted dropout with a mask drawn from `rng` (reproducible, unlike a global RNG).
pub(crate) fn dropout(x: &Tensor, p: f32, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
    let Some(rng) = rng else { return Ok(x.clone()) };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

/// The seed notebook's CNN. Parameter names are the PyTorch `state_dict` names of the
/// notebook's `nn.Sequential` layers (`layer1.0.weight`, `layer1.1.weight`, ..., `fc3.bias`),
/// so weights move between the two frameworks unchanged.
pub struct SeedCnn {
    layer1_conv: Conv2d, // layer1.0: Conv2d(1, 64, 5)
    layer1_prelu: PReLU, // layer1.1, then ZeroPad2d(2), MaxPool2d(5, 2)
    layer2_conv: Conv2d, // layer2.1 after ZeroPad2d(1): Conv2d(64, 64, 3)
    layer2_prelu: PReLU, // layer2.2, then ZeroPad2d(1)
    layer3_conv: Conv2d, // layer3.0: Conv2d(64, 128, 3)
    layer3_prelu: PReLU, // layer3.1, then AvgPool2d(3, 2)
    layer4_conv: Conv2d, // layer4.1 after ZeroPad2d(1): Conv2d(128, 128, 3)
    layer4_prelu: PReLU, // layer4.2
    layer5_conv: Conv2d, // layer5.1 after ZeroPad2d(1): Conv2d(128, 128, 3)
    layer5_prelu: PReLU, // layer5.2, then ZeroPad2d(1), AvgPool2d(3, 2)
    fc1: Linear,         // 3200 -> 1024
    prelu: PReLU,        // shared by fc1 and fc2, as in the notebook
    fc2: Linear,         // 1024 -> 1024
    fc3: Linear,         // 1024 -> 7
    head: Head,
    dropout: f32,
    /// Activation buffers of the fused CPU training step, reused from step to step.
    workspace: seed_step::Workspace,
}

impl SeedCnn {
    pub fn new(vb: VarBuilder, head: Head, dropout: f32) -> Result<Self> {
        let prelu = |name: &str| candle_nn::prelu(None, vb.pp(name));
        Ok(SeedCnn {
            // A ZeroPad2d(1) right before a 3x3 conv is the conv's own padding 1.
            layer1_conv: conv(1, 64, 5, 0, vb.pp("layer1.0"))?,
            layer1_prelu: prelu("layer1.1")?,
            layer2_conv: conv(64, 64, 3, 1, vb.pp("layer2.1"))?,
            layer2_prelu: prelu("layer2.2")?,
            layer3_conv: conv(64, 128, 3, 0, vb.pp("layer3.0"))?,
            layer3_prelu: prelu("layer3.1")?,
            layer4_conv: conv(128, 128, 3, 1, vb.pp("layer4.1"))?,
            layer4_prelu: prelu("layer4.2")?,
            layer5_conv: conv(128, 128, 3, 1, vb.pp("layer5.1"))?,
            layer5_prelu: prelu("layer5.2")?,
            fc1: linear(3200, 1024, vb.pp("fc1"))?,
            prelu: prelu("prelu")?,
            fc2: linear(1024, 1024, vb.pp("fc2"))?,
            fc3: linear(1024, NUM_CLASSES, vb.pp("fc3"))?,
            head,
            dropout,
            workspace: seed_step::Workspace::default(),
        })
    }
}

impl Classifier for SeedCnn {
    fn forward(&self, images: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let x = conv_prelu(images, &self.layer1_conv, &self.layer1_prelu)?; // 64 x 44 x 44
        let x = Pool2d::max(5, 2).with_zero_padding(2).forward(&x)?; // 64 x 22 x 22
        let x = conv_prelu(&x, &self.layer2_conv, &self.layer2_prelu)?;
        // ZeroPad2d(1) then the unpadded 3x3 conv: the conv's own padding 1.
        let x = conv_prelu_padded(&x, &self.layer3_conv, 1, &self.layer3_prelu)?; // 128 x 22 x 22
        let x = Pool2d::avg(3, 2).forward(&x)?; // 128 x 10 x 10
        let x = conv_prelu(&x, &self.layer4_conv, &self.layer4_prelu)?;
        let x = conv_prelu(&x, &self.layer5_conv, &self.layer5_prelu)?;
        let x = Pool2d::avg(3, 2).with_zero_padding(1).forward(&x)?; // 128 x 5 x 5
        let x = x.flatten_from(1)?; // 3200
        let x = dropout(
            &ops::prelu(&self.fc1.forward(&x)?, self.prelu.weight())?,
            self.dropout,
            rng.as_deref_mut(),
        )?;
        let x = dropout(
            &ops::prelu(&self.fc2.forward(&x)?, self.prelu.weight())?,
            self.dropout,
            rng,
        )?;
        let scores = self.fc3.forward(&x)?;
        match self.head {
            Head::Softmax => candle_nn::ops::log_softmax(&scores, 1),
            Head::Svm => Ok(scores),
        }
    }

    fn head(&self) -> Head {
        self.head
    }

    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let params = self.parameters()?;
        if seed_step::applies(images, &params) {
            return seed_step::predict(&self.workspace, &params, self.head, images);
        }
        Ok(self.forward(images, None)?.detach())
    }

    /// On the CPU, the whole step written for this network (see `seed_step`): the same values
    /// as the default autograd path, without its graph.
    fn loss_and_grads(
        &self,
        images: &Tensor,
        labels: &Tensor,
        loss: &Loss,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(f32, GradStore)> {
        let params = self.parameters()?;
        if loss.is_plain() && seed_step::applies(images, &params) {
            return seed_step::loss_and_grads(
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

impl SeedCnn {
    /// The parameters in `seed_step::PARAMS` order.
    fn parameters(&self) -> Result<[&Tensor; seed_step::PARAMS]> {
        fn bias(conv: &Conv2d) -> Result<&Tensor> {
            conv.bias()
                .ok_or_else(|| candle_core::Error::Msg("seed CNN conv without bias".into()))
        }
        fn lbias(l: &Linear) -> Result<&Tensor> {
            l.bias()
                .ok_or_else(|| candle_core::Error::Msg("seed CNN linear without bias".into()))
        }
        Ok([
            self.layer1_conv.weight(),
            bias(&self.layer1_conv)?,
            self.layer1_prelu.weight(),
            self.layer2_conv.weight(),
            bias(&self.layer2_conv)?,
            self.layer2_prelu.weight(),
            self.layer3_conv.weight(),
            bias(&self.layer3_conv)?,
            self.layer3_prelu.weight(),
            self.layer4_conv.weight(),
            bias(&self.layer4_conv)?,
            self.layer4_prelu.weight(),
            self.layer5_conv.weight(),
            bias(&self.layer5_conv)?,
            self.layer5_prelu.weight(),
            self.fc1.weight(),
            lbias(&self.fc1)?,
            self.prelu.weight(),
            self.fc2.weight(),
            lbias(&self.fc2)?,
            self.fc3.weight(),
            lbias(&self.fc3)?,
        ])
    }
}

/// The training loss of `head` for scores (N, 7) and labels (N,) as u32.
///
/// Softmax: mean negative log-likelihood. SVM: mean over the batch of the one-vs-rest squared
/// hinge `sum_k max(0, 1 - t_k s_k)^2` with `t_k = +1` for the true class and -1 otherwise.
pub fn loss(head: Head, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
    match head {
        Head::Softmax => candle_nn::loss::nll(scores, labels),
        Head::Svm => {
            let targets = candle_nn::encoding::one_hot(labels.clone(), NUM_CLASSES, 1f32, -1f32)?;
            let margins = (1.0 - (targets * scores)?)?.relu()?;
            margins.sqr()?.sum(1)?.mean_all()
        }
    }
}
