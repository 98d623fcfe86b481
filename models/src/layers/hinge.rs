//! Binary hinge loss `mean(max(0, 1 − y·s))` of one score `s` per example in forward mode.

use crate::exec::Duals;
use burn::prelude::*;

/// The loss (`[1]`) and its derivative along each of the `k` directions (`[K]`), `y = ±1` for
/// classes 1 / 0: `L̇_k = mean_b −y·ṡ_k·1[y·s < 1]` (the kink's derivative taken as 0, as
/// autodiff takes it).
pub fn hinge(scores: Duals<2>, targets: &Tensor<1, Int>, k: usize) -> (Tensor<1>, Tensor<1>) {
    let [b, _] = scores.primal.dims();
    let y = targets.clone().float() * 2.0 - 1.0;
    let margin = (scores.primal.reshape([b]) * y.clone()).neg() + 1.0;
    let active = margin.clone().greater_elem(0.0).float();
    let loss = margin.clamp_min(0.0).mean();
    let dloss = match scores.tangents {
        Some(t) => {
            let coef: Tensor<2> = (y * active).neg().unsqueeze_dim(0); // [1, b]
            (t.reshape([k, b]) * coef).sum_dim(1).reshape([k]) / b as f64
        }
        None => Tensor::zeros([k], &loss.device()),
    };
    (loss, dloss)
}
