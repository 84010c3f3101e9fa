//! The crate's typed errors: each names the model, file or input it is about.

use std::path::PathBuf;

/// Everything that can go wrong in `fer`. A message never repeats its source, which
/// [`std::error::Error::source`] returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `builtin:NAME` names no built-in model.
    #[error("no built-in model named `{name}` (built-in models: {available})")]
    UnknownBuiltin { name: String, available: String },
    /// A built-in model could not be read (a corrupt build).
    #[error("the built-in model `{name}` could not be read")]
    Builtin {
        name: &'static str,
        #[source]
        source: fer_model::TrainError,
    },
    /// A model file or run directory could not be read.
    #[error("cannot load model {}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: fer_model::TrainError,
    },
    /// The face detector could not be set up (options out of range, corrupt build).
    #[error(transparent)]
    Detector(#[from] fer_detect::Error),
    /// An image could not be read or decoded, or is too large to decode safely.
    #[error(transparent)]
    Image(#[from] fer_data::Error),
    /// The model failed on a batch (for example a device out of memory).
    #[error("inference failed")]
    Inference(#[source] candle_core::Error),
    /// An argument is out of range; the message says which and why.
    #[error("{0}")]
    InvalidInput(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
