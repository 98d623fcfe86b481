//! Forward mode along `K` directions at once: one primal pass carries `K` tangents.
//!
//! Burn has reverse-mode autodiff only. A forward gradient (Baydin et al. 2022) needs the
//! directional derivative `u·∇F` along a parameter direction `u`, which forward mode computes in
//! one pass carrying tangents — no backward pass, no graph, memory ≈ the activations plus `K`
//! tangents. Every tangent rule is linear in the tangent with coefficients that depend on the
//! primal only, so `K` directional derivatives share one primal computation. Tangents are stacked
//! member-major along the batch axis (`[K·B, …]`: rows `k·B..(k+1)·B` belong to direction `k`),
//! primal-derived factors (ReLU masks, normalised activations, pooling indices) are shared, and
//! the parameter tangents come from a stack whose member `k` holds direction `k` (running
//! statistics ignored). `K = 1` is ordinary forward mode.

use super::{Exec, Params, Pass, Rule};
use crate::context::ForwardCtx;
use crate::input::{Input, flatten};
use burn::nn::Embedding;
use burn::prelude::*;

/// A value and its derivatives along `K` directions.
#[derive(Debug, Clone)]
pub struct Duals<const D: usize> {
    /// The value `[B, …]`.
    pub primal: Tensor<D>,
    /// Its derivatives `[K·B, …]`, member-major; `None` while they are all zero (the input).
    pub tangents: Option<Tensor<D>>,
}

impl<const D: usize> Duals<D> {
    /// A constant (the input batch).
    pub fn constant(primal: Tensor<D>) -> Self {
        Duals { primal, tangents: None }
    }

    /// The same linear map with constant coefficients on the primal and every tangent (reshapes,
    /// pooling windows, masks): `f` must treat the `K·B` tangent rows as it treats `B` examples.
    pub fn linear_map<const E: usize>(self, f: impl Fn(Tensor<D>) -> Tensor<E>) -> Duals<E> {
        Duals { primal: f(self.primal), tangents: self.tangents.map(f) }
    }
}

/// `t` `[B, …]` repeated for each of `k` members: `[K·B, …]`.
pub(crate) fn per_member<const D: usize>(t: Tensor<D>, k: usize) -> Tensor<D> {
    if k == 1 { t } else { t.repeat_dim(0, k) }
}

/// Runs a model in forward mode along the `K` directions a [`Params`] holds.
pub struct Tangents<'a> {
    pass: Pass<'a>,
    caller: &'a mut ForwardCtx,
}

impl<'a> Tangents<'a> {
    /// A pass along `directions` in `ctx`'s mode; training-mode batch statistics of the primal
    /// are reported to `ctx` (when the pass finishes), as a plain pass reports them.
    pub fn new(directions: Params<'a>, ctx: &'a mut ForwardCtx) -> Self {
        let own = std::mem::take(ctx);
        Tangents { pass: Pass { params: directions, ctx: own }, caller: ctx }
    }

    /// `K`.
    pub fn members(&self) -> usize {
        self.pass.members()
    }

    /// The logits and their `K` tangents, or the first problem with the stack.
    pub fn finish(self, logits: Duals<2>) -> Result<Duals<2>, String> {
        *self.caller = self.pass.ctx;
        if let Some(e) = self.pass.params.error() {
            return Err(e.to_string());
        }
        Ok(logits)
    }
}

impl Exec for Tangents<'_> {
    type T<const D: usize> = Duals<D>;

    fn apply<const I: usize, const O: usize, R: Rule<I, O>>(
        &mut self,
        rule: &R,
        x: Duals<I>,
    ) -> Duals<O> {
        rule.tangents(x, &mut self.pass)
    }

    fn add<const D: usize>(&mut self, a: Duals<D>, b: Duals<D>) -> Duals<D> {
        crate::layers::residual::tangents(a, b)
    }

    fn images(&mut self, input: &Input) -> Duals<4> {
        Duals::constant(super::images_of(input))
    }

    fn features(&mut self, input: &Input) -> Duals<2> {
        Duals::constant(flatten(input))
    }

    fn embed(&mut self, table: &Embedding, input: &Input) -> Duals<3> {
        crate::layers::embedding::tangents(table, super::tokens_of(input), &mut self.pass)
    }
}
