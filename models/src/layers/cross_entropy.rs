//! Mean softmax cross-entropy of logits `[batch, classes]` in forward mode.

use crate::exec::Duals;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

/// The loss (`[1]`) and its derivative along each of the `k` directions (`[K]`):
/// `L̇_k = mean_b Σ_c (softmax(z)_c − y_c)·ż_{k,c}`.
pub fn cross_entropy(
    logits: Duals<2>,
    targets: &Tensor<1, Int>,
    k: usize,
) -> (Tensor<1>, Tensor<1>) {
    let [b, classes] = logits.primal.dims();
    let onehot = targets.clone().one_hot(classes).float();
    let logp = log_softmax(logits.primal.clone(), 1);
    let loss = (logp * onehot.clone()).sum().neg() / b as f64;
    let residual: Tensor<3> = (softmax(logits.primal, 1) - onehot).unsqueeze_dim(0);
    let dloss = match logits.tangents {
        Some(t) => {
            let t: Tensor<3> = t.reshape([k, b, classes]);
            (t * residual).sum_dim(2).sum_dim(1).reshape([k]) / b as f64
        }
        None => Tensor::zeros([k], &residual.device()),
    };
    (loss, dloss)
}
