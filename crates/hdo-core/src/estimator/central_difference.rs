//! Two-point (central, SPSA-like) zeroth-order estimator.

use super::{DifferenceRule, Direction, Estimate, Estimator, StepInput, difference_estimate};
use crate::error::Error;
use crate::noise::NoiseStream;
use crate::params::Layout;

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

impl DifferenceRule for CentralDifference {
    /// The directions' scales `s_k`.
    type Plan = Vec<f32>;

    fn directions(&self) -> u32 {
        self.rv
    }

    fn plan(&self, noise: NoiseStream, layout: &Layout) -> (Vec<f32>, Vec<(u32, f32)>) {
        let scales: Vec<f32> =
            (0..self.rv).map(|k| self.direction.scale(noise, k, layout)).collect();
        let probes = scales
            .iter()
            .enumerate()
            .flat_map(|(k, &s)| [(k as u32, self.nu * s), (k as u32, -self.nu * s)])
            .collect();
        (scales, probes)
    }

    fn coefficients(
        &self,
        scales: &Vec<f32>,
        layout: &Layout,
        _f0: f32,
        losses: &[f32],
    ) -> Vec<f32> {
        let factor = self.direction.factor(layout);
        scales
            .iter()
            .zip(losses.chunks(2))
            .map(|(&s, pm)| factor * s * (pm[0] - pm[1]) / (2.0 * self.nu) / self.rv as f32)
            .collect()
    }
}

impl Estimator for CentralDifference {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        difference_estimate(self, &input)
    }
}
