//! De-biased zeroth-order estimator by randomized truncation (Chen 2020).

use super::{DifferenceRule, Direction, Estimate, Estimator, StepInput, difference_estimate};
use crate::error::Error;
use crate::noise::NoiseStream;
use crate::params::Layout;

/// Levels beyond this are never sampled: a cap that keeps radii representable for ratios near
/// one. A level comes from one 24-bit uniform, so for c = ½ it never exceeds 25 anyway; the bias
/// of either cap (≈ μ₁·2⁻²⁵ for c = ½) is far below float resolution.
pub const MAX_LEVEL: u32 = 40;

/// Write the directional derivative as a telescoping series over radii `μ_n = μ₁·c^{n−1}`:
/// `∂_u F = D(μ₁) + Σ_{n≥1} [D(μ_{n+1}) − D(μ_n)]`, `D(μ) = [F(x+μu) − F(x)]/μ`. Sample one level
/// `n ~ Geometric`, `p_n = (1−c)·c^{n−1}`, and use
/// `P = D(μ₁) + [D(μ_{n+1}) − D(μ_n)]/p_n`, `G = (c_u/rv) Σ_k P_k·u_k`.
///
/// `E[P] = ∂_u F` exactly for C² L-smooth `F` (the series converges absolutely since
/// `Σ μ_n < ∞`), so `E[G] = ∇F`: no smoothing bias. Our choices (Chen's own were not found):
/// `c = debias_ratio` (default ½; the correction's second moment for smooth `F` scales with
/// `Σ (μ_{n+1} − μ_n)²/p_n = μ₁²` whatever `c` is, and a direction costs `2 + c` perturbed passes
/// on average) and `μ₁ = ν`. In f32, keep `ν ≳ 1e-3`: the deepest levels divide tiny loss
/// differences by tiny radii. Up to 4 forward passes per direction (3 new, `F(x)` shared).
#[derive(Debug, Clone, Copy)]
pub struct Debiased {
    /// Directions averaged.
    pub rv: u32,
    /// First radius μ₁.
    pub nu: f32,
    /// Ratio `c ∈ (0, 1)` of consecutive radii and of the level distribution.
    pub ratio: f64,
    /// Distribution of the directions.
    pub direction: Direction,
}

impl Debiased {
    /// Level `n ≥ 1` of direction `k`, from its own uniform draw.
    fn level(&self, noise: NoiseStream, layout: &Layout, k: u32) -> u32 {
        let mut u = [0f32; 1];
        // a stream disjoint from the directions: offset past the parameter vector
        noise.fill_uniform(k, layout.dim + 1, 0.0, 1.0, &mut u);
        let u = (1.0 - u[0] as f64).max(f64::MIN_POSITIVE); // (0, 1]
        (1 + (u.ln() / self.ratio.ln()).floor() as u32).min(MAX_LEVEL)
    }

    /// Radius `μ_n = μ₁·c^{n−1}`.
    fn mu(&self, n: u32) -> f64 {
        self.nu as f64 * self.ratio.powi(n as i32 - 1)
    }
}

impl DifferenceRule for Debiased {
    /// Per direction: its scale `s_k`, level `n` and the radii probed (μ₁, μ_n unless n = 1,
    /// μ_{n+1}).
    type Plan = Vec<(f32, u32, Vec<f64>)>;

    fn directions(&self) -> u32 {
        self.rv
    }

    fn plan(&self, noise: NoiseStream, layout: &Layout) -> (Self::Plan, Vec<(u32, f32)>) {
        let plan: Self::Plan = (0..self.rv)
            .map(|k| {
                let s = self.direction.scale(noise, k, layout);
                let n = self.level(noise, layout, k);
                let radii = if n == 1 {
                    vec![self.mu(1), self.mu(2)]
                } else {
                    vec![self.mu(1), self.mu(n), self.mu(n + 1)]
                };
                (s, n, radii)
            })
            .collect();
        let probes = plan
            .iter()
            .enumerate()
            .flat_map(|(k, (s, _, radii))| {
                radii.iter().map(move |&m| (k as u32, (m * *s as f64) as f32))
            })
            .collect();
        (plan, probes)
    }

    fn coefficients(
        &self,
        plan: &Self::Plan,
        layout: &Layout,
        f0: f32,
        losses: &[f32],
    ) -> Vec<f32> {
        let factor = self.direction.factor(layout);
        let mut losses = losses.iter();
        plan.iter()
            .map(|(s, n, radii)| {
                let mut d = radii
                    .iter()
                    .map(|&m| (losses.next().copied().unwrap_or(f32::NAN) as f64 - f0 as f64) / m);
                let d1 = d.next().unwrap_or(f64::NAN);
                let dn = if *n == 1 { d1 } else { d.next().unwrap_or(f64::NAN) };
                let dn1 = d.next().unwrap_or(f64::NAN);
                let p_n = (1.0 - self.ratio) * self.ratio.powi(*n as i32 - 1);
                let p = d1 + (dn1 - dn) / p_n;
                (factor as f64 * *s as f64 * p / self.rv as f64) as f32
            })
            .collect()
    }
}

impl Estimator for Debiased {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        difference_estimate(self, &input)
    }
}
