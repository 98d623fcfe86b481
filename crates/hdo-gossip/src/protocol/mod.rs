//! Gossip protocols behind one trait; the [`registry!`] invocation below is the one place a
//! protocol is registered.
//!
//! Adding a protocol: one file here defining the protocol (a type implementing [`Protocol`]) and
//! its `[protocol]` keys (a config struct implementing [`ProtocolSpec`]), then **one line** in
//! the `registry!` invocation: `Variant => file::ConfigStruct,`. The variant's snake_case name is
//! the config's `kind` (tested to equal [`ProtocolSpec::NAME`]).

use crate::context::Context;
use crate::error::GossipError;
use crate::ops::Round;
use crate::topology::{GraphSpec, Mixing};
use serde::{Deserialize, Serialize};

/// Plans each round: who estimates, who applies what, who mixes with whom.
pub trait Protocol: Send + Sync {
    /// Short stable name, as in the config (`"matching"`, …).
    fn name(&self) -> &'static str;
    /// The operations of round `ctx.round`; a pure function of the context.
    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError>;
    /// The mixing matrix of a graph protocol (round 0's when the graph is redrawn).
    fn mixing(&self) -> Option<&Mixing> {
        None
    }
    /// Auxiliary parameter vectors ([`Slot::Aux`](crate::Slot::Aux)) the runtime keeps, each
    /// starting as the initial model.
    fn aux_vectors(&self) -> usize {
        0
    }
    /// How many of each node's recent training losses the context carries.
    fn loss_window(&self) -> usize {
        1
    }
}

/// A protocol's `[protocol]` keys: what the runtime must know before the first round, and how to
/// build the protocol.
pub trait ProtocolSpec {
    /// The `kind` name.
    const NAME: &'static str;
    /// One line on what it does (`hdo list`).
    const SUMMARY: &'static str;
    /// Checks of its keys on their own (before any node exists).
    fn validate(&self) -> Result<(), GossipError> {
        Ok(())
    }
    /// The protocol for `n` nodes (graphs are drawn from `seed`).
    fn build(&self, n: usize, seed: u64) -> Result<Box<dyn Protocol>, GossipError>;
    /// The graph of a graph protocol.
    fn graph(&self) -> Option<GraphSpec> {
        None
    }
    /// Whether every worker must be able to compute first-order gradients (hybrid-order
    /// protocols that ask all nodes for them).
    fn first_order_workers(&self) -> bool {
        false
    }
    /// D-POEM's relative initial radius proxy `r_ε / (1 + ‖x_0‖)`, if the protocol uses one.
    fn initial_radius(&self) -> Option<f64> {
        None
    }
}

/// Declares every protocol: its module and config struct, the `ProtocolConfig` enum (the
/// `[protocol]` section, tagged by `kind`) and its dispatch.
macro_rules! registry {
    ($($variant:ident => $module:ident :: $config:ident,)*) => {
        $(mod $module;)*
        $(pub use $module::*;)*

        /// The `[protocol]` section of an experiment: `kind` names one of the registered
        /// protocols; the other keys are that protocol's config struct.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
        pub enum ProtocolConfig {
            $(
                #[doc = concat!("See [`", stringify!($config), "`].")]
                $variant($config),
            )*
        }

        impl ProtocolConfig {
            /// Every `kind` with one line on it (`hdo list`), in registration order.
            pub const KINDS: &'static [(&'static str, &'static str)] =
                &[$((<$config as ProtocolSpec>::NAME, <$config as ProtocolSpec>::SUMMARY),)*];

            /// The config name of this protocol.
            pub fn name(&self) -> &'static str {
                match self { $(ProtocolConfig::$variant(_) => <$config as ProtocolSpec>::NAME,)* }
            }

            /// Check the keys on their own.
            pub fn validate(&self) -> Result<(), GossipError> {
                match self { $(ProtocolConfig::$variant(c) => c.validate(),)* }
            }

            /// The protocol this config describes for `n` nodes (graphs are drawn from `seed`).
            pub fn build(&self, n: usize, seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
                self.validate()?;
                match self { $(ProtocolConfig::$variant(c) => c.build(n, seed),)* }
            }

            /// The graph of a graph protocol.
            pub fn graph(&self) -> Option<GraphSpec> {
                match self { $(ProtocolConfig::$variant(c) => c.graph(),)* }
            }

            /// See [`ProtocolSpec::first_order_workers`].
            pub fn first_order_workers(&self) -> bool {
                match self { $(ProtocolConfig::$variant(c) => c.first_order_workers(),)* }
            }

            /// See [`ProtocolSpec::initial_radius`].
            pub fn initial_radius(&self) -> Option<f64> {
                match self { $(ProtocolConfig::$variant(c) => c.initial_radius(),)* }
            }
        }
    };
}

