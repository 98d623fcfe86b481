//! Gossip protocols behind one trait; [`ProtocolConfig`] is the one registration point.

mod all_reduce;
mod matching;
mod none;
mod random_pair;

pub use all_reduce::AllReduce;
pub use matching::Matching;
pub use none::Independent;
pub use random_pair::RandomPair;

use crate::Schedule;
use serde::{Deserialize, Serialize};

/// Decides each round's local steps and averaging groups.
pub trait Protocol: Send + Sync {
    /// Short stable name, as in the config (`"matching"`, …).
    fn name(&self) -> &'static str;
    /// The schedule of round `round` for `n` nodes; a pure function of its arguments.
    fn plan(&self, round: u64, n: usize, seed: u64) -> Schedule;
}

/// The `[protocol]` section of an experiment: `kind = "matching" | "random_pair" | "all_reduce" | "none"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProtocolConfig {
    /// Every node steps, then a uniformly random perfect matching averages ⌊n/2⌋ disjoint pairs
    /// (the HDO experiments; with odd n one node sits out).
    Matching {},
    /// The HDO analysis model: a sequence of interactions, each one uniformly random pair that
    /// steps and averages.
    RandomPair {
        /// Interactions per round; default ⌈n/2⌉, so a round costs about as much as a matching round.
        #[serde(default)]
        interactions_per_round: Option<usize>,
    },
    /// Every node steps, then all nodes average (synchronous data-parallel baseline).
    AllReduce {},
    /// Every node steps; nobody communicates (independent training).
    None {},
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig::Matching {}
    }
}

impl ProtocolConfig {
    /// Every `kind` with one line on it (`hdo list`).
    pub const KINDS: [(&'static str, &'static str); 4] = [
        ("matching", "every node steps, then a random perfect matching averages disjoint pairs"),
        ("random_pair", "interactions of one random pair that steps and averages (HDO analysis)"),
        ("all_reduce", "every node steps, then all nodes average (synchronous data parallel)"),
        ("none", "every node steps, nobody communicates (independent training)"),
    ];

    /// The protocol this config describes.
    pub fn build(&self) -> Box<dyn Protocol> {
        match self {
            ProtocolConfig::Matching {} => Box::new(Matching),
            ProtocolConfig::RandomPair { interactions_per_round } => {
                Box::new(RandomPair { interactions_per_round: *interactions_per_round })
            }
            ProtocolConfig::AllReduce {} => Box::new(AllReduce),
            ProtocolConfig::None {} => Box::new(Independent),
        }
    }
}

/// Every node steps once, in order.
pub(crate) fn all_step(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        protocol: ProtocolConfig,
    }

    #[test]
    fn parses_every_kind_and_rejects_unknown_keys() {
        let kinds = ["matching", "random_pair", "all_reduce", "none"];
        for k in kinds {
            let w: Wrap = toml::from_str(&format!("[protocol]\nkind = \"{k}\"")).expect(k);
            assert_eq!(w.protocol.build().name(), k);
        }
        let bad = toml::from_str::<Wrap>("[protocol]\nkind = \"matching\"\nfoo = 1");
        assert!(bad.is_err_and(|e| e.to_string().contains("foo")));
        let bad = toml::from_str::<Wrap>("[protocol]\nkind = \"ring\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("ring")));
    }
}
