//! Inner loops written for any CPU (plain Rust that the compiler vectorises). The
//! [`avx512`](super::avx512) module compiles some of them again for AVX-512.

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod pool;
pub(crate) mod winograd;
pub(crate) mod winograd4;
