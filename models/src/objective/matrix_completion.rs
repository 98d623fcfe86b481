//! Low-rank positive semi-definite matrix completion `F(X) = ¼‖M − XXᵀ‖²_F`, `X ∈ R^{d×r}`
//! (Teng et al. 2019, Figure 1 and supplement §8): non-convex, every local minimum global, and
//! symmetric (`XQ` for any orthogonal `Q` is as good), so workers descending to different minima
//! pull an average toward a poor point.

use super::{Function, ObjectiveSpec, Start, constant, gaussians};
use crate::ConfigProblem;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind = "matrix_completion"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixCompletionConfig {
    /// Matrix size `d`.
    #[serde(default = "default_d")]
    pub d: usize,
    /// Rank `r` of `M = UUᵀ` and width of `X`.
    #[serde(default = "default_rank")]
    pub rank: usize,
    /// Which random instance: `U ~ N(0, 1)^{d×r}` is drawn from the run seed and this.
    #[serde(default)]
    pub instance: u64,
    /// Start points (`d·r` values, row-major): one for all nodes or one per node.
    #[serde(default)]
    pub init_points: Vec<Vec<f64>>,
    /// Without `init_points`: each node starts at its own `X ~ N(0, init_std²)` (the paper: 1).
    #[serde(default = "super::default_std")]
    pub init_std: f64,
}

fn default_d() -> usize {
    1000
}
fn default_rank() -> usize {
    10
}

/// Largest `d`: `M` is held dense (`d²` floats, shared by every node).
pub const MAX_D: usize = 8192;

impl MatrixCompletionConfig {
    /// `M = UUᵀ` (row-major `d × d`) of the instance drawn from `seed`.
    pub fn target(&self, seed: u64) -> Vec<f32> {
        let (d, r) = (self.d, self.rank);
        let u = gaussians(super::stream(seed, super::INSTANCES, self.instance), d * r);
        let mut m = vec![0f32; d * d];
        for i in 0..d {
            for j in 0..=i {
                let v: f64 = (0..r).map(|k| u[i * r + k] * u[j * r + k]).sum();
                m[i * d + j] = v as f32;
                m[j * d + i] = v as f32;
            }
        }
        m
    }
}

impl ObjectiveSpec for MatrixCompletionConfig {
    const NAME: &'static str = "matrix_completion";
    const SUMMARY: &'static str = "¼‖M − XXᵀ‖²_F, M = UUᵀ of rank `rank`, X of d×rank (LSGD's Figure 1)";
    fn dim(&self) -> usize {
        self.d.saturating_mul(self.rank)
    }
    fn validate(&self) -> Result<(), ConfigProblem> {
        if self.d == 0 || self.d > MAX_D {
            return Err(ConfigProblem::new(
                "objective.d",
                format!("is {}; must be in 1..={MAX_D} (M is held dense)", self.d),
            ));
        }
        if self.rank == 0 || self.rank > self.d {
            return Err(ConfigProblem::new(
                "objective.rank",
                format!("is {}; must be in 1..=d = {}", self.rank, self.d),
            ));
        }
        Ok(())
    }
    fn build(&self, seed: u64) -> Arc<dyn Function> {
        Arc::new(MatrixCompletion { d: self.d, rank: self.rank, target: self.target(seed).into() })
    }
    fn start(&self) -> Start<'_> {
        Start { points: &self.init_points, std: self.init_std }
    }
}

/// `¼‖M − XXᵀ‖²_F`.
pub struct MatrixCompletion {
    /// `d`.
    pub d: usize,
    /// `r`.
    pub rank: usize,
    /// `M`, row-major.
    pub target: Arc<[f32]>,
}

impl std::fmt::Debug for MatrixCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatrixCompletion {{ d: {}, rank: {} }}", self.d, self.rank)
    }
}

impl Function for MatrixCompletion {
    fn value(&self, x: Tensor<1>) -> Tensor<1> {
        let m = constant(&self.target, [self.d, self.d], &x);
        let x = x.reshape([self.d, self.rank]);
        let residual = m - x.clone().matmul(x.transpose());
        residual.powi_scalar(2).sum() * 0.25
    }
}
