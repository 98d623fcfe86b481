//! Biased zeroth-order estimator (Nesterov–Spokoiny forward difference).

use super::{Direction, Estimate, Estimator, StepInput, base_loss, perturbed_losses, seeded};
use crate::error::Error;

/// `G = (c/rv) Σ_k [F(x+ν·u_k) − F(x)]/ν · u_k` with `c` = 1 for Gaussian `u_k` and `d` for
/// unit-sphere `u_k`.
///
/// `E[G] = ∇F_ν`, the gradient of the smoothed loss (bias `O(ν·L·d^{3/2})` w.r.t. ∇F).
/// Forward passes only (`rv + 1` per step); directions are regenerated from the node's noise
/// stream, so the estimate is `rv` scalars.
#[derive(Debug, Clone, Copy)]
pub struct ForwardDifference {
    /// Directions averaged.
    pub rv: u32,
    /// Smoothing radius ν.
    pub nu: f32,
    /// Distribution of the directions.
    pub direction: Direction,
}

impl Estimator for ForwardDifference {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let (f0, batch_stats) = base_loss(&input);
        let factor = self.direction.factor(input.layout);
        let scales: Vec<f32> =
            (0..self.rv).map(|k| self.direction.scale(input.noise, k, input.layout)).collect();
        let probes: Vec<(u32, f32)> =
            scales.iter().enumerate().map(|(k, &s)| (k as u32, self.nu * s)).collect();
        let losses = perturbed_losses(&input, &probes);
        let coefficients = scales
            .iter()
            .zip(losses)
            .map(|(&s, fk)| factor * s * (fk - f0) / self.nu / self.rv as f32)
            .collect();
        Ok(seeded(&input, self.rv, 1, coefficients, f0, batch_stats, 1 + self.rv as u64, 0))
    }
}
