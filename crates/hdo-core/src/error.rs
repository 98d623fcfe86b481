//! The library's errors: each names what the user has to fix.

use std::path::PathBuf;

/// Everything that can stop an experiment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config key or value is wrong (`key` is its dotted path; empty for syntax errors).
    #[error("config{}: {problem}", if key.is_empty() { String::new() } else { format!(" key `{key}`") })]
    Config {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// Reading or checking data failed.
    #[error(transparent)]
    Data(#[from] hdo_datasets::DataError),
    /// A node's loss became non-finite or exceeded `max_loss`.
    #[error(
        "node {node} ({kind}) diverged at round {round}: training loss {loss} (limit max_loss = {limit}); lower {kind}.lr or raise max_loss"
    )]
    Diverged {
        /// Node index.
        node: usize,
        /// `fo` or `zo`.
        kind: &'static str,
        /// Round at which it happened.
        round: u64,
        /// The offending loss.
        loss: f32,
        /// The configured limit.
        limit: f64,
    },
    /// Writing an output failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A finished run's directory cannot be read back.
    #[error("run {path}: {problem}")]
    Run {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A checkpoint cannot be read, or does not belong to this run.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The compute device is unusable.
    #[error("{0}")]
    Device(String),
    /// A model pass cannot run as asked (a stack that does not fit the architecture, a pass the
    /// model does not have).
    #[error("model: {0}")]
    Model(String),
    /// Drawing the plot failed.
    #[error("plot {path}: {problem}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
