//! Forward mode along `K` directions at once: one primal pass carries `K` tangents.
//!
//! Every tangent rule of [`crate::jvp`] is linear in the tangent, with coefficients that depend on
//! the primal only, so `K` directional derivatives can share one primal computation. Tangents are
//! stacked member-major along the batch axis (`[K·B, …]`: rows `k·B..(k+1)·B` belong to direction
//! `k`), primal-derived factors (ReLU masks, normalised activations, pooling indices) are shared,
//! and the parameter tangents come from a [`Stack`](crate::Stack) whose member `k` holds direction
//! `k` (running statistics ignored). Same rules as [`crate::jvp`]; checked against it layer by
//! layer (the tests below) and per model (`crates/hdo-core/tests/stacked.rs`).

use crate::jvp::{padding_pairs, pool_options};
use crate::stacked::Cursor;
use crate::transformer::{Block, Norm};
use crate::{BatchNorm, ForwardCtx};
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::{conv2d, max_pool2d_with_indices};
use burn::tensor::ops::ConvOptions;

/// A value and its derivatives along `K` directions.
#[derive(Debug, Clone)]
pub struct Duals<const D: usize> {
    /// The value `[B, …]`.
    pub primal: Tensor<D>,
    /// Its derivatives `[K·B, …]`, member-major; `None` while they are all zero (the input).
    pub tangents: Option<Tensor<D>>,
}

impl<const D: usize> Duals<D> {
    /// A constant (the input batch).
    pub fn constant(primal: Tensor<D>) -> Self {
        Duals { primal, tangents: None }
    }

    /// Reshape both parts (the first dimension is the batch: `K·B` for the tangents).
    pub fn reshape<const E: usize>(self, shape: [usize; E], k: usize) -> Duals<E> {
        let mut wide = shape;
        wide[0] *= k;
        Duals {
            primal: self.primal.reshape(shape),
            tangents: self.tangents.map(|t| t.reshape(wide)),
        }
    }
}

/// `t` `[B, …]` repeated for each of `k` members: `[K·B, …]`.
fn per_member<const D: usize>(t: Tensor<D>, k: usize) -> Tensor<D> {
    if k == 1 { t } else { t.repeat_dim(0, k) }
}

/// `[B, K·C, …]` (member-major channels) to `[K·B, C, …]` (member-major batch).
fn channels_to_batch<const D: usize>(t: Tensor<D>, k: usize) -> Tensor<D> {
    let dims = t.dims();
    let (b, c) = (dims[0], dims[1] / k);
    let rest: usize = dims[2..].iter().product();
    let mut out = dims;
    out[0] = k * b;
    out[1] = c;
    t.reshape([b, k, c, rest]).swap_dims(0, 1).reshape(out)
}

/// `y = x·W + b` → `ẏ_k = ẋ_k·W + x·Ẇ_k + ḃ_k`.
pub(crate) fn linear(cur: &mut Cursor<'_>, layer: &Linear, x: Duals<2>) -> Duals<2> {
    let k = cur.members();
    let [b, _] = x.primal.dims();
    let [d_in, d_out] = layer.weight.lazy_shape().dims::<2>();
    let w_dot: Tensor<3> = cur.take_full([0, d_in, d_out]);
    let mut from_params = x.primal.clone().unsqueeze_dim::<3>(0).matmul(w_dot); // [K, B, out]
    if layer.bias.is_some() {
        from_params = from_params + cur.take_full::<3>([0, 1, d_out]);
    }
    let from_params = from_params.reshape([k * b, d_out]);
    let tangents = match x.tangents {
        Some(t) => t.matmul(layer.weight.val()) + from_params,
        None => from_params,
    };
    Duals { primal: layer.forward(x.primal), tangents: Some(tangents) }
}

