//! Typed errors of the report crate; every message about a file names it.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while reading runs, drawing plots or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is the source, so a printed chain names it once.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{}: not a run directory (no config.json, history.json or eval-*.json)",
        path.display()
    )]
    NotARun { path: PathBuf },
    #[error("{}: unknown figure format (use .png or .svg)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("nothing to plot: {0}")]
    Empty(String),
    #[error("drawing failed: {0}")]
    Draw(String),
    /// A data-layer error (a file written atomically), which names its file.
    #[error(transparent)]
    Data(#[from] fer_data::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        Error::Json {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
