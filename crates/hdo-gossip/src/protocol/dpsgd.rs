//! D-PSGD (Lian et al. 2017): local steps, then mixing with the graph's neighbours by `W`.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::topology::{Graph, GraphSpec, Mixing, TopologyKind, Weights};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Quantity, Round};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `kind = "dpsgd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpsgdConfig {
    /// The graph.
    #[serde(default)]
    pub topology: TopologyKind,
    /// Edge probability of `erdos_renyi`.
    #[serde(default = "super::default_p")]
    pub p: f64,
    /// Edge list of `file`.
    #[serde(default)]
    pub edges_file: Option<PathBuf>,
    /// Mixing weights.
    #[serde(default)]
    pub weights: Weights,
    /// A fresh graph (or node labelling) every round.
    #[serde(default)]
    pub redraw: bool,
}

impl Default for DpsgdConfig {
    fn default() -> Self {
        DpsgdConfig {
            topology: TopologyKind::Ring,
            p: super::default_p(),
            edges_file: None,
            weights: Weights::Metropolis,
            redraw: false,
        }
    }
}

impl ProtocolSpec for DpsgdConfig {
    const NAME: &'static str = "dpsgd";
    const SUMMARY: &'static str =
        "every node steps, then mixes with its graph neighbours by W (D-PSGD)";
    fn graph(&self) -> Option<GraphSpec> {
        Some(GraphSpec::new(self.topology, self.p, &self.edges_file, self.weights, self.redraw))
    }
    fn build(&self, n: usize, seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        let spec = self.graph().unwrap_or_else(|| unreachable!("a graph protocol"));
        Ok(Box::new(Dpsgd::new(spec, n, seed)?))
    }
}

/// Every node takes a local step with its own estimator (FO, ZO or both in one population), then
/// `x_i ← Σ_j W_ij x_j` simultaneously ("adapt, then combine").
#[derive(Debug, Clone)]
pub struct Dpsgd {
    spec: GraphSpec,
    graph: Graph,
    mixing: Mixing,
}

impl Dpsgd {
    /// D-PSGD on the graph `spec` draws for `n` nodes.
    pub fn new(spec: GraphSpec, n: usize, seed: u64) -> Result<Dpsgd, GossipError> {
        let graph = Graph::build(&spec, n, seed)?;
        let mixing = Mixing::new(&graph, spec.weights);
        Ok(Dpsgd { spec, graph, mixing })
    }

    /// This round's mixing matrix.
    pub(crate) fn mixing_for(
        spec: &GraphSpec,
        graph: &Graph,
        mixing: &Mixing,
        ctx: &Context<'_>,
    ) -> Result<Mixing, GossipError> {
        if spec.redraw {
            Ok(Mixing::new(&graph.for_round(spec, ctx.seed, ctx.round)?, spec.weights))
        } else {
            Ok(mixing.clone())
        }
    }
}

impl Protocol for Dpsgd {
    fn name(&self) -> &'static str {
        "dpsgd"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let w = Dpsgd::mixing_for(&self.spec, &self.graph, &self.mixing, ctx)?;
        Ok(Round {
            ops: vec![
                Op::Step { nodes: all_nodes(n), oracle: Oracle::Own },
                w.op(Quantity::Parameters),
            ],
            interactions: n as f64 / 2.0,
        })
    }

    fn mixing(&self) -> Option<&Mixing> {
        Some(&self.mixing)
    }
}