/// `y = conv(x, W) + b` → `ẏ_k = conv(ẋ_k, W) + conv(x, Ẇ_k) + ḃ_k`; the `K` kernels `Ẇ_k` run
/// as `K·C_out` output channels of one convolution of the shared primal.
pub(crate) fn conv2d_duals(cur: &mut Cursor<'_>, layer: &Conv2d, x: Duals<4>) -> Duals<4> {
    let k = cur.members();
    let [c_out, c_in_g, kh, kw] = layer.weight.lazy_shape().dims::<4>();
    let w_dot: Tensor<5> = cur.take_full([0, c_out, c_in_g, kh, kw]);
    let w_dot = w_dot.reshape([k * c_out, c_in_g, kh, kw]);
    let b_dot = layer.bias.as_ref().map(|_| cur.take_full::<2>([0, c_out]).reshape([k * c_out]));
    let [_, _, h, w] = x.primal.dims();
    let ((top, bottom), (left, right)) =
        padding_pairs(&layer.padding, [h, w], layer.kernel_size, layer.stride, layer.dilation);
    let options = |groups| {
        ConvOptions::new_with_padding(
            layer.stride,
            [(top, bottom), (left, right)],
            layer.dilation,
            groups,
        )
    };
    let (x_in, groups) = match layer.groups {
        1 => (x.primal.clone(), 1),
        g => (x.primal.clone().repeat_dim(1, k), g * k),
    };
    let from_params = channels_to_batch(conv2d(x_in, w_dot, b_dot, options(groups)), k);
    let tangents = match x.tangents {
        Some(t) => conv2d(t, layer.weight.val(), None, options(layer.groups)) + from_params,
        None => from_params,
    };
    Duals { primal: layer.forward(x.primal), tangents: Some(tangents) }
}

/// `y = max(x, 0)` → `ẏ_k = ẋ_k·1[x > 0]`.
pub(crate) fn relu<const D: usize>(x: Duals<D>, k: usize) -> Duals<D> {
    let tangents = x.tangents.map(|t| {
        let mask = x.primal.clone().greater_elem(0.0).float();
        t * per_member(mask, k)
    });
    Duals { primal: x.primal.clamp_min(0.0), tangents }
}

/// Max-pooling: each tangent takes the element the primal selected.
pub(crate) fn max_pool2d(layer: &MaxPool2d, x: Duals<4>, k: usize) -> Duals<4> {
    let [b, c, h, w] = x.primal.dims();
    let (primal, indices) = max_pool2d_with_indices(x.primal, pool_options(layer, [h, w]));
    let [_, _, ho, wo] = primal.dims();
    let tangents = x.tangents.map(|t| {
        let flat: Tensor<3> = t.reshape([k * b, c, h * w]);
        let idx: Tensor<3, Int> = indices.reshape([b, c, ho * wo]);
        let idx = if k == 1 { idx } else { idx.repeat_dim(0, k) };
        flat.gather(2, idx).reshape([k * b, c, ho, wo])
    });
    Duals { primal, tangents }
}

