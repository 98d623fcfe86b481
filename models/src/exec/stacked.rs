//! `K` replicas of one architecture in one batched pass.
//!
//! A zeroth-order step evaluates the same minibatch at `rv` perturbed copies of the parameters.
//! Run one at a time, each copy is a chain of small kernel launches (GPU) or small matrix products
//! (CPU). Stacked, the copies become batched matrix products and grouped convolutions over a
//! member axis — a few large launches instead of `K` times as many small ones. The members may
//! share one batch (the copies of one node, [`StackInput::Shared`]) or each see their own (the
//! copies of many nodes, [`StackInput::PerMember`]).
//!
//! Members are independent: batch normalisation normalises each member with its own batch
//! statistics, exactly as `K` separate passes would. Batch statistics are not reported (stacked
//! passes are the perturbed evaluations, whose statistics are discarded). Dropout uses the masks
//! of the context, shared by every member (the copies of one node's step see one network).

use super::{Exec, Params, Pass, Rule};
use crate::context::ForwardCtx;
use crate::input::{Input, flatten};
use burn::nn::Embedding;
use burn::prelude::*;

/// The batch the members of a stacked pass evaluate.
#[derive(Debug, Clone, Copy)]
pub enum StackInput<'a> {
    /// Every member evaluates the same batch of `B` examples.
    Shared(&'a Input),
    /// Member `m` evaluates rows `m·B .. (m+1)·B` of a member-major batch of `K·B` examples.
    PerMember(&'a Input),
}

impl<'a> StackInput<'a> {
    /// The underlying batch.
    pub fn input(&self) -> &'a Input {
        match *self {
            StackInput::Shared(x) | StackInput::PerMember(x) => x,
        }
    }

    /// Whether every member sees the same batch.
    pub fn is_shared(&self) -> bool {
        matches!(self, StackInput::Shared(_))
    }
}

/// Where the member axis of a stacked activation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One value `[B, …]` that every member has (nothing member-specific has happened yet).
    Shared,
    /// Member-major batch `[K·B, …]`: rows `m·B..(m+1)·B` are member `m`'s.
    Batch,
    /// Member-major channels `[B, K·C, …]` (the layout of a convolution grouped over members).
    Channels,
}

/// A stacked activation: the members' values in one tensor, and where the member axis is. Rules
/// convert to the layout they need, so consecutive layers that share one stay in it.
#[derive(Debug, Clone)]
pub struct Members<const D: usize> {
    /// The values.
    pub tensor: Tensor<D>,
    /// Where the member axis is.
    pub layout: Layout,
}

impl<const D: usize> Members<D> {
    /// A value every member shares.
    pub fn shared(tensor: Tensor<D>) -> Self {
        Members { tensor, layout: Layout::Shared }
    }

    /// Member-major batch rows.
    pub fn batch(tensor: Tensor<D>) -> Self {
        Members { tensor, layout: Layout::Batch }
    }

    /// Member-major channels.
    pub fn channels(tensor: Tensor<D>) -> Self {
        Members { tensor, layout: Layout::Channels }
    }

