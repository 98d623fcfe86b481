//! One replica, ordinary tensors.

use super::{Exec, Rule};
use crate::context::ForwardCtx;
use crate::input::{Input, flatten};
use burn::nn::Embedding;
use burn::prelude::*;

/// Runs a model as itself: the module's own parameters, on whatever device they live (autodiff
/// included), batch statistics reported to the context in training mode.
pub struct Plain<'a> {
    /// Training mode, dropout, and where batch statistics go.
    pub ctx: &'a mut ForwardCtx,
}

impl Exec for Plain<'_> {
    type T<const D: usize> = Tensor<D>;

    fn apply<const I: usize, const O: usize, R: Rule<I, O>>(
        &mut self,
        rule: &R,
        x: Tensor<I>,
    ) -> Tensor<O> {
        rule.plain(x, self.ctx)
    }

    fn add<const D: usize>(&mut self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        a + b
    }

    fn images(&mut self, input: &Input) -> Tensor<4> {
        super::images_of(input)
    }

    fn features(&mut self, input: &Input) -> Tensor<2> {
        flatten(input)
    }

    fn embed(&mut self, table: &Embedding, input: &Input) -> Tensor<3> {
        table.forward(super::tokens_of(input))
    }
}
