//! A round's work as values: local steps and parameter averaging.

/// One phase of a round: first every node in `steps` takes one local optimisation step (these are
/// independent and may run in parallel), then every group in `groups` replaces its members'
/// parameters by the group mean. Groups of one phase are disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phase {
    /// Nodes that take one local step, in ascending order.
    pub steps: Vec<usize>,
    /// Disjoint groups of nodes whose parameters are averaged (a pair is a group of two).
    pub groups: Vec<Vec<usize>>,
}

impl Phase {
    /// Full parameter vectors sent by this phase's averaging: a pair exchange sends one vector
    /// each way; a group of k > 2 averages by a ring all-reduce, each member sending `2(k−1)/k`
    /// vectors (so `2(k−1)` in total).
    pub fn vectors_sent(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| match g.len() {
                0 | 1 => 0.0,
                2 => 2.0,
                k => 2.0 * (k as f64 - 1.0),
            })
            .sum()
    }
}

/// Everything that happens in one round, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    /// Phases, executed one after the other.
    pub phases: Vec<Phase>,
    /// Interactions this round counts for, in the sense of the HDO analysis (one interaction =
    /// two nodes step and average). `parallel_time = Σ interactions / n`.
    pub interactions: f64,
}

impl Schedule {
    /// How many local steps each node takes this round.
    pub fn steps_per_node(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0; n];
        for phase in &self.phases {
            for &i in &phase.steps {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Full parameter vectors sent this round (see [`Phase::vectors_sent`]).
    pub fn vectors_sent(&self) -> f64 {
        self.phases.iter().map(Phase::vectors_sent).sum()
    }
}
