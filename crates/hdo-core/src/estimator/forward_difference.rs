//! Biased zeroth-order estimator (Nesterov–Spokoiny forward difference).

use super::{
    Estimate, Estimator, Gradient, SeededGradient, StepInput, cross_entropy, perturbed, scalar,
};
use crate::error::Error;
use hdo_models::ForwardCtx;

/// `G = (1/rv) Σ_k [F(x+νu_k) − F(x)]/ν · u_k`, `u_k ~ N(0, I)`.
///
/// `E[G] = ∇F_ν`, the gradient of the Gaussian-smoothed loss (bias `O(ν·L·d^{3/2})` w.r.t. ∇F).
/// Forward passes only (`rv + 1` per step); directions are regenerated from the node's noise
/// stream, so the estimate is `rv` scalars.
#[derive(Debug, Clone, Copy)]
pub struct ForwardDifference {
    /// Directions averaged.
    pub rv: u32,
    /// Smoothing radius ν.
    pub nu: f32,
}

impl Estimator for ForwardDifference {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let batch = input.batch;
        let mut ctx = ForwardCtx::train();
        let f0 = scalar(cross_entropy(input.model.forward(&batch.input, &mut ctx), &batch.targets));
        let mut coefficients = Vec::with_capacity(self.rv as usize);
        for k in 0..self.rv {
            let moved = perturbed(input.model, input.layout, input.noise, k, self.nu);
            // Perturbed passes normalise with their own batch statistics but do not report them.
            let fk = scalar(cross_entropy(
                moved.forward(&batch.input, &mut ForwardCtx::train()),
                &batch.targets,
            ));
            coefficients.push((fk - f0) / self.nu / self.rv as f32);
        }
        Ok(Estimate {
            gradient: Gradient::Seeded(SeededGradient {
                noise: input.noise,
                directions: self.rv,
                blocks: 1,
                coefficients,
            }),
            loss: f0,
            batch_stats: ctx.batch_stats,
            forward_passes: 1 + self.rv as u64,
            backward_passes: 0,
        })
    }
}
