//! Leader SGD (Teng et al., NeurIPS 2019): workers pulled toward the best worker of their group
//! and the best worker overall.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Quantity, Round, Row, Rule, Slot, Smoothing};
use serde::{Deserialize, Serialize};

/// `kind = "lsgd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LsgdConfig {
    /// Groups G: workers `0..n` cut into G consecutive groups of sizes differing by at most one.
    #[serde(default = "default_groups")]
    pub groups: usize,
    /// λ: pull toward the group's (local) leader.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// λ_G: pull toward the global leader.
    #[serde(default = "default_lambda")]
    pub lambda_global: f64,
    /// τ: local leaders are recomputed (and pulled toward) every τ steps.
    #[serde(default = "default_tau")]
    pub tau: u64,
    /// τ_G: the global leader is recomputed (and pulled toward) every τ_G steps.
    #[serde(default = "default_tau")]
    pub tau_global: u64,
    /// k: a leader has the lowest mean training loss over its last k batches.
    #[serde(default = "default_k")]
    pub k: usize,
}

fn default_groups() -> usize {
    1
}
fn default_lambda() -> f64 {
    0.1
}
fn default_tau() -> u64 {
    1
}
fn default_k() -> usize {
    1
}

impl Default for LsgdConfig {
    fn default() -> Self {
        LsgdConfig {
            groups: default_groups(),
            lambda: default_lambda(),
            lambda_global: default_lambda(),
            tau: default_tau(),
            tau_global: default_tau(),
            k: default_k(),
        }
    }
}

impl ProtocolSpec for LsgdConfig {
    const NAME: &'static str = "lsgd";
    const SUMMARY: &'static str =
        "Leader SGD: pulls toward the lowest-loss worker of each group and overall";
    fn validate(&self) -> Result<(), GossipError> {
        let bad = |key: &str, problem: String| {
            Err(GossipError::Config { key: format!("protocol.{key}"), problem })
        };
        for (key, v) in [("lambda", self.lambda), ("lambda_global", self.lambda_global)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, format!("a pull strength in [0, 1], got {v}"));
            }
        }
        if self.lambda + self.lambda_global > 1.0 {
            return bad(
                "lambda",
                format!(
                    "lambda + lambda_global = {} would move a worker past its leaders; at most 1",
                    self.lambda + self.lambda_global
                ),
            );
        }
        for (key, v) in [("groups", self.groups as u64), ("tau", self.tau), ("tau_global", self.tau_global), ("k", self.k as u64)] {
            if v == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        Ok(())
    }
    fn build(&self, n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        if self.groups > n.max(1) {
            return Err(GossipError::Config {
                key: "protocol.groups".into(),
                problem: format!("{} groups for {n} workers", self.groups),
            });
        }
        Ok(Box::new(Lsgd(self.clone())))
    }
}

/// At step `t`, every worker estimates at `x`; when `t` is a positive multiple of τ (τ_G), each
/// group's local leader (the global leader) — the worker with the lowest mean loss over its last
/// k batches, ties to the lowest id, workers without a loss yet never leading — is chosen, and
/// every worker's row `x ← (1 − λ − λ_G)x + λ·x̃_local + λ_G·x̃_global` (a leader's pull toward
/// itself vanishes; values from before the operation) is mixed; then every worker applies its
/// estimate: `x ← x − η·g − λ(x − x̃_local) − λ_G(x − x̃_global)`. A leader broadcasts its
/// parameters to the workers it pulls (one vector each).
#[derive(Debug, Clone)]
pub struct Lsgd(pub LsgdConfig);

impl Lsgd {
    /// The workers of group `g` of `n`.
    pub fn group(&self, g: usize, n: usize) -> std::ops::Range<usize> {
        let (base, extra) = (n / self.0.groups, n % self.0.groups);
        let start = g * base + g.min(extra);
        start..start + base + usize::from(g < extra)
    }

