//! Erdős–Rényi random graphs G(n, p), drawn until connected (D-POEM's experiments).

use super::Graph;
use crate::error::GossipError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Draws before giving up on a `p` too small to connect `n` nodes.
const ATTEMPTS: u32 = 1000;

/// Each of the `n(n−1)/2` pairs is an edge with probability `p`, from `seed`; redrawn (from the
/// same stream) until the graph is connected.
pub(super) fn graph(n: usize, p: f64, seed: u64) -> Result<Graph, GossipError> {
    if !(p > 0.0 && p <= 1.0) {
        return Err(GossipError::Config {
            key: "protocol.p".into(),
            problem: format!("edge probability must be in (0, 1], got {p}"),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..ATTEMPTS {
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if rng.random_bool(p) {
                    edges.push((i, j));
                }
            }
        }
        let g = Graph::from_edges(n, edges);
        if g.is_connected() {
            return Ok(g);
        }
    }
    Err(GossipError::Config {
        key: "protocol.p".into(),
        problem: format!(
            "no connected Erdős–Rényi graph of {n} nodes in {ATTEMPTS} draws with p = {p}; \
             connectivity needs p above about ln(n)/n = {:.3}",
            (n as f64).ln() / n as f64
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_density_is_p() {
        let g = graph(200, 0.1, 4).expect("graph");
        let density = g.edges() as f64 / (200.0 * 199.0 / 2.0);
        assert!((density - 0.1).abs() < 0.01, "{density}");
        assert_eq!(g, graph(200, 0.1, 4).expect("again"));
        assert_ne!(g, graph(200, 0.1, 5).expect("other seed"));
    }

    #[test]
    fn a_hopeless_p_is_an_error_naming_it() {
        let e = graph(50, 0.001, 1).expect_err("too sparse");
        assert!(e.to_string().contains("protocol.p"), "{e}");
        assert!(graph(5, 0.0, 1).is_err());
        assert!(graph(5, f64::NAN, 1).is_err());
    }
}
