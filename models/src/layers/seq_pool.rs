//! Pooling a sequence of hidden states `[b, t, w]` to one vector per example.

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule, per_member};
use burn::prelude::*;

/// Flatten (`[b, t·w]`), masked mean over real tokens, or the last real token (`[b, w]`);
/// `keep` is 1 for real tokens and 0 for padding, `[b, t]` (or `[K·b, t]` for member-major
/// stacked inputs). Linear in the hidden states with a constant mask.
#[derive(Debug, Clone)]
pub struct SeqPool {
    /// 0 flatten, 1 mean over real tokens, 2 last real token.
    pub pooling: usize,
    /// Real-token mask.
    pub keep: Tensor<2>,
}

impl SeqPool {
    fn pool(&self, h: Tensor<3>, keep: &Tensor<2>) -> Tensor<2> {
        let [b, t, w] = h.dims();
        match self.pooling {
            0 => h.reshape([b, t * w]),
            1 => {
                let k = keep.clone().unsqueeze_dim::<3>(2); // [b, t, 1]
                let count = keep.clone().sum_dim(1).clamp_min(1.0); // [b, 1]
                (h * k).sum_dim(1).reshape([b, w]) / count
            }
            _ => {
                let last = (keep.clone().sum_dim(1) - 1.0).clamp_min(0.0).int(); // [b, 1]
                let index = last.unsqueeze_dim::<3>(2).expand([b, 1, w]);
                h.gather(1, index).reshape([b, w])
            }
        }
    }

    /// The mask for `rows` rows of hidden states (repeated per member when it has fewer).
    fn keep_for(&self, rows: usize) -> Tensor<2> {
        let have = self.keep.dims()[0];
        if have == rows { self.keep.clone() } else { self.keep.clone().repeat_dim(0, rows / have) }
    }
}

impl Rule<3, 2> for SeqPool {
    fn plain(&self, x: Tensor<3>, _: &mut ForwardCtx) -> Tensor<2> {
        self.pool(x, &self.keep)
    }

    fn stacked(&self, x: Members<3>, pass: &mut Pass<'_>) -> Members<2> {
        match x.layout {
            Layout::Shared => Members::shared(self.pool(x.tensor, &self.keep)),
            _ => {
                let h = x.into_batch(pass.members());
                let keep = self.keep_for(h.dims()[0]);
                Members::batch(self.pool(h, &keep))
            }
        }
    }

    fn tangents(&self, x: Duals<3>, pass: &mut Pass<'_>) -> Duals<2> {
        let wide = per_member(self.keep.clone(), pass.members());
        Duals {
            primal: self.pool(x.primal, &self.keep),
            tangents: x.tangents.map(|d| self.pool(d, &wide)),
        }
    }
}
