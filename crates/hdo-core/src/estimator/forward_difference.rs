//! Biased zeroth-order estimator (Nesterov–Spokoiny forward difference).

use super::{DifferenceRule, Direction, Estimate, Estimator, StepInput, difference_estimate};
use crate::error::Error;
use crate::noise::NoiseStream;
use crate::params::Layout;

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

impl DifferenceRule for ForwardDifference {
    /// The directions' scales `s_k`.
    type Plan = Vec<f32>;

    fn directions(&self) -> u32 {
        self.rv
    }

    fn plan(&self, noise: NoiseStream, layout: &Layout) -> (Vec<f32>, Vec<(u32, f32)>) {
        let scales: Vec<f32> =
            (0..self.rv).map(|k| self.direction.scale(noise, k, layout)).collect();
        let probes = scales.iter().enumerate().map(|(k, &s)| (k as u32, self.nu * s)).collect();
        (scales, probes)
    }

    fn coefficients(
        &self,
        scales: &Vec<f32>,
        layout: &Layout,
        f0: f32,
        losses: &[f32],
    ) -> Vec<f32> {
        let factor = self.direction.factor(layout);
        scales
            .iter()
            .zip(losses)
            .map(|(&s, &fk)| factor * s * (fk - f0) / self.nu / self.rv as f32)
            .collect()
    }
}

impl Estimator for ForwardDifference {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        difference_estimate(self, &input)
    }
}
