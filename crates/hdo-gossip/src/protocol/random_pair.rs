//! One uniformly random pair per interaction: the population model of the HDO analysis.

use super::{Protocol, ProtocolSpec};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Round};
use crate::rng::round_rng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// `kind = "random_pair"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPairConfig {
    /// Interactions per round; default ⌈n/2⌉, so a round costs about as much as a matching round.
    #[serde(default)]
    pub interactions_per_round: Option<usize>,
}

impl ProtocolSpec for RandomPairConfig {
    const NAME: &'static str = "random_pair";
    const SUMMARY: &'static str =
        "interactions of one random pair that steps and averages (HDO analysis)";
    fn validate(&self) -> Result<(), GossipError> {
        if self.interactions_per_round == Some(0) {
            return Err(GossipError::Config {
                key: "protocol.interactions_per_round".into(),
                problem: "must be at least 1 (0 would train nothing); leave it unset for ⌈n/2⌉"
                    .into(),
            });
        }
        Ok(())
    }
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(RandomPair { interactions_per_round: self.interactions_per_round }))
    }
}

/// Each interaction picks a uniformly random pair `i ≠ j`; both take a local step, then both
/// average. Interactions run in sequence (one phase each), so a node may interact several times in
/// a round. A round has `interactions_per_round` interactions (default ⌈n/2⌉).
#[derive(Debug, Clone, Copy)]
pub struct RandomPair {
    /// Interactions per round; `None` means ⌈n/2⌉.
    pub interactions_per_round: Option<usize>,
}

impl Protocol for RandomPair {
    fn name(&self) -> &'static str {
        "random_pair"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let count = self.interactions_per_round.unwrap_or(n.div_ceil(2));
        if n < 2 {
            // A lone node has nobody to meet; it still steps once per interaction.
            let ops =
                (0..count).map(|_| Op::Step { nodes: vec![0; n], oracle: Oracle::Own }).collect();
            return Ok(Round { ops, interactions: count as f64 });
        }
        let mut rng = round_rng(ctx.seed, ctx.round);
        let ops = (0..count)
            .flat_map(|_| {
                let i = rng.random_range(0..n);
                let mut j = rng.random_range(0..n - 1);
                if j >= i {
                    j += 1;
                }
                let (a, b) = (i.min(j), i.max(j));
                [
                    Op::Step { nodes: vec![a, b], oracle: Oracle::Own },
                    Op::Average { groups: vec![vec![a, b]] },
                ]
            })
            .collect();
        Ok(Round { ops, interactions: count as f64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tests::plan;

    /// The pairs of a round, in order.
    fn pairs(p: &RandomPair, round: u64, n: usize, seed: u64) -> Vec<Vec<usize>> {
        let ops = plan(p, round, n, seed).ops;
        ops.chunks(2)
            .map(|c| match c {
                [Op::Step { nodes, .. }, Op::Average { groups }] => {
                    assert_eq!(groups, &vec![nodes.clone()]);
                    nodes.clone()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_interaction_is_one_distinct_pair() {
        let proto = RandomPair { interactions_per_round: None };
        assert_eq!(plan(&proto, 0, 9, 5).interactions, 5.0);
        let s = pairs(&proto, 0, 9, 5);
        assert_eq!(s.len(), 5);
        for p in &s {
            assert_ne!(p[0], p[1]);
            assert!(p.iter().all(|&i| i < 9));
        }
    }

    #[test]
    fn pairs_are_roughly_uniform() {
        let proto = RandomPair { interactions_per_round: Some(1000) };
        let mut counts = vec![0u32; 4];
        for round in 0..12 {
            for p in pairs(&proto, round, 4, 1) {
                for i in p {
                    counts[i] += 1;
                }
            }
        }
        // 24,000 node-participations over 4 nodes: 6,000 each, sd ≈ 67.
        for c in counts {
            assert!((5600..6400).contains(&c), "{c}");
        }
    }

    /// Pearson's χ² of observed `counts` against equal expected counts.
    fn chi_square(counts: &[u32]) -> f64 {
        let expected = counts.iter().sum::<u32>() as f64 / counts.len() as f64;
        counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
    }

    /// Every unordered pair is equally likely: χ² over the 10 pairs of 5 nodes, 20,000
    /// interactions, against the 99.9% quantile of χ²(9 d.o.f.) = 27.88.
    #[test]
    fn pair_frequencies_pass_a_chi_square_test() {
        const CRITICAL: f64 = 27.88;
        let n = 5;
        let index = |a: usize, b: usize| a * n + b;
        let proto = RandomPair { interactions_per_round: Some(1000) };
        let mut counts = vec![0u32; n * n];
        for round in 0..20 {
            for p in pairs(&proto, round, n, 3) {
                counts[index(p[0], p[1])] += 1;
            }
        }
        let pairs: Vec<u32> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .map(|(a, b)| counts[index(a, b)])
            .collect();
        assert_eq!(pairs.len(), 10);
        assert_eq!(pairs.iter().sum::<u32>(), 20_000, "only a < b pairs occur");
        let chi2 = chi_square(&pairs);
        assert!(chi2 < CRITICAL, "χ² = {chi2} for {pairs:?}");
        // the test has power: a sampler favouring every third pair is rejected
        let mut skewed = pairs;
        for (k, c) in skewed.iter_mut().enumerate() {
            *c = if k % 3 == 0 { *c * 2 } else { *c / 2 };
        }
        assert!(chi_square(&skewed) > CRITICAL);
    }
}