/// Batch normalisation over dimension 1, as [`crate::jvp::batch_norm`] (training mode reports
/// the primal's batch statistics), for `K` tangents:
/// `ẏ_k = γ̇_k·x̂ + β̇_k + γ·(ẋ_k − mean ẋ_k − x̂·mean(ẋ_k·x̂))/σ` (running statistics: `γ·ẋ_k/σ`).
pub(crate) fn batch_norm<const D: usize>(
    cur: &mut Cursor<'_>,
    norm: &BatchNorm,
    x: Duals<D>,
    ctx: &mut ForwardCtx,
) -> Duals<D> {
    let k = cur.members();
    let dims = x.primal.dims();
    let (b, c) = (dims[0], dims[1]);
    let s: usize = dims[2..].iter().product();
    let n = b * s;
    let mut next = || cur.take_full::<3>([0, c, 1]);
    let (g_dot, b_dot) = (next(), next());
    let _running = (next(), next());
    // primal, channels first: [C, N]
    let xs: Tensor<2> = x.primal.swap_dims(0, 1).reshape([c, n]);
    let gamma: Tensor<2> = norm.gamma.val().unsqueeze_dim(1);
    let beta: Tensor<2> = norm.beta.val().unsqueeze_dim(1);
    // tangents as [K, C, N]
    let dxs = x
        .tangents
        .map(|t| -> Tensor<3> { t.reshape([k, b, c, s]).swap_dims(1, 2).reshape([k, c, n]) });
    let (xhat, dxhat) = if ctx.train {
        let mean = xs.clone().mean_dim(1);
        let centered = xs - mean.clone();
        let var = centered.clone().powi_scalar(2).mean_dim(1);
        let std = (var.clone() + BatchNorm::EPSILON).sqrt();
        let xhat = centered / std.clone();
        let count = (n as f64).max(2.0);
        ctx.batch_stats.push((mean.squeeze_dim(1), var.squeeze_dim(1) * (count / (count - 1.0))));
        let xh: Tensor<3> = xhat.clone().unsqueeze_dim(0);
        let dxhat = dxs.map(|d| {
            let dmean = d.clone().mean_dim(2);
            let dproj = (d.clone() * xh.clone()).mean_dim(2);
            (d - dmean - xh * dproj) / std.unsqueeze_dim::<3>(0)
        });
        (xhat, dxhat)
    } else {
        let mean = norm.running_mean.val().unsqueeze_dim(1);
        let std = (norm.running_var.val().unsqueeze_dim(1) + BatchNorm::EPSILON).sqrt();
        let xhat = (xs - mean) / std.clone();
        (xhat, dxs.map(|d| d / std.unsqueeze_dim::<3>(0)))
    };
    let primal = xhat.clone() * gamma.clone() + beta;
    let mut tangents = g_dot * xhat.unsqueeze_dim::<3>(0) + b_dot; // [K, C, N]
    if let Some(d) = dxhat {
        tangents = tangents + d * gamma.unsqueeze_dim::<3>(0);
    }
    let mut swapped = dims;
    swapped.swap(0, 1);
    let mut wide = dims;
    wide[0] = k * b;
    Duals {
        primal: primal.reshape(swapped).swap_dims(0, 1),
        tangents: Some(tangents.reshape([k, c, b, s]).swap_dims(1, 2).reshape(wide)),
    }
}

