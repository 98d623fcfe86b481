//! DOWNPOUR (Dean et al. 2012), simulated deterministically: a parameter server, workers that
//! push gradient estimates with seeded staleness and pull parameters every period.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::rng::round_rng;
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Quantity, Round, Row, Rule, Slot, Smoothing};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How long a push waits before the server applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delay {
    /// Every push waits `max_delay` rounds.
    Fixed,
    /// Each push waits a number of rounds uniform on `0..=max_delay`, drawn from the gossip seed.
    #[default]
    Uniform,
}

/// `kind = "downpour"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownpourConfig {
    /// The server's step size η: `x_s ← x_s − η·g` per applied push.
    #[serde(default = "default_server_lr")]
    pub server_lr: f64,
    /// Workers pull the server's parameters every `period` rounds.
    #[serde(default = "default_period")]
    pub period: u64,
    /// The delay distribution of pushes.
    #[serde(default)]
    pub delay: Delay,
    /// Its bound (rounds); 0 = every push applied in the round it is sent.
    #[serde(default)]
    pub max_delay: u64,
}

fn default_server_lr() -> f64 {
    0.01
}
fn default_period() -> u64 {
    1
}

impl Default for DownpourConfig {
    fn default() -> Self {
        DownpourConfig {
            server_lr: default_server_lr(),
            period: default_period(),
            delay: Delay::Uniform,
            max_delay: 0,
        }
    }
}

impl ProtocolSpec for DownpourConfig {
    const NAME: &'static str = "downpour";
    const SUMMARY: &'static str =
        "a parameter server: workers push estimates (seeded staleness), pull parameters every period";
    fn validate(&self) -> Result<(), GossipError> {
        if !(self.server_lr > 0.0 && self.server_lr.is_finite()) {
            return Err(GossipError::Config {
                key: "protocol.server_lr".into(),
                problem: format!("must be positive and finite, got {}", self.server_lr),
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
        Ok(Box::new(Downpour(self.clone())))
    }
}

/// Every round each worker estimates at its (possibly stale) copy and pushes the estimate to the
/// server (auxiliary vector 0, starting as the initial model), where it is applied `delay`
/// rounds later; the server applies what is due, in (due, worker) order; workers do not step
/// themselves (their step is counted); every `period` rounds they copy the server. Pushes of a
/// round are drawn from `(seed, round)`, so staleness is deterministic.
#[derive(Debug, Clone)]
pub struct Downpour(pub DownpourConfig);

impl Downpour {
    /// Each worker's delay at `round`.
    pub fn delays(&self, seed: u64, round: u64, n: usize) -> Vec<u64> {
        match self.0.delay {
            Delay::Fixed => vec![self.0.max_delay; n],
            Delay::Uniform => {
                let mut rng = round_rng(seed ^ 0xD04E_900A, round);
                (0..n).map(|_| rng.random_range(0..=self.0.max_delay)).collect()
            }
        }
    }
}

impl Protocol for Downpour {
    fn name(&self) -> &'static str {
        "downpour"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let (t, server) = (ctx.round, Slot::Aux(0));
        let pushes = self.delays(ctx.seed, t, n).into_iter().enumerate().map(|(i, d)| (i, t + d));
        let mut ops = vec![
            Op::Estimate { nodes: all_nodes(n), oracle: Oracle::Own, smoothing: Smoothing::Configured },
            Op::Push { pushes: pushes.collect(), target: server },
            Op::ServerApply { target: server, round: t, step: self.0.server_lr },
            Op::Apply { nodes: all_nodes(n), rule: Rule::Discard },
        ];
        if (t + 1).is_multiple_of(self.0.period) {
            let rows =
                (0..n).map(|i| Row { target: Slot::Node(i), weights: vec![(server, 1.0)] }).collect();
            // the server applies gradients only: workers keep their own running statistics
            ops.push(Op::Mix { rows, quantity: Quantity::Trainable });
        }
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
    fn staleness_is_deterministic_bounded_and_varied() {
        let p = Downpour(DownpourConfig { max_delay: 3, ..DownpourConfig::default() });
        assert_eq!(p.delays(7, 4, 50), p.delays(7, 4, 50));
        assert_ne!(p.delays(7, 4, 50), p.delays(7, 5, 50));
        assert_ne!(p.delays(7, 4, 50), p.delays(8, 4, 50));
        let all: Vec<u64> = (0..40).flat_map(|r| p.delays(1, r, 10)).collect();
        assert!(all.iter().all(|&d| d <= 3));
        for d in 0..=3 {
            assert!(all.contains(&d), "delay {d} never drawn");
        }
        let fixed = Downpour(DownpourConfig { delay: Delay::Fixed, max_delay: 2, ..DownpourConfig::default() });
        assert_eq!(fixed.delays(0, 0, 3), vec![2, 2, 2]);
    }

    #[test]
    fn workers_push_every_round_and_pull_every_period() {
        let p = Downpour(DownpourConfig { period: 2, ..DownpourConfig::default() });
        // round 0: 4 pushes; round 1: 4 pushes and 4 pulls
        assert_eq!(plan(&p, 0, 4, 0).values_sent(&Uniform(10)), 40);
        assert_eq!(plan(&p, 1, 4, 0).values_sent(&Uniform(10)), 80);
    }
}
