//! ReLU `max(x, 0)` (Burn's [`Relu`]).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule, per_member};
use burn::nn::Relu;
use burn::prelude::*;
use burn::tensor::activation::relu;

impl<const D: usize> Rule<D, D> for Relu {
    fn plain(&self, x: Tensor<D>, _: &mut ForwardCtx) -> Tensor<D> {
        relu(x)
    }

    fn stacked(&self, x: Members<D>, _: &mut Pass<'_>) -> Members<D> {
        x.map(relu)
    }

    /// `ẏ_k = ẋ_k·1[x > 0]`.
    fn tangents(&self, x: Duals<D>, pass: &mut Pass<'_>) -> Duals<D> {
        let k = pass.members();
        let tangents = x.tangents.map(|t| {
            let mask = x.primal.clone().greater_elem(0.0).float();
            t * per_member(mask, k)
        });
        Duals { primal: x.primal.clamp_min(0.0), tangents }
    }
}
