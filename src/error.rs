//! The one error type of the `axonal` crate.

use axonal_kernels::KernelError;
use std::fmt;
use std::path::PathBuf;

/// What went wrong building, running, training, loading or saving a model.
#[derive(Debug)]
pub enum Error {
    /// A kernel rejected its arguments (shapes, lengths, hyper-parameters).
    Kernel(KernelError),
    /// A tensor's shape does not fit where it is used.
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// A setting (layer, optimizer, graph wiring) is out of its domain.
    Invalid { what: String, reason: String },
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its contents are not what its format requires.
    Format { path: PathBuf, reason: String },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl fmt::Display,
        got: impl fmt::Display,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl fmt::Display) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Kernel(e) => write!(f, "{e}"),
            Error::Shape {
                what,
                expected,
                got,
            } => write!(
                f,
                "shape mismatch in {what}: expected {expected}, got {got}"
            ),
            Error::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Kernel(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<KernelError> for Error {
    fn from(e: KernelError) -> Self {
        Error::Kernel(e)
    }
}
