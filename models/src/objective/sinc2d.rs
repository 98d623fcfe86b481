//! The two-dimensional sinc `L(x, y) = sin(πr)/(πr)`, `r = √(x² + y²)`: the LSGD paper's toy
//! (Teng et al. 2019, supplement §6), whose concentric rings of local minima trap averaging.

use super::{Function, ObjectiveSpec, Start};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind = "sinc2d"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sinc2dConfig {
    /// Start points `[[x, y], …]`: one for all nodes or one per node.
    #[serde(default)]
    pub init_points: Vec<Vec<f64>>,
    /// Without `init_points`: each node starts at its own `N(0, init_std²)` draw.
    #[serde(default = "super::default_std")]
    pub init_std: f64,
}

impl ObjectiveSpec for Sinc2dConfig {
    const NAME: &'static str = "sinc2d";
    const SUMMARY: &'static str = "sin(πr)/(πr), r = √(x²+y²): rings of local minima (LSGD's toy)";
    fn dim(&self) -> usize {
        2
    }
    fn build(&self, _seed: u64) -> Arc<dyn Function> {
        Arc::new(Sinc2d)
    }
    fn start(&self) -> Start<'_> {
        Start { points: &self.init_points, std: self.init_std }
    }
}

/// `sin(πr)/(πr)`; at the origin (`r` below 1e-12) the value is 1 and the gradient 0.
#[derive(Debug)]
pub struct Sinc2d;

impl Function for Sinc2d {
    fn value(&self, x: Tensor<1>) -> Tensor<1> {
        let r = x.powi_scalar(2).sum().clamp_min(1e-24).sqrt() * std::f32::consts::PI;
        r.clone().sin() / r
    }
}
