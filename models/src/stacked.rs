//! Stacked execution: `K` replicas of one architecture evaluated on one batch in a single pass.
//!
//! A zeroth-order step evaluates the same minibatch at `rv` perturbed copies of the parameters.
//! Run one at a time, each copy is a chain of small kernel launches (GPU) or small matrix products
//! (CPU). Stacked, the copies become batched matrix products and grouped convolutions over a
//! leading *member* axis — a few large launches instead of `K` times as many small ones. The
//! members may share one batch (the copies of one node, [`StackInput::Shared`]) or each see their
//! own (the copies of many nodes, [`StackInput::PerMember`]).
//!
//! The parameter values come from a [`Stack`]; the module only supplies the architecture (shapes,
//! strides, which layers follow which). Members are independent: batch normalisation normalises
//! each member with its own batch statistics, exactly as `K` separate passes would. Batch
//! statistics are not reported (stacked passes are the perturbed evaluations, whose statistics
//! are discarded). Dropout (the Transformer's) uses the masks of the context, shared by every
//! member. A future model without a stacked forward makes
//! [`Model::forward_stacked`](crate::Model::forward_stacked) return `None`, and callers fall back
//! to one pass per copy.

use crate::jvp::padding_pairs;
use crate::{BatchNorm, ForwardCtx, Input, flatten};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::module::{batch_norm, batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;

/// The float tensors of `members` replicas, in the architecture's visiting order (the order of
/// `params::collect`), each flattened per member: `[members, numel]`, or `[1, numel]` when every
/// member has the same value (running statistics, or anything not perturbed).
#[derive(Debug, Clone)]
pub struct Stack {
    /// One entry per float tensor.
    pub tensors: Vec<Tensor<2>>,
    /// Number of replicas `K`.
    pub members: usize,
}

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

/// A stack whose tensors are made on demand, in visiting order, and dropped once their layer has
/// used them: `make(i)` returns tensor `i` as `[members, numel]` (or `[1, numel]` when shared).
/// A pass over it holds one layer's parameter tensors at a time instead of the whole stack —
/// how forward gradients keep their directions out of memory.
pub struct LazyStack<'a> {
    /// Number of replicas `K`.
    pub members: usize,
    /// Number of float tensors of the architecture.
    pub tensors: usize,
    /// Tensor `i`.
    pub make: &'a mut dyn FnMut(usize) -> Tensor<2>,
}

/// Hands out a stack's tensors in visiting order, shaped for the layer that asks.
pub(crate) struct Cursor<'a> {
    stack: LazyStack<'a>,
    next: usize,
}

