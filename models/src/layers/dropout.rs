//! Dropout with masks that are a pure function of the context's seed ([`ForwardCtx`]).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule, per_member};
use burn::prelude::*;

/// Zeroes each value with probability `p` in training mode (with a dropout seed), scaling the
/// others by `1/(1−p)`.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
}

impl<const D: usize> Rule<D, D> for Dropout {
    fn plain(&self, x: Tensor<D>, ctx: &mut ForwardCtx) -> Tensor<D> {
        let dims = x.dims();
        match ctx.dropout_mask(self.p, dims, &x.device()) {
            Some(m) => x * m,
            None => x,
        }
    }

    /// The mask one replica's pass would draw, on every member (the copies of one node's step
    /// see one network).
    fn stacked(&self, x: Members<D>, pass: &mut Pass<'_>) -> Members<D> {
        let k = pass.members();
        let x = match x.layout {
            crate::exec::Layout::Shared => x,
            _ => Members::batch(x.into_batch(k)),
        };
        let mut dims = x.tensor.dims();
        let shared = x.layout == crate::exec::Layout::Shared;
        if !shared {
            dims[0] /= k;
        }
        match pass.ctx.dropout_mask(self.p, dims, &x.tensor.device()) {
            Some(m) if shared => x.map(|t| t * m),
            Some(m) => x.map(|t| t * per_member(m, k)),
            None => x,
        }
    }

    /// The same mask on the primal and every tangent.
    fn tangents(&self, x: Duals<D>, pass: &mut Pass<'_>) -> Duals<D> {
        let k = pass.members();
        let dims = x.primal.dims();
        match pass.ctx.dropout_mask(self.p, dims, &x.primal.device()) {
            Some(m) => Duals {
                primal: x.primal * m.clone(),
                tangents: x.tangents.map(|t| t * per_member(m, k)),
            },
            None => x,
        }
    }
}
