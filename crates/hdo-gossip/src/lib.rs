//! Gossip scheduling for hdo: **who averages with whom, and who takes a local step, each round**.
//!
//! A [`Protocol`] turns `(round, population size, seed)` into a [`Schedule`]: a list of
//! [`Phase`]s, each "these nodes take one local step, then these disjoint groups average their
//! parameters". The schedule is plain data (no tensors), so this crate compiles and tests in
//! seconds; `hdo-core` applies schedules to model replicas, and a networked runtime can reuse it.
//!
//! Randomness is a pure function of `(seed, round)`: the same seed gives the same schedules in any
//! order of calls and on any machine.
//!
//! ```
//! use hdo_gossip::{ProtocolConfig, Protocol};
//! let protocol = ProtocolConfig::Matching {}.build();
//! let schedule = protocol.plan(0, 6, 42);
//! assert_eq!(schedule.phases.len(), 1);
//! assert_eq!(schedule.phases[0].groups.len(), 3); // 3 disjoint pairs
//! ```

pub mod protocol;
mod rng;
pub mod schedule;

pub use protocol::{Protocol, ProtocolConfig};
pub use schedule::{Phase, Schedule};
