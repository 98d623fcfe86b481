//! The HDO authors' "unbiased ZO" as they ran it: backprop, then project on random directions.
//!
//! A reference mode for reproducing their numbers, not a zeroth-order method: it needs a
//! backward pass (and counts one). The real forward-only forward gradient computes `u·∇F` by
//! forward-mode differentiation instead.

use super::{Direction, Estimate, Estimator, Gradient, Projection, StepInput, seeded};
use crate::error::Error;
use crate::params;

/// `G = (c/rv) Σ_k (u_k·g) u_k` (`global`) or, per trainable tensor `l`,
/// `G_l = (c/rv) Σ_k (u_{k,l}·g_l) u_{k,l}` (`per_tensor`, the authors' block-wise version, lower
/// variance), with `g` the backprop gradient. Unbiased: `E[G] = g`.
pub struct SimulatedForwardGradient {
    /// Directions averaged.
    pub rv: u32,
    /// Global or block-wise projection.
    pub projection: Projection,
    /// Distribution of the directions.
    pub direction: Direction,
}

impl Estimator for SimulatedForwardGradient {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let exact = super::Backprop.estimate(StepInput { ..input })?;
        let Gradient::Dense(g) = exact.gradient else {
            return Err(Error::Device("backprop returned a seeded gradient".into()));
        };
        let g: Vec<Vec<f32>> = g.into_iter().map(params::download).collect::<Result<_, _>>()?;
        let infos: Vec<_> = input.layout.trainable().collect();
        let factor = self.direction.factor(input.layout);
        let blocks = match self.projection {
            Projection::Global => 1,
            Projection::PerTensor => infos.len(),
        };
        let mut coefficients = vec![0f32; self.rv as usize * blocks];
        let mut z = Vec::new();
        for k in 0..self.rv {
            let s = self.direction.scale(input.noise, k, input.layout);
            let scale = factor * s * s / self.rv as f32;
            for (l, info) in infos.iter().enumerate() {
                z.resize(info.numel, 0.0);
                input.noise.fill_gaussian(k, info.offset, &mut z);
                let dot: f64 = z.iter().zip(&g[l]).map(|(&a, &b)| a as f64 * b as f64).sum();
                let b = if blocks == 1 { 0 } else { l };
                coefficients[k as usize * blocks + b] += (dot as f32) * scale;
            }
        }
        Ok(seeded(&input, self.rv, blocks, coefficients, exact.loss, exact.batch_stats, 1, 1))
    }
}
