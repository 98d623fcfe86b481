//! Linear layer `y = x·W + b` over the last dimension (Burn's [`Linear`], `W` is `[in, out]`).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule};
use burn::nn::Linear;
use burn::prelude::*;

impl<const D: usize> Rule<D, D> for Linear {
    fn plain(&self, x: Tensor<D>, _: &mut ForwardCtx) -> Tensor<D> {
        self.forward(x)
    }

    /// Per member: rows of every member as one batched matrix product `[K', n, in]·[K, in, out]`
    /// (`K' = 1` when the input is shared).
    fn stacked(&self, x: Members<D>, pass: &mut Pass<'_>) -> Members<D> {
        let k = pass.members();
        let [d_in, d_out] = self.weight.lazy_shape().dims::<2>();
        let (lead, t) = match x.layout {
            Layout::Shared => (1, x.tensor),
            _ => (k, x.into_batch(k)),
        };
        let mut dims = t.dims();
        let n = t.shape().num_elements() / d_in / lead;
        let w: Tensor<3> = pass.params.take(&self.weight, [0, d_in, d_out]);
        let mut y = t.reshape([lead, n, d_in]).matmul(w);
        if let Some(bias) = &self.bias {
            y = y + pass.params.take::<1, 3>(bias, [0, 1, d_out]);
        }
        dims[0] = dims[0] / lead * k;
        dims[D - 1] = d_out;
        Members::batch(y.reshape(dims))
    }

    /// `ẏ_k = ẋ_k·W + x·Ẇ_k + ḃ_k`.
    fn tangents(&self, x: Duals<D>, pass: &mut Pass<'_>) -> Duals<D> {
        let k = pass.members();
        let [d_in, d_out] = self.weight.lazy_shape().dims::<2>();
        let mut dims = x.primal.dims();
        let n = x.primal.shape().num_elements() / d_in;
        let primal: Tensor<2> = x.primal.reshape([n, d_in]);
        let w_dot: Tensor<3> = pass.params.take_full(&self.weight, [0, d_in, d_out]);
        let mut from_params = primal.clone().unsqueeze_dim::<3>(0).matmul(w_dot); // [K, n, out]
        if let Some(bias) = &self.bias {
            from_params = from_params + pass.params.take_full::<1, 3>(bias, [0, 1, d_out]);
        }
        let from_params = from_params.reshape([k * n, d_out]);
        let tangents = match x.tangents {
            Some(t) => t.reshape([k * n, d_in]).matmul(self.weight.val()) + from_params,
            None => from_params,
        };
        dims[D - 1] = d_out;
        let mut wide = dims;
        wide[0] *= k;
        Duals { primal: self.forward(primal).reshape(dims), tangents: Some(tangents.reshape(wide)) }
    }
}
