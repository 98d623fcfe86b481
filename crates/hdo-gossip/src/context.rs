//! What a protocol may look at when it plans a round.

/// A node's kind, as the protocol sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Computes gradients by backprop.
    First,
    /// Forward passes only.
    Zeroth,
}

/// The state a round's plan may depend on. Everything in it is known to every process of a
/// distributed run, so every rank plans the same round.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Rounds completed before this one.
    pub round: u64,
    /// The run's gossip seed.
    pub seed: u64,
    /// Each node's kind (FO nodes first).
    pub kinds: &'a [Kind],
    /// Each node's most recent training loss (NaN before its first step).
    pub losses: &'a [f32],
}

impl<'a> Context<'a> {
    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.kinds.len()
    }

    /// A context for `n` first-order nodes with no losses yet (tests, examples).
    pub fn uniform(round: u64, seed: u64, kinds: &'a [Kind], losses: &'a [f32]) -> Self {
        Context { round, seed, kinds, losses }
    }
}
