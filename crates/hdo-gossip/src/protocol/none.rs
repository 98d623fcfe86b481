//! No communication: independent nodes.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Round};
use serde::{Deserialize, Serialize};

/// `kind = "none"` (no keys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoneConfig {}

impl ProtocolSpec for NoneConfig {
    const NAME: &'static str = "none";
    const SUMMARY: &'static str = "every node steps, nobody communicates (independent training)";
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(Independent))
    }
}

/// Every node steps; nobody averages. The `none` protocol.
#[derive(Debug, Clone, Copy)]
pub struct Independent;

impl Protocol for Independent {
    fn name(&self) -> &'static str {
        "none"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        Ok(Round {
            ops: vec![Op::Step { nodes: all_nodes(n), oracle: Oracle::Own }],
            interactions: n as f64 / 2.0,
        })
    }
}
