//! The complete graph: everyone talks to everyone (W = 11ᵀ/n with either weight rule).

use super::Graph;

/// Every pair.
pub(super) fn graph(n: usize) -> Graph {
    Graph::from_edges(n, (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))))
}
