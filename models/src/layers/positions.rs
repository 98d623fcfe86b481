//! Learned position embeddings: the first `t` rows of a `[len, width]` table added to hidden
//! states `[b, t, width]`.

use crate::context::ForwardCtx;
use crate::exec::{Duals, Members, Pass, Rule};
use burn::module::Param;
use burn::prelude::*;

/// Adds the first rows of its table (a clone of the model's parameter: the same identity, a
/// shared buffer).
#[derive(Debug, Clone)]
pub struct Positions(pub Param<Tensor<2>>);

impl Rule<3, 3> for Positions {
    fn plain(&self, x: Tensor<3>, _: &mut ForwardCtx) -> Tensor<3> {
        let t = x.dims()[1];
        x + self.0.val().narrow(0, 0, t).unsqueeze_dim(0)
    }

    fn stacked(&self, x: Members<3>, pass: &mut Pass<'_>) -> Members<3> {
        let k = pass.members();
        let x = x.into_batch(k);
        let [kb, t, w] = x.dims();
        let len = self.0.lazy_shape().dims::<2>()[0];
        let table: Tensor<3> = pass.params.take_full(&self.0, [0, len, w]);
        let rows = table.narrow(1, 0, t).unsqueeze_dim::<4>(1); // [K, 1, t, w]
        let y = x.reshape([k, kb / k, t, w]) + rows;
        Members::batch(y.reshape([kb, t, w]))
    }

    /// Tangent `k` gains `ṗ_k[..t]`.
    fn tangents(&self, x: Duals<3>, pass: &mut Pass<'_>) -> Duals<3> {
        let k = pass.members();
        let [b, t, w] = x.primal.dims();
        let len = self.0.lazy_shape().dims::<2>()[0];
        let dpos: Tensor<3> = pass.params.take_full(&self.0, [0, len, w]);
        let dpos: Tensor<4> = dpos.narrow(1, 0, t).unsqueeze_dim(1); // [K, 1, t, w]
        let tangents = match x.tangents {
            Some(d) => d.reshape([k, b, t, w]) + dpos,
            None => dpos.repeat_dim(1, b),
        };
        Duals {
            primal: x.primal + self.0.val().narrow(0, 0, t).unsqueeze_dim(0),
            tangents: Some(tangents.reshape([k * b, t, w])),
        }
    }
}
