//! Mixing weights on a graph: symmetric and doubly stochastic by construction.

use super::Graph;
use crate::ops::{Op, Quantity, Row, Slot};
use serde::{Deserialize, Serialize};

/// The `weights` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Metropolis–Hastings: `W_ij = 1/(1 + max(deg_i, deg_j))` on edges, the rest on the diagonal.
    #[default]
    Metropolis,
    /// `W_ij = 1/(1 + Δ)` on edges (Δ the largest degree), the rest on the diagonal.
    MaxDegree,
}

/// A sparse mixing matrix `W`: `rows[i]` holds `(j, W_ij)` for `j = i` and i's neighbours,
/// ascending in `j`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixing {
    /// The rows.
    pub rows: Vec<Vec<(usize, f64)>>,
}

impl Mixing {
    /// `W` of `graph` under `weights`. Off-diagonal weights depend only on the unordered pair, so
    /// `W` is symmetric; each diagonal entry completes its row to 1, so `W` is doubly stochastic.
    /// Both rules keep `W_ii ≥ 1/(1 + Δ) > 0`.
    pub fn new(graph: &Graph, weights: Weights) -> Mixing {
        let deg: Vec<usize> = graph.neighbours.iter().map(Vec::len).collect();
        let max = deg.iter().copied().max().unwrap_or(0);
        let rows = graph
            .neighbours
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let off: Vec<(usize, f64)> = l
                    .iter()
                    .map(|&j| {
                        let w = match weights {
                            Weights::Metropolis => 1.0 / (1.0 + deg[i].max(deg[j]) as f64),
                            Weights::MaxDegree => 1.0 / (1.0 + max as f64),
                        };
                        (j, w)
                    })
                    .collect();
                let diagonal = 1.0 - off.iter().map(|(_, w)| w).sum::<f64>();
                let mut row = off;
                row.push((i, diagonal));
                row.sort_by_key(|&(j, _)| j);
                row
            })
            .collect();
        Mixing { rows }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether `W` is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `W` as a dense row-major matrix.
    pub fn dense(&self) -> Vec<Vec<f64>> {
        let n = self.len();
        let mut w = vec![vec![0.0; n]; n];
        for (i, row) in self.rows.iter().enumerate() {
            for &(j, v) in row {
                w[i][j] = v;
            }
        }
        w
    }

    /// `y = W x`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.rows.iter().map(|row| row.iter().map(|&(j, w)| w * x[j]).sum()).collect()
    }

    /// The operation `x_i ← Σ_j W_ij x_j` on `quantity`.
    pub fn op(&self, quantity: Quantity) -> Op {
        let rows = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.len() > 1)
            .map(|(i, r)| Row {
                target: Slot::Node(i),
                weights: r.iter().map(|&(j, w)| (Slot::Node(j), w)).collect(),
            })
            .collect();
        Op::Mix { rows, quantity }
    }

    /// `|λ₂(W)|`: the largest magnitude among the eigenvalues other than the top one (which is 1),
    /// by a dense symmetric eigensolver; `None` above [`SPECTRAL_LIMIT`] nodes.
    pub fn second_eigenvalue(&self) -> Option<f64> {
        let n = self.len();
        if n > SPECTRAL_LIMIT {
            return None;
        }
        if n < 2 {
            return Some(0.0);
        }
        let mut ev = super::eigenvalues_symmetric(self.dense());
        ev.sort_by(|a, b| b.total_cmp(a));
        Some(ev[1..].iter().map(|v| v.abs()).fold(0.0, f64::max))
    }

    /// The spectral gap `1 − |λ₂(W)|` (see [`Mixing::second_eigenvalue`]).
    pub fn spectral_gap(&self) -> Option<f64> {
        self.second_eigenvalue().map(|l| 1.0 - l)
    }
}

/// Largest population whose spectral gap is computed (a dense `O(n³)` solve at start).
pub const SPECTRAL_LIMIT: usize = 1024;

