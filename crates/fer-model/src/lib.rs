//! The FER CNN in candle: model definitions, training loop, evaluation.
//!
//! Placeholder: the seed CNN, its optimizers and the training loop arrive with the model work.
//! The `cuda` cargo feature will select candle's CUDA backend.
