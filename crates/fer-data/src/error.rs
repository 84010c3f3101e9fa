//! Typed errors of the data crate; every message names the file, and for rows the line and field.

use std::fmt;
use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid row of a CSV file: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    /// The column at fault: `emotion`, `pixels` or `Usage`.
    pub field: &'static str,
    /// What was found, e.g. `expected 2304 values, found 2303`.
    pub message: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

/// Everything that can go wrong while reading, checking or writing FER data.
///
/// A message never repeats its source: `Io` names the file and leaves what the system said to
/// [`std::error::Error::source`], so that a printed chain (`anyhow`'s `{:#}`) says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a readable CSV file: {message}", path.display())]
    Csv { path: PathBuf, message: String },
    #[error("{}: missing column '{column}' (header has: {found})", path.display())]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("{}: {row}", path.display())]
    BadRow { path: PathBuf, row: BadRow },
    #[error("{}: no usable rows", path.display())]
    Empty { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    /// An image larger than the decoder's limits (checked from its header, before decoding).
    #[error("{}: {message}", path.display())]
    ImageTooLarge { path: PathBuf, message: String },
    #[error("{}: invalid normalizer: {message}", path.display())]
    Normalizer { path: PathBuf, message: String },
    #[error("inconsistent dataset: {0}")]
    Inconsistent(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
