//! Layers as candle tensor functions, for any network built from them: [`conv2d`] (padding
//! fused), [`prelu()`], [`Pool2d`], [`BatchNormRelu`], [`Conv2dBnRelu`] (the three fused for
//! inference), [`Linear`] (split over the threads for batch-1 inference), dropout
//! with a seeded mask, and PyTorch's default initialisation.
//!
//! On the CPU with f32 tensors each runs the crate's `cpu` kernels as a candle
//! custom op with its own forward and backward; on other devices and dtypes they fall back to
//! candle's own ops (CUDA keeps candle's kernels). Results agree with candle's reference ops
//! to 1e-4 relative error, gradients included (see the tests), and are deterministic: same
//! inputs, same bits, whatever the thread count.

pub mod batch_norm;
mod conv;
mod conv_bn_relu;
pub(crate) mod dropout;
pub(crate) mod init;
mod linear;
mod pool;
mod prelu;
pub(crate) mod storage;

pub use batch_norm::BatchNormRelu;
pub use conv::conv2d;
pub use conv_bn_relu::Conv2dBnRelu;
pub use linear::Linear;
pub use pool::{Pool2d, PoolKind};
pub use prelu::prelu;
