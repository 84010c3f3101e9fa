//! The crate's typed errors.

/// Everything that can go wrong in `fer-detect`. A message never repeats its source, which
/// [`std::error::Error::source`] returns. (Decoding image files is `fer-data`'s
/// `face_image::load_image`, with size limits; this crate takes decoded images.)
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
    /// The landmark network's weights could not be loaded or run (a corrupt build or file).
    #[error("the landmark network (O-Net) failed: {0}")]
    Landmarks(String),
    /// The embedded label font could not be parsed (a corrupt build).
    #[error("the embedded label font could not be read: {0}")]
    Font(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_leave_their_cause_to_the_source() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
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