registry! {
    Matching => matching::MatchingConfig,
    RandomPair => random_pair::RandomPairConfig,
    AllReduce => all_reduce::AllReduceConfig,
    None => none::NoneConfig,
    Dpsgd => dpsgd::DpsgdConfig,
    Dpoem => dpoem::DpoemConfig,
    Hosgd => hosgd::HoSgdConfig,
    Easgd => easgd::EasgdConfig,
    Lsgd => lsgd::LsgdConfig,
    Downpour => downpour::DownpourConfig,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig::Matching(MatchingConfig {})
    }
}

/// Default edge probability of `erdos_renyi`.
pub(crate) fn default_p() -> f64 {
    0.3
}

/// Every node, in order.
pub(crate) fn all_nodes(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::context::Kind;
    use crate::ops::{Op, Slot};
    use crate::topology::{TopologyKind, Weights};

    /// Round `round` of `protocol` for `n` first-order nodes.
    pub(crate) fn plan(protocol: &dyn Protocol, round: u64, n: usize, seed: u64) -> Round {
        let kinds = vec![Kind::First; n];
        let losses = vec![Vec::new(); n];
        protocol.plan(&Context { round, seed, kinds: &kinds, losses: &losses }).expect("plan")
    }

    #[derive(Deserialize)]
    struct Wrap {
        protocol: ProtocolConfig,
    }

    #[test]
    fn parses_every_kind_and_rejects_unknown_keys() {
        for &(k, _) in ProtocolConfig::KINDS {
            let w: Wrap = toml::from_str(&format!("[protocol]\nkind = \"{k}\"")).expect(k);
            assert_eq!(w.protocol.name(), k);
            assert_eq!(w.protocol.build(8, 1).expect(k).name(), k);
        }
        let bad = toml::from_str::<Wrap>("[protocol]\nkind = \"matching\"\nfoo = 1");
        assert!(bad.is_err_and(|e| e.to_string().contains("foo")));
        let bad = toml::from_str::<Wrap>("[protocol]\nkind = \"ring\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("ring")));
        let bad = toml::from_str::<Wrap>("[protocol]\nkind = \"dpsgd\"\ntopology = \"cube\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("cube")));
    }

    #[test]
    fn bad_graph_settings_are_named_errors() {
        let cfg = |s: &str| toml::from_str::<Wrap>(s).expect(s).protocol;
        let e = cfg("[protocol]\nkind=\"dpsgd\"\ntopology=\"erdos_renyi\"\np=1.5").build(8, 0);
        assert!(e.is_err_and(|e| e.to_string().contains("protocol.p")));
        let e = cfg("[protocol]\nkind=\"dpsgd\"\ntopology=\"file\"").build(8, 0);
        assert!(e.is_err_and(|e| e.to_string().contains("protocol.edges_file")));
        let e = cfg("[protocol]\nkind=\"dpoem\"\nradius=-1").build(8, 0);
        assert!(e.is_err_and(|e| e.to_string().contains("protocol.radius")));
        for (text, key) in [
            ("kind=\"random_pair\"\ninteractions_per_round=0", "protocol.interactions_per_round"),
            ("kind=\"easgd\"\nbeta=0", "protocol.beta"),
            ("kind=\"easgd\"\nperiod=0", "protocol.period"),
            ("kind=\"lsgd\"\nlambda=0.7\nlambda_global=0.7", "protocol.lambda"),
            ("kind=\"lsgd\"\nk=0", "protocol.k"),
            ("kind=\"downpour\"\nserver_lr=-1", "protocol.server_lr"),
            ("kind=\"downpour\"\nperiod=0", "protocol.period"),
        ] {
            let e = cfg(&format!("[protocol]\n{text}")).validate();
            assert!(e.is_err_and(|e| e.to_string().contains(key)), "{text}");
        }
        let e = cfg("[protocol]\nkind=\"lsgd\"\ngroups=9").build(8, 0);
        assert!(e.is_err_and(|e| e.to_string().contains("protocol.groups")));
    }

    /// Matching, all-reduce and random pairs average by equal-weight groups; D-PSGD mixes rows.
    #[test]
    fn graph_protocols_mix_every_node_every_round() {
        let cfg = ProtocolConfig::Dpsgd(DpsgdConfig {
            topology: TopologyKind::Ring,
            weights: Weights::Metropolis,
            ..DpsgdConfig::default()
        });
        let p = cfg.build(6, 0).expect("dpsgd");
        let round = plan(p.as_ref(), 0, 6, 0);
        let [Op::Step { nodes, .. }, Op::Mix { rows, .. }] = round.ops.as_slice() else {
            panic!("{round:?}")
        };
        assert_eq!(nodes.len(), 6);
        assert_eq!(rows.len(), 6);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.target, Slot::Node(i));
            let total: f64 = r.weights.iter().map(|w| w.1).sum();
            assert!((total - 1.0).abs() < 1e-12);
            assert_eq!(r.weights.len(), 3);
        }
        assert!(p.mixing().and_then(Mixing::spectral_gap).is_some_and(|g| g > 0.0 && g < 1.0));
    }
}
