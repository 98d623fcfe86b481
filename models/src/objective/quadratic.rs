//! A convex quadratic `½ Σ_i a_i x_i²` with curvatures `a_i` log-spaced from 1 to `condition`:
//! the simplest objective whose minimum (0 at the origin) and conditioning are known exactly.

use super::{Function, ObjectiveSpec, Start, constant};
use crate::ConfigProblem;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind = "quadratic"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuadraticConfig {
    /// Dimension.
    #[serde(default = "default_dim")]
    pub dim: usize,
    /// Condition number `a_max / a_min` (1: the round bowl `½‖x‖²`).
    #[serde(default = "default_condition")]
    pub condition: f64,
    /// Start points: one for all nodes or one per node.
    #[serde(default)]
    pub init_points: Vec<Vec<f64>>,
    /// Without `init_points`: each node starts at its own `N(0, init_std²)` draw.
    #[serde(default = "super::default_std")]
    pub init_std: f64,
}

fn default_dim() -> usize {
    10
}
fn default_condition() -> f64 {
    10.0
}

impl QuadraticConfig {
    /// The curvatures `a_i = condition^{i/(dim−1)}`.
    pub fn curvatures(&self) -> Vec<f32> {
        let last = self.dim.saturating_sub(1).max(1) as f64;
        (0..self.dim).map(|i| self.condition.powf(i as f64 / last) as f32).collect()
    }
}

impl ObjectiveSpec for QuadraticConfig {
    const NAME: &'static str = "quadratic";
    const SUMMARY: &'static str = "½ Σ a_i x_i², curvatures log-spaced from 1 to `condition`";
    fn dim(&self) -> usize {
        self.dim
    }
    fn validate(&self) -> Result<(), ConfigProblem> {
        if !(self.condition.is_finite() && self.condition >= 1.0) {
            return Err(ConfigProblem::new(
                "objective.condition",
                format!("must be a finite number ≥ 1, got {}", self.condition),
            ));
        }
        Ok(())
    }
    fn build(&self, _seed: u64) -> Arc<dyn Function> {
        Arc::new(Quadratic { curvatures: self.curvatures().into() })
    }
    fn start(&self) -> Start<'_> {
        Start { points: &self.init_points, std: self.init_std }
    }
}

/// `½ Σ a_i x_i²`.
#[derive(Debug)]
pub struct Quadratic {
    /// `a_i`.
    pub curvatures: Arc<[f32]>,
}

impl Function for Quadratic {
    fn value(&self, x: Tensor<1>) -> Tensor<1> {
        let a = constant(&self.curvatures, [self.curvatures.len()], &x);
        (x.powi_scalar(2) * a).sum() * 0.5
    }
}