    /// The leader among `members`: lowest mean recent loss, ties to the lowest id.
    pub fn leader(&self, ctx: &Context<'_>, members: std::ops::Range<usize>) -> Option<usize> {
        members
            .filter_map(|i| ctx.mean_recent_loss(i, self.0.k).filter(|l| l.is_finite()).map(|l| (i, l)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
    }
}

impl Protocol for Lsgd {
    fn name(&self) -> &'static str {
        "lsgd"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let c = &self.0;
        let t = ctx.round;
        let local = t > 0 && t.is_multiple_of(c.tau) && c.lambda > 0.0;
        let global = t > 0 && t.is_multiple_of(c.tau_global) && c.lambda_global > 0.0;
        let global_leader = if global { self.leader(ctx, 0..n) } else { None };
        let mut rows = Vec::new();
        for g in 0..c.groups.min(n) {
            let members = self.group(g, n);
            let local_leader = if local { self.leader(ctx, members.clone()) } else { None };
            for i in members {
                let mut weights: Vec<(Slot, f64)> = vec![(Slot::Node(i), 1.0)];
                for (leader, strength) in [(local_leader, c.lambda), (global_leader, c.lambda_global)] {
                    if let Some(l) = leader.filter(|&l| l != i) {
                        weights[0].1 -= strength;
                        match weights.iter_mut().find(|w| w.0 == Slot::Node(l)) {
                            Some(w) => w.1 += strength,
                            None => weights.push((Slot::Node(l), strength)),
                        }
                    }
                }
                if weights.len() > 1 {
                    weights.sort_by_key(|w| w.0);
                    rows.push(Row { target: Slot::Node(i), weights });
                }
            }
        }
        let mut ops = vec![Op::Estimate {
            nodes: all_nodes(n),
            oracle: Oracle::Own,
            smoothing: Smoothing::Configured,
        }];
        if !rows.is_empty() {
            ops.push(Op::Mix { rows, quantity: Quantity::Parameters });
        }
        ops.push(Op::Apply { nodes: all_nodes(n), rule: Rule::Optimizer });
        Ok(Round { ops, interactions: n as f64 / 2.0 })
    }

    fn loss_window(&self) -> usize {
        self.0.k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;
    use crate::message::Uniform;

    fn ctx<'a>(round: u64, kinds: &'a [Kind], losses: &'a [Vec<f32>]) -> Context<'a> {
        Context { round, seed: 0, kinds, losses }
    }

    #[test]
    fn leaders_have_the_lowest_recent_loss_and_are_recomputed_every_tau() {
        let cfg = LsgdConfig { groups: 2, k: 2, tau: 2, tau_global: 4, ..LsgdConfig::default() };
        let p = Lsgd(cfg);
        let kinds = [Kind::First; 5];
        // means over the last 2: 1.5, 0.75, 3, 0.5, (none)
        let losses = vec![vec![9.0, 1.0, 2.0], vec![0.5, 1.0], vec![3.0], vec![0.25, 0.75], vec![]];
        let c = ctx(4, &kinds, &losses);
        assert_eq!((p.group(0, 5), p.group(1, 5)), (0..3, 3..5));
        assert_eq!(p.leader(&c, 0..3), Some(1));
        assert_eq!(p.leader(&c, 3..5), Some(3), "a worker without losses never leads");
        assert_eq!(p.leader(&c, 0..5), Some(3));
        let round = p.plan(&c).unwrap();
        let Op::Mix { rows, .. } = &round.ops[1] else { panic!("{round:?}") };
        // worker 0: local leader 1, global leader 3
        assert_eq!(
            rows[0].weights,
            vec![(Slot::Node(0), 0.8), (Slot::Node(1), 0.1), (Slot::Node(3), 0.1)]
        );
        // worker 3 leads both: no row; worker 1 leads its group, pulled toward 3 only
        assert!(rows.iter().all(|r| r.target != Slot::Node(3)));
        let one = rows.iter().find(|r| r.target == Slot::Node(1)).unwrap();
        assert_eq!(one.weights, vec![(Slot::Node(1), 0.9), (Slot::Node(3), 0.1)]);
        // broadcasts: every pulled worker receives one vector per distinct leader
        let m = round.ops[1].values_sent(&Uniform(1));
        assert_eq!(m, rows.iter().map(|r| r.weights.len() as u64 - 1).sum::<u64>());
        // off period: no pull at all (round 1), only local at round 2, nothing at round 0
        for (t, mixes) in [(0u64, false), (1, false), (2, true), (3, false)] {
            let r = p.plan(&ctx(t, &kinds, &losses)).unwrap();
            assert_eq!(r.ops.len() == 3, mixes, "round {t}");
        }
    }

    #[test]
    fn no_pull_means_independent_steps() {
        let p = Lsgd(LsgdConfig { lambda: 0.0, lambda_global: 0.0, ..LsgdConfig::default() });
        let kinds = [Kind::First; 3];
        let losses = vec![vec![1.0], vec![2.0], vec![0.5]];
        let r = p.plan(&ctx(3, &kinds, &losses)).unwrap();
        assert!(r.ops.iter().all(|op| !op.communicates()), "{r:?}");
    }
}
