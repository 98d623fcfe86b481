//! Errors that name the file and the problem.

use std::path::PathBuf;

/// What went wrong while reading, checking or fetching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's contents are not what its format promises.
    #[error("{path}: {problem}")]
    Format {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What is wrong, with the expected and found values.
        problem: String,
    },
    /// Images and labels disagree, or a required file is missing.
    #[error("{0}")]
    Inconsistent(String),
    /// A decompressed file's sha256 is not the published one.
    #[error("{file}: sha256 {got} does not match the expected {expected}")]
    Checksum {
        /// The file name.
        file: String,
        /// The published checksum.
        expected: String,
        /// What the file hashes to.
        got: String,
    },
    /// Fetching a file failed on every mirror.
    #[error("could not download {file}: {reason}")]
    Download {
        /// The file name.
        file: String,
        /// The errors from each mirror.
        reason: String,
    },
}

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        DataError::Format { path: path.into(), problem: problem.into() }
    }
}
