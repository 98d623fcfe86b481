//! The exponential graph of SGP (Assran et al. 2019) and BlueFog: peers at power-of-two hops.

use super::Graph;

/// `i — i + 2^k (mod n)` for every `2^k < n`. SGP and BlueFog use the directed version; here both
/// directions are kept, so the mixing matrix is symmetric like every other topology's.
pub(super) fn graph(n: usize) -> Graph {
    let hops: Vec<usize> = (0..usize::BITS).map(|k| 1usize << k).take_while(|&h| h < n).collect();
    Graph::from_edges(n, (0..n).flat_map(|i| hops.iter().map(move |&h| (i, (i + h) % n))))
}
