//! Library errors. Every variant names the file (or files) involved, so a user
//! scoring hundreds of cases knows which one to look at.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or is not a volume we accept.
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },

    /// Ground truth and prediction do not share a voxel grid.
    #[error("geometry mismatch between {} and {}: {detail}", gt.display(), pred.display())]
    Geometry { gt: PathBuf, pred: PathBuf, detail: String },

    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Folder pairing problems (missing cases, duplicate ids, empty folders).
    #[error("{0}")]
    Dataset(String),

    /// No usable GPU, or a GPU operation failed (validation, out of memory, device lost).
    #[error("GPU: {0}")]
    Gpu(String),

    /// Two results that must not be compared or merged (different settings or
    /// case sets); the message names what differs.
    #[error("{0}")]
    Incomparable(String),

    /// An option value that cannot be honoured.
    #[error("invalid option: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn input(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

impl Error {
    /// Attach the file (a model, a mask) to an error raised while running or
    /// labelling it, keeping the error's kind.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Error {
        match self {
            Error::Gpu(m) => Error::Gpu(format!("{}: {m}", path.display())),
            Error::Config(m) => Error::input(path, m),
            e => e,
        }
    }
}
