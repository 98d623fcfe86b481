//! GELU `x·Φ(x)` (exact, erf-based, as Burn's `gelu`).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule, per_member};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// The exact GELU.
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

impl<const D: usize> Rule<D, D> for Gelu {
    fn plain(&self, x: Tensor<D>, _: &mut ForwardCtx) -> Tensor<D> {
        gelu(x)
    }

    fn stacked(&self, x: Members<D>, _: &mut Pass<'_>) -> Members<D> {
        x.map(gelu)
    }

    /// `ẏ_k = ẋ_k·(Φ(x) + x·φ(x))`.
    fn tangents(&self, x: Duals<D>, pass: &mut Pass<'_>) -> Duals<D> {
        let k = pass.members();
        let tangents = x.tangents.map(|t| {
            let p = x.primal.clone();
            let cdf = (p.clone() * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * 0.5;
            let pdf = (p.clone().powi_scalar(2) * -0.5).exp()
                * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
            t * per_member(cdf + p * pdf, k)
        });
        Duals { primal: gelu(x.primal), tangents }
    }
}
