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
    /// Each node's most recent training losses, oldest first: at most the protocol's
    /// [`loss_window`](crate::Protocol::loss_window), none before its first step.
    pub losses: &'a [Vec<f32>],
}

impl<'a> Context<'a> {
    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.kinds.len()
    }

    /// Node `i`'s mean loss over its last `k` recorded steps (`None` before its first step).
    pub fn mean_recent_loss(&self, i: usize, k: usize) -> Option<f64> {
        let l = self.losses.get(i)?;
        let recent = &l[l.len().saturating_sub(k.max(1))..];
        (!recent.is_empty())
            .then(|| recent.iter().map(|&x| x as f64).sum::<f64>() / recent.len() as f64)
    }
}
