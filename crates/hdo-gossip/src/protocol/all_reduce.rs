//! All-reduce averaging every round: the synchronous data-parallel baseline.

use super::{Protocol, all_step};
use crate::{Phase, Schedule};

/// Every node steps, then all nodes replace their parameters by the population mean.
#[derive(Debug, Clone, Copy)]
pub struct AllReduce;

impl Protocol for AllReduce {
    fn name(&self) -> &'static str {
        "all_reduce"
    }

    fn plan(&self, _round: u64, n: usize, _seed: u64) -> Schedule {
        let groups = if n > 1 { vec![all_step(n)] } else { vec![] };
        Schedule {
            phases: vec![Phase { steps: all_step(n), groups }],
            interactions: n as f64 / 2.0,
        }
    }
}
