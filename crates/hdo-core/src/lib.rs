//! # hdo-core: hybrid decentralized optimization on Burn
//!
//! A [`Population`](population::Population) of [`Node`](node::Node)s trains one model together.
//! Each round, a gossip [`Protocol`](hdo_gossip::Protocol) says which nodes take a local step and
//! which groups average their parameters. A node's step asks its
//! [`Estimator`](estimator::Estimator) for a gradient estimate — by backprop on first-order (FO)
//! nodes, from forward passes along seeded random directions on zeroth-order (ZO) nodes — and
//! applies it with its [`Optimizer`](optimizer::Optimizer).
//!
//! Map of the crate:
//! * [`config`]: the experiment file (serde, unknown keys rejected, `--set` overrides);
//! * [`experiment`]: builds the population from a config and runs rounds, writing metrics;
//! * [`population`], [`node`]: who trains, gossip averaging, consensus; [`average`]: the
//!   arithmetic of an average;
//! * [`estimator`]: one file per estimator; [`noise`]: the counter-based directions;
//! * [`optimizer`], [`schedule`]: momentum styles and learning-rate schedules;
//! * [`params`]: the one place that walks Burn modules; [`init`]: seeded initialisation;
//! * [`data`], [`evaluate`], [`metrics`], [`device`]; [`sweep`]: variants × seeds of one file;
//! * [`checkpoint`]: a run's whole state, to resume an interrupted run exactly.
//!
//! Randomness is always a pure function of the run seed and coordinates (node, step, direction,
//! round), never of global state: the same config and seed give identical metrics on a device.

pub mod apply;
pub mod average;
pub mod batcher;
pub mod bench;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod estimator;
pub mod evaluate;
pub mod experiment;
pub mod init;
pub mod metrics;
pub mod node;
pub mod noise;
pub mod optimizer;
pub mod params;
pub mod population;
pub mod schedule;
pub mod summary;
pub mod sweep;

pub use config::ExperimentConfig;
pub use error::Error;
pub use experiment::{Description, Event, Experiment};
