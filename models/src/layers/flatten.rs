//! Flatten `[b, c, h, w]` to `[b, c·h·w]` (channel-major, as PyTorch's `flatten(1)`).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule};
use burn::prelude::*;

/// Flattens every example.
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl Rule<4, 2> for Flatten {
    fn plain(&self, x: Tensor<4>, _: &mut ForwardCtx) -> Tensor<2> {
        x.flatten(1, 3)
    }

    /// Member-major channels become member-major rows, each member flattened as one replica.
    fn stacked(&self, x: Members<4>, pass: &mut Pass<'_>) -> Members<2> {
        let k = pass.members();
        match x.layout {
            Layout::Shared => Members::shared(x.tensor.flatten(1, 3)),
            Layout::Batch => Members::batch(x.tensor.flatten(1, 3)),
            Layout::Channels => {
                let [b, kc, h, w] = x.tensor.dims();
                let t: Tensor<3> = x.tensor.reshape([b, k, kc / k * h * w]);
                Members::batch(t.swap_dims(0, 1).reshape([k * b, kc / k * h * w]))
            }
        }
    }

    fn tangents(&self, x: Duals<4>, _: &mut Pass<'_>) -> Duals<2> {
        x.linear_map(|t| t.flatten(1, 3))
    }
}
