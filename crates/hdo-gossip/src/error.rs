//! Errors of building a protocol: a bad topology setting or edge list.

use std::path::PathBuf;

/// Why a protocol could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// A config value that cannot work.
    #[error("config key {key}: {problem}")]
    Config {
        /// The key, e.g. `protocol.p`.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// An edge list that cannot be read.
    #[error("edge list {}{}: {problem}", path.display(), if *line > 0 { format!(", line {line}") } else { String::new() })]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A graph some node cannot reach.
    #[error(
        "the {topology} graph of {n} nodes is not connected: gossip could never reach consensus"
    )]
    Disconnected {
        /// Topology name.
        topology: &'static str,
        /// Nodes.
        n: usize,
    },
}
