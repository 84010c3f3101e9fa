//! Test-time augmentation around any network: the mean prediction over an image's mirror
//! and corner-shifted views.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::classifier::Classifier;
use crate::head::Head;
use crate::loss::Loss;

/// Test-time augmentation around a network: inference averages the class probabilities
/// (SVM: the margins) of several views of each image (its mirror, shifted copies);
/// training passes straight through.
pub(crate) struct TestTimeAugmented {
    pub(crate) network: Box<dyn Classifier>,
    pub(crate) flip: bool,
    pub(crate) shift: usize,
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
