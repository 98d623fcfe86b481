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
}
