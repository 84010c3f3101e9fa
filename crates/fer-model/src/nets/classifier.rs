//! [`Classifier`]: what every network offers training and evaluation.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::head::Head;
use crate::loss::Loss;

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
