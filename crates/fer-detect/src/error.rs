//! The crate's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong in `fer-detect`. A message never repeats its source (the
/// I/O or decoding error), which [`std::error::Error::source`] returns.
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
    #[error("the embedded SeetaFace model could not be read")]
    Model(#[source] std::io::Error),
    /// The embedded label font could not be parsed (a corrupt build).
    #[error("the embedded label font could not be read: {0}")]
    Font(String),
    /// An image file could not be opened or decoded.
    #[error("cannot read image {}", path.display())]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_leave_their_cause_to_the_source() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let image = Error::Image {
            path: PathBuf::from("photo.jpg"),
            source: image::ImageError::IoError(io()),
        };
        assert_eq!(image.to_string(), "cannot read image photo.jpg");
        let cause = std::error::Error::source(&image).expect("the decoder's error");
        assert_eq!(cause.to_string(), "gone");
        let model = Error::Model(io());
        assert_eq!(
            model.to_string(),
            "the embedded SeetaFace model could not be read"
        );
        assert_eq!(
            std::error::Error::source(&model).unwrap().to_string(),
            "gone"
        );
    }
}
