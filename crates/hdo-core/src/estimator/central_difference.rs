//! Two-point (central, SPSA-like) zeroth-order estimator.

use super::{Direction, Estimate, Estimator, StepInput, base_loss, perturbed_losses, seeded};
use crate::error::Error;

/// `G = (c/rv) Σ_k [F(x+ν·u_k) − F(x−ν·u_k)]/(2ν) · u_k` (`c` as for
/// [`ForwardDifference`](super::ForwardDifference)).
///
/// The even part of `F` cancels, so the bias is `O(ν²)` and it is exactly unbiased for ∇F on
/// quadratics. `2·rv + 1` forward passes (the extra one gives the reported loss and the batch
/// statistics).
#[derive(Debug, Clone, Copy)]
pub struct CentralDifference {
    /// Directions averaged.
    pub rv: u32,
    /// Smoothing radius ν.
    pub nu: f32,
    /// Distribution of the directions.
    pub direction: Direction,
}

impl Estimator for CentralDifference {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let (f0, batch_stats) = base_loss(&input);
        let factor = self.direction.factor(input.layout);
        let scales: Vec<f32> =
            (0..self.rv).map(|k| self.direction.scale(input.noise, k, input.layout)).collect();
        let probes: Vec<(u32, f32)> = scales
            .iter()
            .enumerate()
            .flat_map(|(k, &s)| [(k as u32, self.nu * s), (k as u32, -self.nu * s)])
            .collect();
        let losses = perturbed_losses(&input, &probes);
        let coefficients = scales
            .iter()
            .zip(losses.chunks(2))
            .map(|(&s, pm)| factor * s * (pm[0] - pm[1]) / (2.0 * self.nu) / self.rv as f32)
            .collect();
        Ok(seeded(&input, self.rv, 1, coefficients, f0, batch_stats, 1 + 2 * self.rv as u64, 0))
    }
}
