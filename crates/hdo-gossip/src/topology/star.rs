//! The star: a hub and its spokes — the shape of a parameter server.

use super::Graph;

/// Node 0 connected to every other node.
pub(super) fn graph(n: usize) -> Graph {
    Graph::from_edges(n, (1..n).map(|i| (0, i)))
}
