//! One uniformly random pair per interaction: the population model of the HDO analysis.

use super::Protocol;
use crate::{Phase, Schedule, rng::round_rng};
use rand::Rng;

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

    fn plan(&self, round: u64, n: usize, seed: u64) -> Schedule {
        let count = self.interactions_per_round.unwrap_or(n.div_ceil(2));
        if n < 2 {
            // A lone node has nobody to meet; it still steps once per interaction.
            let phases = (0..count).map(|_| Phase { steps: vec![0; n], groups: vec![] }).collect();
            return Schedule { phases, interactions: count as f64 };
        }
        let mut rng = round_rng(seed, round);
        let phases = (0..count)
            .map(|_| {
                let i = rng.random_range(0..n);
                let mut j = rng.random_range(0..n - 1);
                if j >= i {
                    j += 1;
                }
                let (a, b) = (i.min(j), i.max(j));
                Phase { steps: vec![a, b], groups: vec![vec![a, b]] }
            })
            .collect();
        Schedule { phases, interactions: count as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interaction_is_one_distinct_pair() {
        let s = RandomPair { interactions_per_round: None }.plan(0, 9, 5);
        assert_eq!(s.phases.len(), 5);
        assert_eq!(s.interactions, 5.0);
        for p in &s.phases {
            assert_eq!(p.groups.len(), 1);
            assert_eq!(p.steps, p.groups[0]);
            assert_ne!(p.steps[0], p.steps[1]);
            assert!(p.steps.iter().all(|&i| i < 9));
        }
    }

    #[test]
    fn pairs_are_roughly_uniform() {
        let proto = RandomPair { interactions_per_round: Some(1000) };
        let mut counts = vec![0u32; 4];
        for round in 0..12 {
            for p in proto.plan(round, 4, 1).phases {
                for i in p.steps {
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
            for p in proto.plan(round, n, 3).phases {
                counts[index(p.steps[0], p.steps[1])] += 1;
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