#[cfg(test)]
mod tests {
    use super::super::tests::spec;
    use super::super::{Graph, TopologyKind};
    use super::*;

    fn all_graphs() -> Vec<(String, Graph)> {
        let mut out = Vec::new();
        for kind in [
            TopologyKind::Ring,
            TopologyKind::Torus,
            TopologyKind::Complete,
            TopologyKind::Star,
            TopologyKind::ErdosRenyi,
            TopologyKind::Exponential,
        ] {
            for n in [2usize, 3, 8, 16, 20, 64] {
                let g = Graph::build(&spec(kind), n, 11).expect("graph");
                out.push((format!("{} {n}", kind.name()), g));
            }
        }
        out
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // W[i][j] against W[j][i]: indices are the point
    fn both_rules_are_symmetric_and_doubly_stochastic() {
        for (name, g) in all_graphs() {
            for weights in [Weights::Metropolis, Weights::MaxDegree] {
                let w = Mixing::new(&g, weights).dense();
                let n = w.len();
                for i in 0..n {
                    let row: f64 = w[i].iter().sum();
                    let col: f64 = (0..n).map(|k| w[k][i]).sum();
                    assert!((row - 1.0).abs() < 1e-12, "{name} {weights:?}: row {i} sums to {row}");
                    assert!((col - 1.0).abs() < 1e-12, "{name}: column {i} sums to {col}");
                    assert!(w[i][i] > 0.0, "{name}: zero diagonal");
                    for j in 0..n {
                        assert_eq!(w[i][j], w[j][i], "{name}: W not symmetric at {i},{j}");
                        assert!(w[i][j] >= 0.0);
                    }
                }
            }
        }
    }

    /// A deterministic pseudo-random vector.
    fn vector(n: usize, salt: u64) -> Vec<f64> {
        (0..n)
            .map(|i| ((crate::rng::mix(i as u64 ^ salt) >> 11) as f64 / (1u64 << 53) as f64) - 0.5)
            .collect()
    }

    #[test]
    fn mixing_keeps_the_mean_and_contracts_by_lambda_two_squared() {
        for (name, g) in all_graphs() {
            let m = Mixing::new(&g, Weights::Metropolis);
            let lambda = m.second_eigenvalue().expect("small");
            let n = g.len();
            for salt in 0..20 {
                let x = vector(n, salt);
                let y = m.apply(&x);
                let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
                assert!((mean(&x) - mean(&y)).abs() < 1e-12, "{name}: mean moved");
                let gamma = |v: &[f64]| {
                    let mu = mean(v);
                    v.iter().map(|a| (a - mu).powi(2)).sum::<f64>() / n as f64
                };
                let (before, after) = (gamma(&x), gamma(&y));
                assert!(
                    after <= lambda * lambda * before * (1.0 + 1e-9) + 1e-15,
                    "{name}: Γ {before} → {after}, λ₂² = {}",
                    lambda * lambda
                );
            }
        }
    }

    #[test]
    fn spectral_gaps_match_closed_forms() {
        // ring of n with Metropolis weights 1/3: λ = 1/3 + 2/3·cos(2πk/n)
        let n = 16;
        let ring = Mixing::new(
            &Graph::build(&spec(TopologyKind::Ring), n, 0).expect("ring"),
            Weights::Metropolis,
        );
        let expected =
            1.0 - (1.0 / 3.0 + 2.0 / 3.0 * (2.0 * std::f64::consts::PI / n as f64).cos());
        assert!((ring.spectral_gap().expect("gap") - expected).abs() < 1e-9);
        // complete graph: W = 11ᵀ/n, λ₂ = 0
        let complete = Mixing::new(
            &Graph::build(&spec(TopologyKind::Complete), 9, 0).expect("k9"),
            Weights::Metropolis,
        );
        assert!(complete.second_eigenvalue().expect("λ") < 1e-9);
    }
}