impl<'a> Cursor<'a> {
    /// Run `pass` over `stack`'s tensors; a pass that returns a value must have used every one
    /// (the stack was built from another architecture otherwise: a programming error).
    pub(crate) fn consume<T>(
        stack: &Stack,
        pass: impl FnOnce(&mut Cursor<'_>) -> Option<T>,
    ) -> Option<T> {
        let mut make = |i: usize| stack.tensors[i].clone();
        let lazy =
            LazyStack { members: stack.members, tensors: stack.tensors.len(), make: &mut make };
        Cursor::consume_lazy(lazy, pass)
    }

    /// [`Cursor::consume`] over tensors made on demand.
    pub(crate) fn consume_lazy<T>(
        stack: LazyStack<'a>,
        pass: impl FnOnce(&mut Cursor<'a>) -> Option<T>,
    ) -> Option<T> {
        let mut cur = Cursor { stack, next: 0 };
        let out = pass(&mut cur)?;
        assert!(cur.finished(), "stack does not match the architecture's tensors");
        Some(out)
    }

    /// `K`.
    pub(crate) fn members(&self) -> usize {
        self.stack.members
    }

    /// Whether every tensor was consumed (the architecture and the stack agree).
    fn finished(&self) -> bool {
        self.next == self.stack.tensors
    }

    /// The next tensor as `[K', shape[1..]]` with `K'` its own member count (1 or `K`).
    fn take<const D: usize>(&mut self, mut shape: [usize; D]) -> Tensor<D> {
        assert!(self.next < self.stack.tensors, "stack does not match the architecture's tensors");
        let t = (self.stack.make)(self.next);
        self.next += 1;
        shape[0] = t.dims()[0];
        t.reshape(shape)
    }

    /// The next tensor with exactly `K` members (shared values repeated).
    pub(crate) fn take_full<const D: usize>(&mut self, shape: [usize; D]) -> Tensor<D> {
        let t = self.take(shape);
        let k = self.members();
        if t.dims()[0] == k { t } else { t.repeat_dim(0, k) }
    }
}

/// `y = x·W + b` per member: `x` is `[K or 1, batch, in]`, the result `[K, batch, out]`.
pub(crate) fn linear(cur: &mut Cursor<'_>, layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [d_in, d_out] = layer.weight.lazy_shape().dims::<2>();
    let w: Tensor<3> = cur.take([0, d_in, d_out]);
    let y = x.matmul(w);
    match &layer.bias {
        Some(_) => y + cur.take::<3>([0, 1, d_out]),
        None => y,
    }
}

/// A convolution per member. `x` is `[batch, K·C_in, h, w]`, or `[batch, C_in, h, w]` when every
/// member sees the same input (`shared`); the result is `[batch, K·C_out, h', w']`, member-major
/// channels. Members become convolution groups; a shared input needs no copies when the layer is
/// ungrouped (the `K` kernels are simply `K·C_out` output channels).
pub(crate) fn conv2d_stacked(
    cur: &mut Cursor<'_>,
    layer: &Conv2d,
    x: Tensor<4>,
    shared: bool,
) -> Tensor<4> {
    let k = cur.members();
    let [c_out, c_in_g, kh, kw] = layer.weight.lazy_shape().dims::<4>();
    let weight: Tensor<5> = cur.take_full([0, c_out, c_in_g, kh, kw]);
    let weight = weight.reshape([k * c_out, c_in_g, kh, kw]);
    let bias = layer.bias.as_ref().map(|_| cur.take_full::<2>([0, c_out]).reshape([k * c_out]));
    let (x, groups) = match (shared, layer.groups) {
        (true, 1) => (x, 1),
        (true, g) => (x.repeat_dim(1, k), g * k),
        (false, g) => (x, g * k),
    };
    let [_, _, h, w] = x.dims();
    let ((top, bottom), (left, right)) =
        padding_pairs(&layer.padding, [h, w], layer.kernel_size, layer.stride, layer.dilation);
    let options = ConvOptions::new_with_padding(
        layer.stride,
        [(top, bottom), (left, right)],
        layer.dilation,
        groups,
    );
    conv2d(x, weight, bias, options)
}

/// Batch normalisation of member-major channels: `x` is `[batch, K·C, …]`; each member's
/// channels are normalised with their own statistics (training) or running statistics.
pub(crate) fn batch_norm_channels<const D: usize>(
    cur: &mut Cursor<'_>,
    norm: &BatchNorm,
    x: Tensor<D>,
    ctx: &ForwardCtx,
) -> Tensor<D> {
    let k = cur.members();
    let c = norm.gamma.lazy_shape().dims::<1>()[0];
    let mut next = || cur.take_full::<2>([0, c]).reshape([k * c]);
    let (gamma, beta, mean, var) = (next(), next(), next(), next());
    if ctx.train {
        batch_norm_train(x, gamma, beta, BatchNorm::EPSILON).output
    } else {
        batch_norm(x, gamma, beta, mean, var, BatchNorm::EPSILON)
    }
}

/// Batch normalisation of features per member: `x` is `[K, batch, F]`.
pub(crate) fn batch_norm_features(
    cur: &mut Cursor<'_>,
    norm: &BatchNorm,
    x: Tensor<3>,
    ctx: &ForwardCtx,
) -> Tensor<3> {
    let [k, b, f] = x.dims();
    let wide: Tensor<2> = x.swap_dims(0, 1).reshape([b, k * f]);
    let y = batch_norm_channels(cur, norm, wide, ctx);
    y.reshape([b, k, f]).swap_dims(0, 1)
}

/// Flattened images as the first linear layer's input: `[1, batch, features]` when shared,
/// `[K, batch, features]` per member.
pub(crate) fn flat_input(input: StackInput<'_>, k: usize) -> Tensor<3> {
    let x = flatten(input.input());
    match input {
        StackInput::Shared(_) => x.unsqueeze_dim(0),
        StackInput::PerMember(_) => {
            let [kb, f] = x.dims();
            x.reshape([k, kb / k, f])
        }
    }
}

/// Member-major images `[K·B, C, h, w]` to member-major channels `[B, K·C, h, w]`, the layout
/// of a grouped convolution over members.
pub(crate) fn members_as_channels(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [kb, c, h, w] = x.dims();
    let x: Tensor<5> = x.reshape([k, kb / k, c, h, w]);
    x.swap_dims(0, 1).reshape([kb / k, k * c, h, w])
}

/// Member-major channels `[batch, K·C, h, w]` to per-member features `[K, batch, C·h·w]`
/// (each member flattened exactly as `flatten(1, 3)` flattens one replica).
pub(crate) fn members_first(x: Tensor<4>, k: usize) -> Tensor<3> {
    let [b, kc, h, w] = x.dims();
    x.reshape([b, k, kc / k * h * w]).swap_dims(0, 1)
}

/// Each member's embedding rows: `tables` `[K, vocab, w]`; `tokens` `[b, t]` seen by every member
/// (`shared`) or `[K·b, t]` member-major. Returns `[K·b·t, w]`, member-major: member `m`'s token
/// `v` is row `m·vocab + v` of the stacked tables.
pub(crate) fn embedding_rows(tables: Tensor<3>, tokens: Tensor<2, Int>, shared: bool) -> Tensor<2> {
    let [k, vocab, w] = tables.dims();
    let [rows, t] = tokens.dims();
    let lead = if shared { 1 } else { k };
    let per_member = rows / lead * t;
    let offsets = Tensor::<1, Int>::arange(0..k as i64, &tokens.device()).mul_scalar(vocab as i64);
    let ids = tokens.reshape([lead, per_member]) + offsets.reshape([k, 1]); // [K, b·t]
    tables.reshape([k * vocab, w]).select(0, ids.reshape([k * per_member]))
}
