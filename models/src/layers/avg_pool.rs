//! Adaptive 2-D average pooling (Burn's [`AdaptiveAvgPool2d`]; ResNet's global pooling).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule};
use burn::nn::pool::AdaptiveAvgPool2d;
use burn::prelude::*;

impl Rule<4, 4> for AdaptiveAvgPool2d {
    fn plain(&self, x: Tensor<4>, _: &mut ForwardCtx) -> Tensor<4> {
        self.forward(x)
    }

    /// Per example and channel: any member layout pools as it is.
    fn stacked(&self, x: Members<4>, _: &mut Pass<'_>) -> Members<4> {
        x.map(|t| self.forward(t))
    }

    /// Linear with constant coefficients: the same pooling on every tangent.
    fn tangents(&self, x: Duals<4>, _: &mut Pass<'_>) -> Duals<4> {
        x.linear_map(|t| self.forward(t))
    }
}
