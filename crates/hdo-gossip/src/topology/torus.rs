//! The 2-D torus: a wrap-around grid.

use super::Graph;

/// An `a × b` wrap-around grid with `a` the largest divisor of `n` not above `√n`; node
/// `r·b + c` talks to its four grid neighbours (fewer when a side is 1 or 2). With `n` prime,
/// `a = 1`: a ring.
pub(super) fn graph(n: usize) -> Graph {
    let a = (1..=n).take_while(|a| a * a <= n).filter(|a| n.is_multiple_of(*a)).last().unwrap_or(1);
    let b = n / a.max(1);
    let at = |r: usize, c: usize| (r % a) * b + (c % b);
    let edges = (0..a).flat_map(|r| {
        (0..b).flat_map(move |c| [(at(r, c), at(r + 1, c)), (at(r, c), at(r, c + 1))])
    });
    Graph::from_edges(n, edges)
}
