//! Communication graphs and their mixing matrices.
//!
//! A [`Graph`] is an undirected simple graph over the nodes; [`Weights`] turn it into a
//! symmetric, doubly stochastic mixing matrix `W` ([`Mixing`]), whose spectral gap `1 − |λ₂(W)|`
//! bounds how fast gossip averages. Adding a topology: one file here, one variant in
//! [`TopologyKind`] and its arm in [`Graph::build`].

mod complete;
mod erdos_renyi;
mod exponential;
mod file;
mod ring;
mod spectral;
mod star;
mod torus;
mod weights;

pub use spectral::eigenvalues_symmetric;
pub use weights::{Mixing, Weights};

use crate::error::GossipError;
use crate::rng::mix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `topology` key of graph protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// Cycle `i — i+1 (mod n)`.
    #[default]
    Ring,
    /// 2-D wrap-around grid `a × b`, `a` the largest divisor of n not above √n (a ring if n is
    /// prime).
    Torus,
    /// Every pair connected.
    Complete,
    /// Node 0 connected to every other node.
    Star,
    /// Each pair connected with probability `p`, seeded, redrawn until connected.
    ErdosRenyi,
    /// `i — i ± 2^k (mod n)` for `2^k < n`: the exponential graph of SGP / BlueFog, made
    /// undirected so that `W` is symmetric.
    Exponential,
    /// An edge list read from `edges_file`.
    File,
}

impl TopologyKind {
    /// Every kind with one line on it.
    pub const KINDS: [(&'static str, &'static str); 7] = [
        ("ring", "cycle i — i+1"),
        ("torus", "2-D wrap-around grid a×b (a the largest divisor of n ≤ √n)"),
        ("complete", "every pair connected"),
        ("star", "node 0 connected to all others"),
        ("erdos_renyi", "each edge with probability p, seeded, redrawn until connected"),
        ("exponential", "i — i ± 2^k (SGP / BlueFog exponential graph, undirected)"),
        ("file", "an edge list `i j` per line from edges_file (0-based)"),
    ];

    /// Config name.
    pub fn name(self) -> &'static str {
        Self::KINDS[self as usize].0
    }
}

/// How a graph protocol draws its graph: the shared keys of `dpsgd` and `dpoem`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    /// Which graph.
    pub kind: TopologyKind,
    /// Edge probability (`erdos_renyi`).
    pub p: f64,
    /// Edge list (`file`).
    pub edges_file: Option<PathBuf>,
    /// Mixing weights.
    pub weights: Weights,
    /// A fresh graph every round (`erdos_renyi` draws anew, the others relabel their nodes by a
    /// random permutation).
    pub redraw: bool,
}

impl GraphSpec {
    /// The spec of a graph protocol's keys.
    pub fn new(
        kind: TopologyKind,
        p: f64,
        edges_file: &Option<PathBuf>,
        weights: Weights,
        redraw: bool,
    ) -> GraphSpec {
        GraphSpec { kind, p, edges_file: edges_file.clone(), weights, redraw }
    }
}

/// An undirected simple graph: sorted neighbour lists, no self-loops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// `neighbours[i]`, ascending.
    pub neighbours: Vec<Vec<usize>>,
}

