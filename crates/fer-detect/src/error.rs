//! The crate's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong in `fer-detect`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A detector option is out of the range the SeetaFace detector accepts.
    #[error("invalid detector option {name} = {value}: {expected}")]
    InvalidOption {
        /// The option's field name in [`DetectorOptions`](crate::DetectorOptions).
        name: &'static str,
        /// The rejected value, as text.
        value: String,
        /// What the option accepts.
        expected: &'static str,
    },
    /// The embedded SeetaFace model could not be parsed (a corrupt build).
    #[error("the embedded SeetaFace model could not be read: {0}")]
    Model(#[source] std::io::Error),
    /// The embedded label font could not be parsed (a corrupt build).
    #[error("the embedded label font could not be read: {0}")]
    Font(String),
    /// An image file could not be opened or decoded.
    #[error("cannot read image {}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: image::ImageError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
