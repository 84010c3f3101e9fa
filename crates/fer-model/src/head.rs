//! The output layer of every network: the number of classes and the head ([`Head`]), which
//! decides the loss.

use serde::{Deserialize, Serialize};

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