impl Graph {
    /// The graph from its edges (either orientation; duplicates and self-loops dropped).
    pub fn from_edges(n: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Graph {
        let mut neighbours = vec![Vec::new(); n];
        for (a, b) in edges {
            if a != b && a < n && b < n {
                neighbours[a].push(b);
                neighbours[b].push(a);
            }
        }
        for l in &mut neighbours {
            l.sort_unstable();
            l.dedup();
        }
        Graph { neighbours }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// Number of edges.
    pub fn edges(&self) -> usize {
        self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// Whether every node is reachable from node 0.
    pub fn is_connected(&self) -> bool {
        let n = self.len();
        if n <= 1 {
            return true;
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &self.neighbours[i] {
                if !std::mem::replace(&mut seen[j], true) {
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    }

    /// The same graph with node `i` renamed `perm[i]`.
    pub fn relabel(&self, perm: &[usize]) -> Graph {
        let edges = self
            .neighbours
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.iter().map(move |&j| (perm[i], perm[j])));
        Graph::from_edges(self.len(), edges)
    }

    /// The graph `spec` describes for `n` nodes, drawn from `seed` where it is random.
    pub fn build(spec: &GraphSpec, n: usize, seed: u64) -> Result<Graph, GossipError> {
        let graph = match spec.kind {
            TopologyKind::Ring => ring::graph(n),
            TopologyKind::Torus => torus::graph(n),
            TopologyKind::Complete => complete::graph(n),
            TopologyKind::Star => star::graph(n),
            TopologyKind::ErdosRenyi => erdos_renyi::graph(n, spec.p, seed)?,
            TopologyKind::Exponential => exponential::graph(n),
            TopologyKind::File => {
                let path = spec.edges_file.as_ref().ok_or_else(|| GossipError::Config {
                    key: "protocol.edges_file".into(),
                    problem: "topology = \"file\" needs the path of an edge list".into(),
                })?;
                file::graph(path, n)?
            }
        };
        if !graph.is_connected() {
            return Err(GossipError::Disconnected { topology: spec.kind.name(), n });
        }
        Ok(graph)
    }

    /// This graph for round `round`: itself, or with `redraw` a fresh draw (`erdos_renyi`) or a
    /// random relabelling (the others), a pure function of `(seed, round)`.
    pub fn for_round(&self, spec: &GraphSpec, seed: u64, round: u64) -> Result<Graph, GossipError> {
        if !spec.redraw {
            return Ok(self.clone());
        }
        let round_seed = mix(seed ^ mix(round.wrapping_add(0x6A09_E667)));
        if spec.kind == TopologyKind::ErdosRenyi {
            return Graph::build(spec, self.len(), round_seed);
        }
        let mut perm: Vec<usize> = (0..self.len()).collect();
        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(round_seed));
        Ok(self.relabel(&perm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(kind: TopologyKind) -> GraphSpec {
        GraphSpec { kind, p: 0.3, edges_file: None, weights: Weights::Metropolis, redraw: false }
    }

    #[test]
    fn every_topology_is_connected_and_simple() {
        for (name, _) in TopologyKind::KINDS {
            let kind: TopologyKind =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(name))
                .expect(name);
            if kind == TopologyKind::File {
                continue;
            }
            assert_eq!(kind.name(), name);
            for n in [1usize, 2, 3, 5, 12, 16, 17, 64] {
                let g = Graph::build(&spec(kind), n, 9).expect(name);
                assert_eq!(g.len(), n);
                assert!(g.is_connected(), "{name} {n}");
                for (i, l) in g.neighbours.iter().enumerate() {
                    assert!(!l.contains(&i), "{name}: self-loop");
                    for &j in l {
                        assert!(g.neighbours[j].contains(&i), "{name}: asymmetric");
                    }
                }
            }
        }
    }

    #[test]
    fn degrees_are_as_named() {
        let deg = |g: &Graph| g.neighbours.iter().map(Vec::len).collect::<Vec<_>>();
        assert!(deg(&ring::graph(10)).iter().all(|&d| d == 2));
        assert!(deg(&torus::graph(16)).iter().all(|&d| d == 4));
        assert!(deg(&complete::graph(7)).iter().all(|&d| d == 6));
        let s = deg(&star::graph(6));
        assert_eq!(s, vec![5, 1, 1, 1, 1, 1]);
        // 16 nodes: ±1, ±2, ±4, ±8 (8 = −8): 7 neighbours
        assert!(deg(&exponential::graph(16)).iter().all(|&d| d == 7));
    }

    #[test]
    fn redrawing_is_a_pure_function_of_seed_and_round() {
        for kind in [TopologyKind::ErdosRenyi, TopologyKind::Ring] {
            let s = GraphSpec { redraw: true, ..spec(kind) };
            let g = Graph::build(&s, 20, 1).expect("graph");
            let a = g.for_round(&s, 1, 3).expect("a");
            assert_eq!(a, g.for_round(&s, 1, 3).expect("again"));
            assert_ne!(a, g.for_round(&s, 1, 4).expect("b"));
            assert_eq!(a.edges(), if kind == TopologyKind::Ring { 20 } else { a.edges() });
        }
    }
}
