//! D-POEM: parameter-free decentralized zeroth-order optimization (the D-POEM paper; our
//! reconstruction of its formulas is in `docs/protocols.md`).

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::topology::{Graph, GraphSpec, Mixing, TopologyKind, Weights};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Quantity, Round, Rule, Smoothing};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `kind = "dpoem"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoemConfig {
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
    /// Radius of the feasible ball `‖x‖ ≤ radius`.
    #[serde(default = "default_radius")]
    pub radius: f64,
    /// Smoothing radius `ν_i = smoothing · r̄_i/√d`.
    #[serde(default = "default_one")]
    pub smoothing: f64,
    /// Initial radius proxy, relative: `r_ε = r_epsilon · (1 + ‖x_0‖)` (as DoG).
    #[serde(default = "default_r_epsilon")]
    pub r_epsilon: f64,
}

fn default_radius() -> f64 {
    100.0
}
fn default_one() -> f64 {
    1.0
}
/// 0.1: DoG's own advice (1e-4 and below) assumes exact gradients; along zeroth-order estimates
/// the distance travelled grows slowly, so a start that small stalls (measured in
/// `experiments/dpoem_hinge.toml`: r_epsilon 0.01–10 all train, 1e-3 barely moves).
fn default_r_epsilon() -> f64 {
    0.1
}

impl Default for DpoemConfig {
    fn default() -> Self {
        DpoemConfig {
            topology: TopologyKind::Ring,
            p: super::default_p(),
            edges_file: None,
            weights: Weights::Metropolis,
            redraw: false,
            radius: default_radius(),
            smoothing: default_one(),
            r_epsilon: default_r_epsilon(),
        }
    }
}

impl ProtocolSpec for DpoemConfig {
    const NAME: &'static str = "dpoem";
    const SUMMARY: &'static str =
        "parameter-free ZO: DoG steps, radius and parameter consensus, projection";
    fn graph(&self) -> Option<GraphSpec> {
        Some(GraphSpec::new(self.topology, self.p, &self.edges_file, self.weights, self.redraw))
    }
    fn initial_radius(&self) -> Option<f64> {
        Some(self.r_epsilon)
    }
    fn validate(&self) -> Result<(), GossipError> {
        for (key, v) in
            [("radius", self.radius), ("smoothing", self.smoothing), ("r_epsilon", self.r_epsilon)]
        {
            if !(v > 0.0 && v.is_finite()) {
                return Err(GossipError::Config {
                    key: format!("protocol.{key}"),
                    problem: format!("must be positive and finite, got {v}"),
                });
            }
        }
        Ok(())
    }
    fn build(&self, n: usize, seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        let spec = self.graph().unwrap_or_else(|| unreachable!("a graph protocol"));
        Ok(Box::new(Dpoem::new(spec, n, seed, self.radius, self.smoothing)?))
    }
}

/// Per agent `i`, per round:
/// 1. `r_i ← max(r_i, ‖x_i − x_0‖)`, then `r_i ← Σ_j W_ij r_j` (consensus on the radius proxy);
/// 2. a symmetric two-point estimate `g_i` at `x_i` with smoothing radius
///    `ν_i = smoothing · r̄_i/√d` (the `[zo]` estimator; `central_difference` with `sphere`);
/// 3. `x_i ← Σ_j W_ij x_j`, then the DoG step `G_i ← G_i + ‖g_i‖²`, `x_i ← x_i − (r̄_i/√G_i)·g_i`;
/// 4. projection onto the ball `‖x‖ ≤ radius`;
/// 5. `x̄_i ← x̄_i + r̄_i·x_i`: the radius-weighted average of iterates, reported on its own.
#[derive(Debug, Clone)]
pub struct Dpoem {
    spec: GraphSpec,
    graph: Graph,
    mixing: Mixing,
    /// Radius of the feasible ball.
    pub radius: f64,
    /// ν's multiple of `r̄_i/√d`.
    pub smoothing: f64,
}

impl Dpoem {
    /// D-POEM on the graph `spec` draws for `n` nodes.
    pub fn new(
        spec: GraphSpec,
        n: usize,
        seed: u64,
        radius: f64,
        smoothing: f64,
    ) -> Result<Dpoem, GossipError> {
        let graph = Graph::build(&spec, n, seed)?;
        let mixing = Mixing::new(&graph, spec.weights);
        Ok(Dpoem { spec, graph, mixing, radius, smoothing })
    }
}

impl Protocol for Dpoem {
    fn name(&self) -> &'static str {
        "dpoem"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let w = super::dpsgd::Dpsgd::mixing_for(&self.spec, &self.graph, &self.mixing, ctx)?;
        let all = all_nodes(n);
        Ok(Round {
            ops: vec![
                Op::TrackRadius { nodes: all.clone() },
                w.op(Quantity::Radius),
                Op::Estimate {
                    nodes: all.clone(),
                    oracle: Oracle::Own,
                    smoothing: Smoothing::Radius { scale: self.smoothing },
                },
                w.op(Quantity::Parameters),
                Op::Apply { nodes: all.clone(), rule: Rule::DistanceOverGradients },
                Op::Project { nodes: all.clone(), radius: self.radius },
                Op::Accumulate { nodes: all },
            ],
            interactions: n as f64 / 2.0,
        })
    }

    fn mixing(&self) -> Option<&Mixing> {
        Some(&self.mixing)
    }
}
