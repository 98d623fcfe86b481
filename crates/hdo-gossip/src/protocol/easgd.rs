//! EASGD (Zhang, Choromanska, LeCun 2015), synchronous: elastic averaging with a centre variable.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Quantity, Round, Row, Rule, Slot, Smoothing};
use serde::{Deserialize, Serialize};

/// `kind = "easgd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EasgdConfig {
    /// Moving rate β of the centre; each worker's elastic coefficient is `α = β/n`.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Communication period τ: the elastic step every τ-th step (1 = every step).
    #[serde(default = "default_period")]
    pub period: u64,
}

fn default_beta() -> f64 {
    0.43
}
fn default_period() -> u64 {
    1
}

impl Default for EasgdConfig {
    fn default() -> Self {
        EasgdConfig { beta: default_beta(), period: default_period() }
    }
}

impl ProtocolSpec for EasgdConfig {
    const NAME: &'static str = "easgd";
    const SUMMARY: &'static str = "elastic averaging: workers and a centre variable pull each other";
    fn validate(&self) -> Result<(), GossipError> {
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(GossipError::Config {
                key: "protocol.beta".into(),
                problem: format!("the moving rate must be in (0, 1], got {}", self.beta),
            });
        }
        if self.period == 0 {
            return Err(GossipError::Config {
                key: "protocol.period".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(Easgd { beta: self.beta, period: self.period }))
    }
}

/// Every worker estimates at `x_i`; on communication steps (every `period`-th), with `α = β/n`
/// and the centre `c` (auxiliary vector 0, starting as the initial model), the symmetric elastic
/// update reads the values from before it: `x_i ← (1 − α)x_i + α·c`, `c ← (1 − nα)c + α·Σx_i`;
/// then every worker applies its estimate (computed at the old `x_i`), which is EASGD's
/// `x_i ← x_i − η·g_i − α(x_i − c)`.
#[derive(Debug, Clone, Copy)]
pub struct Easgd {
    /// β.
    pub beta: f64,
    /// τ.
    pub period: u64,
}

impl Easgd {
    /// The elastic step of `n` workers as one simultaneous mixing.
    pub fn elastic(&self, n: usize) -> Op {
        let alpha = self.beta / n as f64;
        let centre = Slot::Aux(0);
        let mut rows: Vec<Row> = (0..n)
            .map(|i| Row {
                target: Slot::Node(i),
                weights: vec![(Slot::Node(i), 1.0 - alpha), (centre, alpha)],
            })
            .collect();
        let mut weights: Vec<(Slot, f64)> = (0..n).map(|i| (Slot::Node(i), alpha)).collect();
        weights.push((centre, 1.0 - n as f64 * alpha));
        rows.push(Row { target: centre, weights });
        Op::Mix { rows, quantity: Quantity::Parameters }
    }
}

impl Protocol for Easgd {
    fn name(&self) -> &'static str {
        "easgd"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let mut ops = vec![Op::Estimate {
            nodes: all_nodes(n),
            oracle: Oracle::Own,
            smoothing: Smoothing::Configured,
        }];
        if ctx.round.is_multiple_of(self.period) && n > 0 {
            ops.push(self.elastic(n));
        }
        ops.push(Op::Apply { nodes: all_nodes(n), rule: Rule::Optimizer });
        Ok(Round { ops, interactions: n as f64 / 2.0 })
    }

    fn aux_vectors(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Uniform;
    use crate::protocol::tests::plan;

    #[test]
    fn the_elastic_step_keeps_worker_and_centre_mass_and_sends_two_vectors_per_worker() {
        let e = Easgd { beta: 0.43, period: 2 };
        let Op::Mix { rows, .. } = e.elastic(4) else { panic!() };
        for r in &rows {
            let total: f64 = r.weights.iter().map(|w| w.1).sum();
            assert!((total - 1.0).abs() < 1e-12, "{r:?}");
        }
        // each worker sends x_i to the centre, the centre sends c to each worker
        assert_eq!(e.elastic(4).values_sent(&Uniform(1)), 8);
        assert_eq!(plan(&e, 0, 4, 0).ops.len(), 3);
        assert_eq!(plan(&e, 1, 4, 0).ops.len(), 2, "no elastic step off period");
    }
}
