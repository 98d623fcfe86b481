//! Random perfect matching each round: the synchronous simulation of the HDO experiments.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Round};
use crate::rng::round_rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// `kind = "matching"` (no keys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {}

impl ProtocolSpec for MatchingConfig {
    const NAME: &'static str = "matching";
    const SUMMARY: &'static str =
        "every node steps, then a random perfect matching averages disjoint pairs";
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(Matching))
    }
}

/// Every node takes one step, then a uniformly random permutation is cut into consecutive pairs
/// (`perm[0]–perm[1]`, `perm[2]–perm[3]`, …), as the authors' trainer does; with odd `n` the last
/// node of the permutation sits out.
#[derive(Debug, Clone, Copy)]
pub struct Matching;

impl Protocol for Matching {
    fn name(&self) -> &'static str {
        "matching"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut round_rng(ctx.seed, ctx.round));
        let groups = perm.chunks_exact(2).map(|p| vec![p[0], p[1]]).collect();
        Ok(Round {
            ops: vec![
                Op::Step { nodes: all_nodes(n), oracle: Oracle::Own },
                Op::Average { groups },
            ],
            interactions: n as f64 / 2.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tests::plan;

    /// The steps and groups of a matching round.
    fn matched(round: u64, n: usize, seed: u64) -> (Vec<usize>, Vec<Vec<usize>>) {
        match plan(&Matching, round, n, seed).ops.as_slice() {
            [Op::Step { nodes, .. }, Op::Average { groups }] => (nodes.clone(), groups.clone()),
            other => panic!("unexpected round {other:?}"),
        }
    }

    #[test]
    fn pairs_every_node_at_most_once() {
        for n in [1usize, 2, 3, 7, 24, 280] {
            for round in 0..20 {
                let (steps, groups) = matched(round, n, 7);
                assert_eq!(steps, (0..n).collect::<Vec<_>>());
                assert_eq!(groups.len(), n / 2);
                let mut seen = vec![0u32; n];
                for g in &groups {
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
        assert_eq!(matched(3, 10, 1), matched(3, 10, 1));
        assert_ne!(matched(3, 10, 1), matched(4, 10, 1));
        assert_ne!(matched(3, 10, 1), matched(3, 10, 2));
    }

    #[test]
    fn every_pair_eventually_meets() {
        // Uniform matchings: over many rounds, every one of the 15 pairs of 6 nodes appears.
        let mut met = [[false; 6]; 6];
        for round in 0..200 {
            for g in &matched(round, 6, 3).1 {
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
