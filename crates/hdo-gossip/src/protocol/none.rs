//! No communication: independent nodes.

use super::{Protocol, all_step};
use crate::{Phase, Schedule};

/// Every node steps; nobody averages. The `none` protocol.
#[derive(Debug, Clone, Copy)]
pub struct Independent;

impl Protocol for Independent {
    fn name(&self) -> &'static str {
        "none"
    }

    fn plan(&self, _round: u64, n: usize, _seed: u64) -> Schedule {
        Schedule {
            phases: vec![Phase { steps: all_step(n), groups: vec![] }],
            interactions: n as f64 / 2.0,
        }
    }
}
