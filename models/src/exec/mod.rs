//! One model definition, run four ways.
//!
//! A model's forward pass is written once, as a composition of layer [`Rule`]s applied through
//! an [`Exec`]utor — the way JAX treats `vmap` and `jvp` as transformations of one function.
//! The executor decides what flows between the layers:
//!
//! - [`Plain`]: one replica, ordinary tensors (on an autodiff device or not), batch statistics
//!   reported to the [`ForwardCtx`];
//! - [`Stacked`]: `K` replicas whose parameters a [`Stack`] holds, evaluated in one batched
//!   pass ([`Members`]; on one shared batch or one batch per member);
//! - [`Tangents`]: forward mode along `K` parameter directions held by a stack, one primal pass
//!   carrying `K` tangents ([`Duals`]; `K = 1` is ordinary forward mode).
//!
//! Each layer rule (`crate::layers`, one file per layer) says how it runs under each executor;
//! models never see the difference. Parameter values of stacked and forward-mode passes are
//! looked up by the parameter's identity (Burn's [`ParamId`]), never by the order layers happen
//! to be called in, and a stack whose tensors do not fit the model's is an error naming the
//! parameter ([`Params`]).

mod params;
mod plain;
pub(crate) mod stacked;
mod tangent;

pub use crate::context::BatchStats;
pub use params::{LazyStack, Params, Stack};
pub use plain::Plain;
pub use stacked::{Layout, Members, StackInput, Stacked};
pub(crate) use tangent::per_member;
pub use tangent::{Duals, Tangents};

use crate::context::ForwardCtx;
use crate::input::Input;
use burn::nn::Embedding;
use burn::prelude::*;

/// A layer's forward pass under every executor: rank `I` in, rank `O` out.
pub trait Rule<const I: usize, const O: usize> {
    /// One replica.
    fn plain(&self, x: Tensor<I>, ctx: &mut ForwardCtx) -> Tensor<O>;
    /// `K` replicas at once; their parameters come from `pass`.
    fn stacked(&self, x: Members<I>, pass: &mut Pass<'_>) -> Members<O>;
    /// Forward mode along `K` directions; the parameter tangents come from `pass`.
    fn tangents(&self, x: Duals<I>, pass: &mut Pass<'_>) -> Duals<O>;
}

/// What a stacked or forward-mode rule may use: the members' parameters and the pass's context
/// (training mode, dropout masks, and — in forward mode — the batch statistics it reports).
pub struct Pass<'a> {
    /// The `K` members' parameter values.
    pub params: Params<'a>,
    /// Training mode, dropout and batch statistics.
    pub ctx: ForwardCtx,
}

impl Pass<'_> {
    /// `K`.
    pub fn members(&self) -> usize {
        self.params.members()
    }
}

/// Runs a model definition: the values flowing between layers are `T<D>` of rank `D`.
pub trait Exec {
    /// A rank-`D` activation under this executor.
    type T<const D: usize>: Clone;
    /// Apply a layer rule.
    fn apply<const I: usize, const O: usize, R: Rule<I, O>>(
        &mut self,
        rule: &R,
        x: Self::T<I>,
    ) -> Self::T<O>;
    /// `a + b` (residual connections).
    fn add<const D: usize>(&mut self, a: Self::T<D>, b: Self::T<D>) -> Self::T<D>;
    /// The input images `[batch, channels, height, width]`.
    fn images(&mut self, input: &Input) -> Self::T<4>;
    /// The input flattened to `[batch, features]`.
    fn features(&mut self, input: &Input) -> Self::T<2>;
    /// The input tokens looked up in `table`: `[batch, length, width]`.
    fn embed(&mut self, table: &Embedding, input: &Input) -> Self::T<3>;
}

/// A model written once against [`Exec`]: class logits `[batch, classes]` of `input`.
pub trait Architecture {
    /// The forward pass.
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2>;
}

/// Images of an input (models check the data's kind when they are built).
pub(crate) fn images_of(input: &Input) -> Tensor<4> {
    match input {
        Input::Images(x) => x.clone(),
        Input::Tokens(_) => panic!("an image model was given tokens (its config checks the data)"),
    }
}

/// Token ids of an input.
pub(crate) fn tokens_of(input: &Input) -> Tensor<2, Int> {
    match input {
        Input::Tokens(t) => t.clone(),
        Input::Images(_) => panic!("a token model was given images (its config checks the data)"),
    }
}
