//! Random perfect matching each round: the synchronous simulation of the HDO experiments.

use super::{Protocol, all_step};
use crate::{Phase, Schedule, rng::round_rng};
use rand::seq::SliceRandom;

/// Every node takes one step, then a uniformly random permutation is cut into consecutive pairs
/// (`perm[0]–perm[1]`, `perm[2]–perm[3]`, …), as the authors' trainer does; with odd `n` the last
/// node of the permutation sits out.
#[derive(Debug, Clone, Copy)]
pub struct Matching;

impl Protocol for Matching {
    fn name(&self) -> &'static str {
        "matching"
    }

    fn plan(&self, round: u64, n: usize, seed: u64) -> Schedule {
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut round_rng(seed, round));
        let groups = perm.chunks_exact(2).map(|p| vec![p[0], p[1]]).collect();
        Schedule {
            phases: vec![Phase { steps: all_step(n), groups }],
            interactions: n as f64 / 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_every_node_at_most_once() {
        for n in [1usize, 2, 3, 7, 24, 280] {
            for round in 0..20 {
                let s = Matching.plan(round, n, 7);
                let phase = &s.phases[0];
                assert_eq!(phase.steps, (0..n).collect::<Vec<_>>());
                assert_eq!(phase.groups.len(), n / 2);
                let mut seen = vec![0u32; n];
                for g in &phase.groups {
                    assert_eq!(g.len(), 2);
                    assert_ne!(g[0], g[1]);
                    for &i in g {
                        seen[i] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c <= 1), "a node paired twice: {seen:?}");
                assert_eq!(seen.iter().filter(|&&c| c == 0).count(), n % 2);
            }
        }
    }

    #[test]
    fn is_a_pure_function_of_seed_and_round() {
        assert_eq!(Matching.plan(3, 10, 1), Matching.plan(3, 10, 1));
        assert_ne!(Matching.plan(3, 10, 1), Matching.plan(4, 10, 1));
        assert_ne!(Matching.plan(3, 10, 1), Matching.plan(3, 10, 2));
    }

    #[test]
    fn every_pair_eventually_meets() {
        // Uniform matchings: over many rounds, every one of the 15 pairs of 6 nodes appears.
        let mut met = [[false; 6]; 6];
        for round in 0..200 {
            for g in &Matching.plan(round, 6, 3).phases[0].groups {
                met[g[0]][g[1]] = true;
                met[g[1]][g[0]] = true;
            }
        }
        for (i, row) in met.iter().enumerate() {
            for (j, &m) in row.iter().enumerate() {
                assert!(i == j || m, "{i} and {j} never met");
            }
        }
    }
}