/// Mean softmax cross-entropy and its derivative along each direction:
/// `L̇_k = mean_b Σ_c (softmax(z)_c − y_c)·ż_{k,c}` → (`[1]`, `[K]`).
pub fn cross_entropy(
    logits: Duals<2>,
    targets: &Tensor<1, Int>,
    k: usize,
) -> (Tensor<1>, Tensor<1>) {
    let [b, classes] = logits.primal.dims();
    let onehot = targets.clone().one_hot(classes).float();
    let logp = burn::tensor::activation::log_softmax(logits.primal.clone(), 1);
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

/// `a + b` (residual connections).
pub(crate) fn add<const D: usize>(a: Duals<D>, b: Duals<D>) -> Duals<D> {
    let tangents = match (a.tangents, b.tangents) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    Duals { primal: a.primal + b.primal, tangents }
}

/// Token embeddings: the primal from the layer's table, tangent `k` from the same rows of
/// direction `k`'s table (rows `k·vocab + token` of the stacked tables).
pub(crate) fn embedding(
    cur: &mut Cursor<'_>,
    layer: &Embedding,
    tokens: Tensor<2, Int>,
) -> Duals<3> {
    let k = cur.members();
    let [b, t] = tokens.dims();
    let [vocab, w] = layer.weight.lazy_shape().dims::<2>();
    let tables: Tensor<3> = cur.take_full([0, vocab, w]);
    let tangents = crate::stacked::embedding_rows(tables, tokens.clone(), true);
    Duals {
        primal: burn::tensor::module::embedding(layer.weight.val(), tokens),
        tangents: Some(tangents.reshape([k * b, t, w])),
    }
}

/// Learned positions `p[..t]` added to `x` `[b, t, w]`: tangent `k` gains `ṗ_k[..t]`.
pub(crate) fn add_positions(
    cur: &mut Cursor<'_>,
    positions: &Param<Tensor<2>>,
    x: Duals<3>,
) -> Duals<3> {
    let k = cur.members();
    let [b, t, w] = x.primal.dims();
    let len = positions.lazy_shape().dims::<2>()[0];
    let dpos: Tensor<3> = cur.take_full([0, len, w]);
    let dpos: Tensor<4> = dpos.narrow(1, 0, t).unsqueeze_dim(1); // [K, 1, t, w]
    let tangents = match x.tangents {
        Some(d) => d.reshape([k, b, t, w]) + dpos,
        None => dpos.repeat_dim(1, b),
    };
    Duals {
        primal: x.primal + positions.val().narrow(0, 0, t).unsqueeze_dim(0),
        tangents: Some(tangents.reshape([k * b, t, w])),
    }
}

/// A linear layer on `[b, t, in]` sequences (every position through [`linear`]).
pub(crate) fn linear_seq(cur: &mut Cursor<'_>, layer: &Linear, x: Duals<3>) -> Duals<3> {
    let k = cur.members();
    let [b, t, d] = x.primal.dims();
    let y = linear(cur, layer, x.reshape([b * t, d], k));
    let out = y.primal.dims()[1];
    y.reshape([b, t, out], k)
}

/// Layer normalisation over the last dimension, as [`crate::jvp::layer_norm`]:
/// `ẏ_k = γ̇_k·x̂ + β̇_k + γ·(ẋ_k − mean ẋ_k − x̂·mean(ẋ_k·x̂))/σ`.
pub(crate) fn layer_norm(cur: &mut Cursor<'_>, norm: &Norm, x: Duals<3>) -> Duals<3> {
    let k = cur.members();
    let [b, t, w] = x.primal.dims();
    let g_dot: Tensor<2> = cur.take_full([0, w]);
    let b_dot: Tensor<2> = cur.take_full([0, w]);
    let mean = x.primal.clone().mean_dim(2);
    let centered = x.primal - mean;
    let var = centered.clone().powi_scalar(2).mean_dim(2);
    let std = (var + Norm::EPSILON).sqrt();
    let xhat = centered / std.clone(); // [b, t, w]
    let row = |p: Tensor<1>| p.unsqueeze_dims::<3>(&[0, 1]);
    let primal = xhat.clone() * row(norm.gamma.val()) + row(norm.beta.val());
    let xh: Tensor<4> = xhat.unsqueeze_dim(0); // [1, b, t, w]
    let mut tangents = xh.clone() * g_dot.reshape([k, 1, 1, w]) + b_dot.reshape([k, 1, 1, w]);
    if let Some(d) = x.tangents {
        let d: Tensor<4> = d.reshape([k, b, t, w]);
        let dmean = d.clone().mean_dim(3);
        let dproj = (d.clone() * xh.clone()).mean_dim(3);
        let dxhat = (d - dmean - xh * dproj) / std.unsqueeze_dim::<4>(0);
        tangents = tangents + dxhat * norm.gamma.val().unsqueeze_dims::<4>(&[0, 1, 2]);
    }
    Duals { primal, tangents: Some(tangents.reshape([k * b, t, w])) }
}

/// GELU: `ẏ_k = ẋ_k·(Φ(x) + x·φ(x))`.
pub(crate) fn gelu<const D: usize>(x: Duals<D>, k: usize) -> Duals<D> {
    let tangents = x.tangents.map(|t| {
        let p = x.primal.clone();
        let cdf = (p.clone() * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * 0.5;
        let pdf =
            (p.clone().powi_scalar(2) * -0.5).exp() * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
        t * per_member(cdf + p * pdf, k)
    });
    Duals { primal: burn::tensor::activation::gelu(x.primal), tangents }
}

/// Dropout with the context's next mask, the same for the primal and every tangent.
pub(crate) fn dropout<const D: usize>(
    x: Duals<D>,
    p: f64,
    ctx: &mut ForwardCtx,
    k: usize,
) -> Duals<D> {
    let dims = x.primal.dims();
    match ctx.dropout_mask(p, dims, &x.primal.device()) {
        Some(m) => Duals {
            primal: x.primal * m.clone(),
            tangents: x.tangents.map(|t| t * per_member(m, k)),
        },
        None => x,
    }
}

/// Causal multi-head self-attention, as [`crate::jvp::attention`], for `K` tangents: scores
/// `ṡ = (q̇·kᵀ + q·k̇ᵀ)/√d`, softmax `ȧ = a⊙(ṡ − Σ a⊙ṡ)`, output `ȧ·v + a·v̇`. Tangents carry a
/// leading member axis `[K, b, heads, …]` and the primal factors (`q`, `k`, `v`, `a`) broadcast
/// over it, so none of them is copied per member.
pub(crate) fn attention(
    cur: &mut Cursor<'_>,
    block: &Block,
    heads: usize,
    x: Duals<3>,
    mask: &Tensor<2, Bool>,
) -> Duals<3> {
    let k = cur.members();
    let [b, t, w] = x.primal.dims();
    let dh = w / heads;
    let qkv = linear_seq(cur, &block.qkv, x);
    // [n, b, heads, t, dh] from rows [n·b, t, 3w], part i of q, k, v
    let split = |z: &Tensor<3>, n: usize, i: usize| -> Tensor<5> {
        z.clone()
            .slice([0..n * b, 0..t, i * w..(i + 1) * w])
            .reshape([n, b, t, heads, dh])
            .swap_dims(2, 3)
    };
    let (q, key, v) =
        (split(&qkv.primal, 1, 0), split(&qkv.primal, 1, 1), split(&qkv.primal, 1, 2));
    let dt = qkv.tangents.unwrap_or_else(|| Tensor::zeros([k * b, t, 3 * w], &q.device()));
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
    let merge = |z: Tensor<5>, n: usize| -> Tensor<3> { z.swap_dims(2, 3).reshape([n * b, t, w]) };
    let out = Duals { primal: merge(a.matmul(v), 1), tangents: Some(merge(dout, k)) };
    linear_seq(cur, &block.proj, out)
}

/// Each stacked rule against the one-direction rule of [`crate::jvp`] (itself checked against
/// autodiff layer by layer in `crates/hdo-core/tests/jvp.rs`): member `k` of the stacked tangents
/// must be the single rule's tangent for direction `k` and input tangent `k`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::jvp::{self, Dual};
    use crate::stacked::Stack;
    use burn::module::{Module, ModuleMapper, ModuleVisitor};
    use burn::nn::LinearConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;

    const K: usize = 3;

    /// Deterministic values in [-1, 1) (SplitMix64).
    fn values<const D: usize>(dims: [usize; D], seed: u64, dev: &Device) -> Tensor<D> {
        let n: usize = dims.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_data(TensorData::new(v, dims), dev)
    }

    /// A stack of `K` random directions for `module`'s float tensors.
    fn stack_for<M: Module>(module: &M, dev: &Device) -> Stack {
        struct Sizes(Vec<usize>);
        impl ModuleVisitor for Sizes {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0.push(p.lazy_shape().num_elements());
            }
        }
        let mut sizes = Sizes(Vec::new());
        module.visit(&mut sizes);
        let tensors =
            sizes.0.iter().enumerate().map(|(i, &n)| values([K, n], 500 + i as u64, dev)).collect();
        Stack { tensors, members: K }
    }

    /// Member `m` of `stack` as a module of `module`'s architecture.
    fn member<M: Module>(module: &M, stack: &Stack, m: usize) -> M {
        struct Row<'a>(&'a Stack, usize, usize);
        impl ModuleMapper for Row<'_> {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let t = self.0.tensors[self.2].clone();
                self.2 += 1;
                let m = self.1;
                p.map(|old| t.narrow(0, m, 1).reshape(old.dims()))
            }
        }
        module.clone().map(&mut Row(stack, m, 0))
    }

    fn close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>) {
        let n = want.shape().num_elements();
        let (g, w): (Vec<f32>, Vec<f32>) = (
            got.reshape([n]).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default(),
            want.reshape([n])
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default(),
        );
        assert_eq!(g.len(), n, "{what}: shape");
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what}: a degenerate check");
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}]: stacked {a} vs single {b}");
        }
    }

    /// One stacked rule against the single rule, with and without input tangents.
    fn check<M: Module, const D: usize, const E: usize>(
        name: &str,
        layer: &M,
        x: Tensor<D>,
        stacked: impl Fn(&mut Cursor<'_>, &M, Duals<D>) -> Duals<E>,
        single: impl Fn(&M, &M, Dual<D>) -> Dual<E>,
    ) {
        let dev = x.device();
        let stack = stack_for(layer, &dev);
        let b = x.dims()[0];
        let mut wide = x.dims();
        wide[0] *= K;
        let dx = values(wide, 77, &dev);
        for with_tangents in [true, false] {
            let input = Duals { primal: x.clone(), tangents: with_tangents.then(|| dx.clone()) };
            let out = Cursor::consume(&stack, |cur| Some(stacked(cur, layer, input))).unwrap();
            for m in 0..K {
                let tangent =
                    if with_tangents { dx.clone().narrow(0, m * b, b) } else { x.zeros_like() };
                let dir = member(layer, &stack, m);
                let one = single(layer, &dir, Dual { primal: x.clone(), tangent });
                let what = format!("{name}, input tangents {with_tangents}, member {m}");
                close(&what, out.primal.clone(), one.primal);
                let rows = one.tangent.dims()[0];
                match &out.tangents {
                    Some(t) => close(&what, t.clone().narrow(0, m * rows, rows), one.tangent),
                    // all-zero tangents are left out: the single rule's must be zero
                    None => {
                        let max = one.tangent.abs().max().into_scalar::<f32>();
                        assert_eq!(max, 0.0, "{what}: tangents left out but not zero");
                    }
                }
            }
        }
    }

    #[test]
    fn stacked_rules_match_the_single_rules_layer_by_layer() {
        let dev = Device::flex();
        let lin = LinearConfig::new(5, 4).init(&dev);
        check("linear", &lin, values([6, 5], 1, &dev), linear, jvp::linear);
        check("linear_seq", &lin, values([2, 3, 5], 2, &dev), linear_seq, jvp::linear);
        for groups in [1, 2] {
            let conv = Conv2dConfig::new([4, 6], [3, 3]).with_groups(groups).init(&dev);
            check(
                &format!("conv, groups {groups}"),
                &conv,
                values([2, 4, 5, 5], 3, &dev),
                conv2d_duals,
                jvp::conv2d_dual,
            );
        }
        let none = burn::nn::Relu::new();
        check("relu", &none, values([4, 7], 4, &dev), |_, _, x| relu(x, K), |_, _, x| jvp::relu(x));
        check(
            "gelu",
            &none,
            values([2, 3, 5], 5, &dev),
            |_, _, x| gelu(x, K),
            |_, _, x| jvp::gelu(x),
        );
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        check(
            "max-pool",
            &pool,
            values([2, 3, 6, 6], 6, &dev),
            |_, p, x| max_pool2d(p, x, K),
            |p, _, x| jvp::max_pool2d(p, x),
        );
        for train in [true, false] {
            let mut bn = BatchNorm::new(3, &dev);
            bn.gamma = Param::from_tensor(values([3], 7, &dev));
            bn.beta = Param::from_tensor(values([3], 8, &dev));
            bn.running_mean = Param::from_tensor(values([3], 9, &dev)).set_require_grad(false);
            bn.running_var =
                Param::from_tensor(values([3], 10, &dev).abs() + 0.5).set_require_grad(false);
            let ctx = || if train { ForwardCtx::train() } else { ForwardCtx::eval() };
            check(
                &format!("batch norm 4-D, train {train}"),
                &bn,
                values([4, 3, 3, 3], 11, &dev),
                |cur, l, x| batch_norm(cur, l, x, &mut ctx()),
                |l, d, x| jvp::batch_norm(l, d, x, &mut ctx()),
            );
            check(
                &format!("batch norm 2-D, train {train}"),
                &bn,
                values([6, 3], 12, &dev),
                |cur, l, x| batch_norm(cur, l, x, &mut ctx()),
                |l, d, x| jvp::batch_norm(l, d, x, &mut ctx()),
            );
        }
        let norm = |s| Norm {
            gamma: Param::from_tensor(values([8], s, &dev)),
            beta: Param::from_tensor(values([8], s + 1, &dev)),
        };
        check("layer norm", &norm(13), values([2, 4, 8], 15, &dev), layer_norm, jvp::layer_norm);
        let positions = Param::from_tensor(values([6, 8], 16, &dev));
        check(
            "positions",
            &positions,
            values([2, 4, 8], 17, &dev),
            add_positions,
            jvp::add_positions,
        );
        let linear = |i, o| LinearConfig::new(i, o).init(&dev);
        let block = Block {
            norm1: norm(20),
            qkv: linear(8, 24),
            proj: linear(8, 8),
            norm2: norm(22),
            fc1: linear(8, 16),
            fc2: linear(16, 8),
        };
        let mask = crate::transformer::causal_mask(4, &dev);
        check(
            "attention",
            &block,
            values([2, 4, 8], 18, &dev),
            |cur, l, x| {
                // the block's tensors in visiting order: norm1, [qkv, proj], norm2, fc1, fc2
                fn skip(cur: &mut Cursor<'_>, shape: &[usize]) {
                    match *shape {
                        [a] => drop(cur.take_full::<2>([0, a])),
                        [a, b] => drop(cur.take_full::<3>([0, a, b])),
                        _ => unreachable!(),
                    }
                }
                skip(cur, &[8]);
                skip(cur, &[8]);
                let y = attention(cur, l, 2, x, &mask);
                for shape in [&[8][..], &[8], &[8, 16], &[1, 16], &[16, 8], &[1, 8]] {
                    skip(cur, shape);
                }
                y
            },
            |l, d, x| jvp::attention(l, d, 2, x, &mask),
        );
        check(
            "dropout",
            &none,
            values([2, 4, 8], 19, &dev),
            |_, _, x| dropout(x, 0.3, &mut ForwardCtx::train_seeded(4), K),
            |_, _, x| jvp::dropout(x, 0.3, &mut ForwardCtx::train_seeded(4)),
        );
        check(
            "residual",
            &none,
            values([2, 4, 8], 21, &dev),
            |_, _, x| add(x.clone(), x),
            |_, _, x| jvp::add(x.clone(), x),
        );
        // inputs without tangents: token ids
        let table = burn::nn::EmbeddingConfig::new(6, 4).init(&dev);
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![0i64, 5, 2, 2, 1, 3, 4, 0], [2, 4]),
            &dev,
        );
        check(
            "embedding",
            &table,
            Tensor::<1>::zeros([1], &dev),
            |cur, l, _| embedding(cur, l, tokens.clone()),
            |l, d, _| jvp::embedding(l, d, tokens.clone()),
        );
    }

    #[test]
    fn stacked_cross_entropy_matches_the_single_rule() {
        let dev = Device::flex();
        let logits = values([5, 4], 30, &dev);
        let dz = values([K * 5, 4], 31, &dev);
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 1, 1, 2], [5]), &dev);
        let (loss, dloss) = cross_entropy(
            Duals { primal: logits.clone(), tangents: Some(dz.clone()) },
            &targets,
            K,
        );
        for m in 0..K {
            let one = Dual { primal: logits.clone(), tangent: dz.clone().narrow(0, m * 5, 5) };
            let (l1, d1) = jvp::cross_entropy(one, &targets);
            close("cross-entropy loss", loss.clone(), l1);
            close(&format!("cross-entropy member {m}"), dloss.clone().narrow(0, m, 1), d1);
        }
    }
}
