//! Gossip planning for hdo: **what every node does each round, and what it sends**.
//!
//! A [`Protocol`] turns a [`Context`] (round, seed, node kinds, recent losses) into a [`Round`]:
//! a sequence of [`Op`]s — local steps with a chosen oracle, gradient estimates kept pending and
//! shared, equal-weight averaging, simultaneous mixing by sparse rows of a mixing matrix, pulls,
//! and D-POEM's radius, projection and averaging bookkeeping. Each operation states its
//! [`Message`]s (who sends what to whom), so the bytes a run sends are exact and a runtime can
//! execute a plan without knowing the protocol. The plan is plain data (no tensors): this crate
//! compiles and tests in seconds; `hdo-core` applies plans to model replicas.
//!
//! [`topology`] builds communication graphs (ring, torus, complete, star, Erdős–Rényi,
//! exponential, edge-list files) and their symmetric doubly stochastic mixing matrices with
//! spectral gaps.
//!
//! Randomness is a pure function of `(seed, round)`: the same seed gives the same plans in any
//! order of calls and on any machine.
//!
//! ```
//! use hdo_gossip::{Context, Kind, Op, ProtocolConfig};
//! let protocol = ProtocolConfig::default().build(6, 42).unwrap();
//! let kinds = [Kind::First; 6];
//! let losses = vec![Vec::new(); 6];
//! let round = protocol.plan(&Context { round: 0, seed: 42, kinds: &kinds, losses: &losses }).unwrap();
//! let Op::Average { groups } = &round.ops[1] else { panic!() };
//! assert_eq!(groups.len(), 3); // 3 disjoint pairs
//! ```

mod context;
mod error;
pub mod message;
pub mod ops;
pub mod protocol;
mod rng;
pub mod topology;

pub use context::{Context, Kind};
pub use error::GossipError;
pub use message::{Message, Payload, Sizes};
pub use ops::{Op, Oracle, Pull, Quantity, Round, Row, Rule, Slot, Smoothing};
pub use protocol::{Protocol, ProtocolConfig};
