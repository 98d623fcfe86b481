//! The ring: each node talks to its two neighbours.

use super::Graph;

/// `i — i+1 (mod n)`.
pub(super) fn graph(n: usize) -> Graph {
    Graph::from_edges(n, (0..n).map(|i| (i, (i + 1) % n)))
}