    /// The same map on every member's values, layout kept (element-wise functions, and maps that
    /// treat every example and channel alike, such as pooling windows).
    pub fn map(self, f: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Self {
        Members { tensor: f(self.tensor), layout: self.layout }
    }

    /// The values as a member-major batch `[K·B, …]`.
    pub fn into_batch(self, k: usize) -> Tensor<D> {
        match self.layout {
            Layout::Batch => self.tensor,
            Layout::Shared => repeat(self.tensor, 0, k),
            Layout::Channels => channels_to_batch(self.tensor, k),
        }
    }

    /// The values as member-major channels `[B, K·C, …]`.
    pub fn into_channels(self, k: usize) -> Tensor<D> {
        match self.layout {
            Layout::Channels => self.tensor,
            Layout::Shared => repeat(self.tensor, 1, k),
            Layout::Batch => batch_to_channels(self.tensor, k),
        }
    }

    /// The values in `layout`.
    pub fn into_layout(self, layout: Layout, k: usize) -> Tensor<D> {
        match layout {
            Layout::Shared | Layout::Batch => self.into_batch(k),
            Layout::Channels => self.into_channels(k),
        }
    }
}

fn repeat<const D: usize>(t: Tensor<D>, dim: usize, k: usize) -> Tensor<D> {
    if k == 1 { t } else { t.repeat_dim(dim, k) }
}

/// `[B, K·C, …]` (member-major channels) to `[K·B, C, …]` (member-major batch).
pub(crate) fn channels_to_batch<const D: usize>(t: Tensor<D>, k: usize) -> Tensor<D> {
    let dims = t.dims();
    let (b, c) = (dims[0], dims[1] / k);
    let rest: usize = dims[2..].iter().product();
    let mut out = dims;
    out[0] = k * b;
    out[1] = c;
    t.reshape([b, k, c, rest]).swap_dims(0, 1).reshape(out)
}

/// `[K·B, C, …]` (member-major batch) to `[B, K·C, …]` (member-major channels).
pub(crate) fn batch_to_channels<const D: usize>(t: Tensor<D>, k: usize) -> Tensor<D> {
    let dims = t.dims();
    let (b, c) = (dims[0] / k, dims[1]);
    let rest: usize = dims[2..].iter().product();
    let mut out = dims;
    out[0] = b;
    out[1] = k * c;
    t.reshape([k, b, c, rest]).swap_dims(0, 1).reshape(out)
}

/// Runs a model as `K` replicas whose parameters a [`Params`] holds.
pub struct Stacked<'a> {
    pass: Pass<'a>,
    shared: bool,
}

impl<'a> Stacked<'a> {
    /// A pass over `params` on `input`, in `ctx`'s mode and with its dropout seed (masks drawn
    /// afresh from the seed, as a replica's own pass draws them).
    pub fn new(params: Params<'a>, input: StackInput<'_>, ctx: &ForwardCtx) -> Self {
        let ctx =
            ForwardCtx { train: ctx.train, dropout_seed: ctx.dropout_seed, ..Default::default() };
        Stacked { pass: Pass { params, ctx }, shared: input.is_shared() }
    }

    /// `K`.
    pub fn members(&self) -> usize {
        self.pass.members()
    }

    /// The members' logits `[K, batch, classes]`, or the first problem with the stack.
    pub fn finish(self, logits: Members<2>) -> Result<Tensor<3>, String> {
        if let Some(e) = self.pass.params.error() {
            return Err(e.to_string());
        }
        let k = self.pass.members();
        let t = logits.into_batch(k);
        let [kb, c] = t.dims();
        Ok(t.reshape([k, kb / k, c]))
    }

    fn input<const D: usize>(&self, t: Tensor<D>) -> Members<D> {
        if self.shared { Members::shared(t) } else { Members::batch(t) }
    }
}

impl Exec for Stacked<'_> {
    type T<const D: usize> = Members<D>;

    fn apply<const I: usize, const O: usize, R: Rule<I, O>>(
        &mut self,
        rule: &R,
        x: Members<I>,
    ) -> Members<O> {
        rule.stacked(x, &mut self.pass)
    }

    fn add<const D: usize>(&mut self, a: Members<D>, b: Members<D>) -> Members<D> {
        crate::layers::residual::stacked(a, b, self.pass.members())
    }

    fn images(&mut self, input: &Input) -> Members<4> {
        self.input(super::images_of(input))
    }

    fn features(&mut self, input: &Input) -> Members<2> {
        self.input(flatten(input))
    }

    fn embed(&mut self, table: &Embedding, input: &Input) -> Members<3> {
        crate::layers::embedding::stacked(
            table,
            super::tokens_of(input),
            self.shared,
            &mut self.pass,
        )
    }
}
