//! All-reduce averaging every round: the synchronous data-parallel baseline.

use super::{Protocol, ProtocolSpec, all_nodes};
use crate::context::Context;
use crate::error::GossipError;
use crate::ops::{Op, Oracle, Round};
use serde::{Deserialize, Serialize};

/// `kind = "all_reduce"` (no keys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllReduceConfig {}

impl ProtocolSpec for AllReduceConfig {
    const NAME: &'static str = "all_reduce";
    const SUMMARY: &'static str =
        "every node steps, then all nodes average (synchronous data parallel)";
    fn build(&self, _n: usize, _seed: u64) -> Result<Box<dyn Protocol>, GossipError> {
        Ok(Box::new(AllReduce))
    }
}

/// Every node steps, then all nodes replace their parameters by the population mean.
#[derive(Debug, Clone, Copy)]
pub struct AllReduce;

impl Protocol for AllReduce {
    fn name(&self) -> &'static str {
        "all_reduce"
    }

    fn plan(&self, ctx: &Context<'_>) -> Result<Round, GossipError> {
        let n = ctx.n();
        let groups = if n > 1 { vec![all_nodes(n)] } else { vec![] };
        Ok(Round {
            ops: vec![
                Op::Step { nodes: all_nodes(n), oracle: Oracle::Own },
                Op::Average { groups },
            ],
            interactions: n as f64 / 2.0,
        })
    }
}
