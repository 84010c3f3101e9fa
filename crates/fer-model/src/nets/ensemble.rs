//! An ensemble of trained networks as one classifier: the mean of their class probabilities.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::classifier::Classifier;
use crate::head::Head;
use crate::loss::Loss;

/// Networks that classify together: inference averages the members' class probabilities
/// (each member with its own test-time augmentation) and returns the log of the mean, as a
/// softmax network does. The same combination as [`crate::eval::average_evaluations`],
/// which averages members evaluated one by one. An ensemble is evaluated, not trained.
pub struct Ensemble {
    members: Vec<Box<dyn Classifier>>,
}

impl Ensemble {
    /// The ensemble of `members`: at least one, every one with a softmax head (SVM margins
    /// are not probabilities to average).
    pub fn new(members: Vec<Box<dyn Classifier>>) -> Result<Self> {
        if members.is_empty() {
            candle_core::bail!("an ensemble needs at least one member");
        }
        if let Some(k) = members.iter().position(|m| m.head() != Head::Softmax) {
            candle_core::bail!(
                "ensemble member {} has an SVM head: only softmax networks can be averaged",
                k + 1
            );
        }
        Ok(Ensemble { members })
    }
}

impl Classifier for Ensemble {
    fn forward(&self, images: &Tensor, dropout: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        if dropout.is_some() {
            candle_core::bail!("an ensemble is evaluated, not trained: train its members");
        }
        self.predict(images)
    }

    fn head(&self) -> Head {
        Head::Softmax
    }

    fn predict(&self, images: &Tensor) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for member in &self.members {
            let probabilities = member.predict(images)?.exp()?;
            total = Some(match total {
                None => probabilities,
                Some(sum) => (sum + probabilities)?,
            });
        }
        let total = total.expect("Ensemble::new refuses no members");
        (total / self.members.len() as f64)?.log()
    }

    fn loss_and_grads(
        &self,
        _images: &Tensor,
        _labels: &Tensor,
        _loss: &Loss,
        _dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<(f32, GradStore)> {
        candle_core::bail!("an ensemble is evaluated, not trained: train its members")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::config::{Architecture, ModelConfig};
    use candle_core::Device;

    fn network(seed: u64, head: Head) -> Box<dyn Classifier> {
        let config = ModelConfig {
            architecture: Architecture::SeedCnn,
            head,
            ..ModelConfig::default()
        };
        config.init(&Device::Cpu, seed).unwrap().1
    }

    #[test]
    fn the_ensemble_scores_the_log_of_the_members_mean_probability() {
        let images = Tensor::randn(0f32, 1.0, (3, 1, 48, 48), &Device::Cpu).unwrap();
        let (a, b) = (network(1, Head::Softmax), network(2, Head::Softmax));
        let probabilities = |network: &dyn Classifier| -> Vec<Vec<f32>> {
            let scores = network.predict(&images).unwrap();
            scores.exp().unwrap().to_vec2().unwrap()
        };
        let (pa, pb) = (probabilities(a.as_ref()), probabilities(b.as_ref()));
        let ensemble = Ensemble::new(vec![a, b]).unwrap();
        let scores: Vec<Vec<f32>> = ensemble.predict(&images).unwrap().to_vec2().unwrap();
        for i in 0..3 {
            let mut sum = 0.0;
            for c in 0..7 {
                let mean = (pa[i][c] + pb[i][c]) / 2.0;
                assert!((scores[i][c].exp() - mean).abs() < 1e-6, "{i} {c}");
                sum += scores[i][c].exp();
            }
            assert!((sum - 1.0).abs() < 1e-5);
        }
        // The members differ, so the mean is neither of them.
        assert!((pa[0][0] - pb[0][0]).abs() > 1e-6);
    }

    #[test]
    fn an_ensemble_refuses_svm_members_no_members_and_training() {
        let error = Ensemble::new(vec![network(1, Head::Softmax), network(2, Head::Svm)])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("member 2 has an SVM head"),
            "{error}"
        );
        assert!(Ensemble::new(Vec::new()).is_err());
        let ensemble = Ensemble::new(vec![network(1, Head::Softmax)]).unwrap();
        let images = Tensor::zeros((1, 1, 48, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        let error = ensemble
            .loss_and_grads(&images, &labels, &Loss::default(), None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("not trained"), "{error}");
    }
}
