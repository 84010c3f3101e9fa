//! The networks and what they share: [`ModelConfig`](config::ModelConfig) builds a
//! [`Classifier`](classifier::Classifier), the seed notebook's CNN ([`seed_cnn`]) or the
//! VGG-style batch-norm network ([`vgg`]), optionally wrapped in test-time augmentation
//! ([`tta`]); several trained networks classify together as an [`ensemble`]. A new
//! architecture is one file here built from [`crate::layers`].

pub mod classifier;
pub mod config;
pub mod ensemble;
pub mod seed_cnn;
pub mod tta;
pub mod vgg;
