//! HO-SGD (hybrid-order distributed SGD, Algorithm 1 of the HO-SGD paper).

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Round, Rule, Smoothing};
use serde::{Deserialize, Serialize};

/// `kind = "hosgd"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoSgdConfig {
    /// τ: a first-order iteration every `period` (1 = synchronous SGD, 0 = never).
    #[serde(default = "default_period")]
    pub period: u64,
}

fn default_period() -> u64 {
    8
}

impl Default for HoSgdConfig {
    fn default() -> Self {
        HoSgdConfig { period: default_period() }
    }
}

impl ProtocolSpec for HoSgdConfig {
    const NAME: &'static str = "hosgd";
    const SUMMARY: &'static str =
        "identical replicas; FO step every τ, else ZO steps sending one scalar";
    fn first_order_workers(&self) -> bool {
        true
    }
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(HoSgd { period: self.period }))
    }
}

/// `m` workers keep identical replicas. At iteration `t`, if `t mod τ = 0` every worker
/// computes a minibatch gradient by backprop, otherwise a zeroth-order estimate along a direction
/// drawn from a pre-shared seed (the `[zo]` estimator: forward differences with `sphere`
/// directions give the paper's `(d/μ)[F(x+μv) − F(x)]·v`). Every worker sends its estimate to the
/// others — `d` values for a gradient, its coefficients (one scalar per direction) for a ZO
/// estimate, since the others regenerate the direction from the seed — and all apply the same
/// mean: `d + τ − 1` scalars per worker per τ iterations with one direction.
///
/// `period = 1` is synchronous SGD; `period = 0` never takes a first-order step (distributed
/// ZO-SGD). Algorithm 1 starts with a first-order step at `t = 0`, so `period ≥ steps` is ZO-SGD
/// after one FO step.
#[derive(Debug, Clone, Copy)]
pub struct HoSgd {
    /// τ.
    pub period: u64,
}

impl HoSgd {
    /// Whether iteration `t` is a first-order one.
    pub fn first_order_at(&self, t: u64) -> bool {
        self.period > 0 && t.is_multiple_of(self.period)
    }
}

impl Protocol for HoSgd {
    fn name(&self) -> &'static str {
        "hosgd"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let oracle = if self.first_order_at(ctx.round) { Oracle::First } else { Oracle::Zeroth };
        Ok(Round {
            ops: vec![
                Op::Estimate { nodes: all_nodes(n), oracle, smoothing: Smoothing::Configured },
                Op::Share { groups: if n > 1 { vec![all_nodes(n)] } else { vec![] } },
                Op::Apply { nodes: all_nodes(n), rule: Rule::Optimizer },
            ],
            interactions: n as f64 / 2.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Sizes;
    use crate::protocol::tests::plan;

    /// Parameters of d values; a ZO estimate of one coefficient.
    struct Hybrid {
        d: u64,
        zo: bool,
    }
    impl Sizes for Hybrid {
        fn parameters(&self) -> u64 {
            self.d
        }
        fn estimate(&self, _: usize) -> u64 {
            if self.zo { 1 } else { self.d }
        }
    }

    #[test]
    fn sends_d_plus_tau_minus_one_scalars_per_worker_per_period() {
        let (m, d) = (4usize, 1000u64);
        for tau in [1u64, 2, 8] {
            let p = HoSgd { period: tau };
            let mut sent = 0;
            for t in 0..3 * tau {
                let round = plan(&p, t, m, 0);
                let zo = !p.first_order_at(t);
                assert!(matches!(round.ops[0], Op::Estimate { oracle, .. }
                    if oracle == if zo { Oracle::Zeroth } else { Oracle::First }));
                sent += round.values_sent(&Hybrid { d, zo });
            }
            assert_eq!(sent, 3 * m as u64 * (d + tau - 1), "τ = {tau}");
        }
        assert!((0..50).all(|t| !HoSgd { period: 0 }.first_order_at(t)));
    }
}
