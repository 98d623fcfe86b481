//! Causal multi-head softmax attention between the projections: fused queries, keys and values
//! `[b, t, 3w]` to the heads' outputs `[b, t, w]` (the projections are [`Linear`](burn::nn::Linear)
//! rules around it).

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::ops::AttentionModuleOptions;

/// `softmax(q·kᵀ/√d_h + causal mask)·v` over `heads` heads.
#[derive(Debug, Clone, Copy)]
pub struct CausalAttention {
    /// Number of heads (divides the width).
    pub heads: usize,
}

/// `true` above the diagonal: position `i` may not attend to `j > i`.
pub fn causal_mask(len: usize, device: &Device) -> Tensor<2, Bool> {
    let v: Vec<bool> = (0..len * len).map(|k| k % len > k / len).collect();
    Tensor::from_data(TensorData::new(v, [len, len]), device)
}

impl CausalAttention {
    /// Through Burn's fused attention operation, which on the CPU and the GPU streams over keys
    /// (flash attention) for long sequences instead of materialising `[b, heads, t, t]` scores (on
    /// autodiff devices it is differentiated through its decomposition).
    fn attend(&self, qkv: Tensor<3>) -> Tensor<3> {
        let [b, t, w3] = qkv.dims();
        let w = w3 / 3;
        let dh = w / self.heads;
        let split =
            |z: Tensor<3>| -> Tensor<4> { z.reshape([b, t, self.heads, dh]).swap_dims(1, 2) };
        let q = split(qkv.clone().slice([0..b, 0..t, 0..w]));
        let k = split(qkv.clone().slice([0..b, 0..t, w..2 * w]));
        let v = split(qkv.slice([0..b, 0..t, 2 * w..3 * w]));
        let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
        let out = burn::tensor::module::attention(q, k, v, None, None, options);
        out.swap_dims(1, 2).reshape([b, t, w])
    }
}

impl Rule<3, 3> for CausalAttention {
    fn plain(&self, x: Tensor<3>, _: &mut ForwardCtx) -> Tensor<3> {
        self.attend(x)
    }

    /// Parameter-free: the members' `K·b` sequences attend at once.
    fn stacked(&self, x: Members<3>, pass: &mut Pass<'_>) -> Members<3> {
        match x.layout {
            Layout::Shared => x.map(|t| self.attend(t)),
            _ => Members::batch(self.attend(x.into_batch(pass.members()))),
        }
    }

    /// Scores `ṡ = (q̇·kᵀ + q·k̇ᵀ)/√d`, softmax `ȧ = a⊙(ṡ − Σ a⊙ṡ)`, output `ȧ·v + a·v̇`; masked
    /// scores are constant. Tangents carry a leading member axis `[K, b, heads, …]` and the
    /// primal factors (`q`, `k`, `v`, `a`) broadcast over it, so none of them is copied per
    /// member.
    fn tangents(&self, qkv: Duals<3>, pass: &mut Pass<'_>) -> Duals<3> {
        let k = pass.members();
        let heads = self.heads;
        let [b, t, w3] = qkv.primal.dims();
        let w = w3 / 3;
        let dh = w / heads;
        let device = qkv.primal.device();
        let mask = causal_mask(t, &device);
        // [n, b, heads, t, dh] from rows [n·b, t, 3w], part i of q, k, v
        let split = |z: &Tensor<3>, n: usize, i: usize| -> Tensor<5> {
            z.clone()
                .slice([0..n * b, 0..t, i * w..(i + 1) * w])
                .reshape([n, b, t, heads, dh])
                .swap_dims(2, 3)
        };
        let (q, key, v) =
            (split(&qkv.primal, 1, 0), split(&qkv.primal, 1, 1), split(&qkv.primal, 1, 2));
        let dt = qkv.tangents.unwrap_or_else(|| Tensor::zeros([k * b, t, 3 * w], &device));
        let (dq, dk, dv) = (split(&dt, k, 0), split(&dt, k, 1), split(&dt, k, 2));
        let scale = 1.0 / (dh as f64).sqrt();
        let causal =
            |n: usize| mask.clone().unsqueeze_dims::<5>(&[0, 1, 2]).expand([n, b, heads, t, t]);
        let scores = (q.clone().matmul(key.clone().swap_dims(3, 4)) * scale)
            .mask_fill(causal(1), f32::NEG_INFINITY);
        let a = softmax(scores, 4); // [1, b, heads, t, t]
        let dscores = ((dq.matmul(key.swap_dims(3, 4)) + q.matmul(dk.swap_dims(3, 4))) * scale)
            .mask_fill(causal(k), 0.0); // [K, b, heads, t, t]
        let da = a.clone() * (dscores.clone() - (a.clone() * dscores).sum_dim(4));
        let dout = da.matmul(v.clone()) + a.clone().matmul(dv);
        let merge =
            |z: Tensor<5>, n: usize| -> Tensor<3> { z.swap_dims(2, 3).reshape([n * b, t, w]) };
        Duals { primal: merge(a.matmul(v), 1), tangents: Some(merge(dout, k)) }
    }
}
