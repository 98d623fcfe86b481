//! Forward-mode differentiation: every layer our models use, on dual `(primal, tangent)` tensors.
//!
//! Burn has reverse-mode autodiff only. A forward gradient (Baydin et al. 2022) needs the
//! directional derivative `u·∇F` along a parameter direction `u`, which forward mode computes in
//! one pass carrying tangents — no backward pass, no graph, memory ≈ two activations. The
//! parameter tangents are given as a second module of the same architecture whose trainable
//! tensors hold `u` (its running statistics are ignored). Each function here is the derivative
//! rule of one layer (linear, convolution, batch and layer normalisation, ReLU, GELU, max-pooling,
//! embeddings, learned positions, residual sums, linear maps such as pooling, dropout, causal
//! softmax attention, cross-entropy); models compose them in `forward_jvp`. Checked against autodiff per layer
//! and per model in `crates/hdo-core/tests/jvp.rs`.

use crate::transformer::{Block, Norm};
use crate::{BatchNorm, ForwardCtx};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Embedding, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::module::{conv2d, linear as burn_linear, max_pool2d_with_indices};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

/// A value and its directional derivative.
#[derive(Debug, Clone)]
pub struct Dual<const D: usize> {
    /// The value.
    pub primal: Tensor<D>,
    /// Its derivative along the direction.
    pub tangent: Tensor<D>,
}

impl<const D: usize> Dual<D> {
    /// A constant (zero tangent), e.g. the input batch.
    pub fn constant(primal: Tensor<D>) -> Self {
        let tangent = primal.zeros_like();
        Dual { primal, tangent }
    }

    /// Reshape both parts.
    pub fn reshape<const E: usize>(self, shape: [usize; E]) -> Dual<E> {
        Dual { primal: self.primal.reshape(shape), tangent: self.tangent.reshape(shape) }
    }
}

/// `y = x·W + b` → `ẏ = ẋ·W + x·Ẇ + ḃ` (`W` is `[in, out]`; any leading dimensions).
pub fn linear<const D: usize>(layer: &Linear, dir: &Linear, x: Dual<D>) -> Dual<D> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    let dbias = dir.bias.as_ref().map(|b| b.val());
    let primal = burn_linear(x.primal.clone(), layer.weight.val(), bias);
    let tangent = burn_linear(x.tangent, layer.weight.val(), None)
        + burn_linear(x.primal, dir.weight.val(), dbias);
    Dual { primal, tangent }
}

/// Sum of two duals (residual connections, embeddings + positions), broadcasting like `+`.
pub fn add<const D: usize>(a: Dual<D>, b: Dual<D>) -> Dual<D> {
    Dual { primal: a.primal + b.primal, tangent: a.tangent + b.tangent }
}

/// Learned positions `[len, w]` added to hidden states `[b, t, w]` (first `t` rows): the tangent
/// gains the direction's rows.
pub fn add_positions(
    positions: &burn::module::Param<Tensor<2>>,
    dir: &burn::module::Param<Tensor<2>>,
    h: Dual<3>,
) -> Dual<3> {
    let t = h.primal.dims()[1];
    let rows = |p: &burn::module::Param<Tensor<2>>| p.val().narrow(0, 0, t).unsqueeze_dim(0);
    add(h, Dual { primal: rows(positions), tangent: rows(dir) })
}

/// A map linear in its input with constant coefficients (reshapes, pooling with a fixed mask):
/// the same map on the primal and the tangent.
pub fn linear_map<const D: usize, const E: usize>(
    x: Dual<D>,
    f: impl Fn(Tensor<D>) -> Tensor<E>,
) -> Dual<E> {
    Dual { primal: f(x.primal), tangent: f(x.tangent) }
}

/// Embedding lookup: the tangent is the direction's rows for the same tokens.
pub fn embedding(layer: &Embedding, dir: &Embedding, tokens: Tensor<2, Int>) -> Dual<3> {
    Dual {
        primal: burn::tensor::module::embedding(layer.weight.val(), tokens.clone()),
        tangent: burn::tensor::module::embedding(dir.weight.val(), tokens),
    }
}

/// Layer normalisation over the last dimension:
/// `ẏ = γ̇·x̂ + β̇ + γ·(ẋ − mean ẋ − x̂·mean(ẋ·x̂))/σ`.
pub fn layer_norm(layer: &Norm, dir: &Norm, x: Dual<3>) -> Dual<3> {
    let mean = x.primal.clone().mean_dim(2);
    let centered = x.primal - mean;
    let var = centered.clone().powi_scalar(2).mean_dim(2);
    let std = (var + Norm::EPSILON).sqrt();
    let xhat = centered / std.clone();
    let dmean = x.tangent.clone().mean_dim(2);
    let dproj = (x.tangent.clone() * xhat.clone()).mean_dim(2);
    let dxhat = (x.tangent - dmean - xhat.clone() * dproj) / std;
    let row = |p: &burn::module::Param<Tensor<1>>| p.val().unsqueeze_dims::<3>(&[0, 1]);
    Dual {
        primal: xhat.clone() * row(&layer.gamma) + row(&layer.beta),
        tangent: xhat * row(&dir.gamma) + row(&dir.beta) + dxhat * row(&layer.gamma),
    }
}

/// GELU `y = x·Φ(x)` (exact, erf-based, as Burn's): `ẏ = ẋ·(Φ(x) + x·φ(x))`.
pub fn gelu<const D: usize>(x: Dual<D>) -> Dual<D> {
    let cdf = (x.primal.clone() * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * 0.5;
    let pdf = (x.primal.clone().powi_scalar(2) * -0.5).exp()
        * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
    let slope = cdf + x.primal.clone() * pdf;
    Dual { primal: burn::tensor::activation::gelu(x.primal), tangent: x.tangent * slope }
}

/// Dropout with the context's next mask (the same mask for primal and tangent).
pub fn dropout<const D: usize>(x: Dual<D>, p: f64, ctx: &mut ForwardCtx) -> Dual<D> {
    let dims = x.primal.dims();
    match ctx.dropout_mask(p, dims, &x.primal.device()) {
        Some(m) => Dual { primal: x.primal * m.clone(), tangent: x.tangent * m },
        None => x,
    }
}

/// Causal multi-head self-attention (see [`crate::transformer::attention`]):
/// `S = QKᵀ/√d_h` → `Ṡ = (Q̇Kᵀ + QK̇ᵀ)/√d_h`; `A = softmax(S)` → `Ȧ = A⊙(Ṡ − Σ_j A⊙Ṡ)`;
/// `O = AV` → `Ȯ = ȦV + AV̇`; masked scores are constant.
pub fn attention(
    block: &Block,
    dir: &Block,
    heads: usize,
    x: Dual<3>,
    mask: &Tensor<2, Bool>,
) -> Dual<3> {
    let [b, t, w] = x.primal.dims();
    let dh = w / heads;
    let split = |z: Tensor<3>| -> Tensor<4> { z.reshape([b, t, heads, dh]).swap_dims(1, 2) };
    let qkv = linear(&block.qkv, &dir.qkv, x);
    let part = |z: &Tensor<3>, i: usize| split(z.clone().slice([0..b, 0..t, i * w..(i + 1) * w]));
    let (q, k, v) = (part(&qkv.primal, 0), part(&qkv.primal, 1), part(&qkv.primal, 2));
    let (dq, dk, dv) = (part(&qkv.tangent, 0), part(&qkv.tangent, 1), part(&qkv.tangent, 2));
    let scale = 1.0 / (dh as f64).sqrt();
    let full_mask = mask.clone().unsqueeze_dims::<4>(&[0, 1]).expand([b, heads, t, t]);
    let scores = (q.clone().matmul(k.clone().swap_dims(2, 3)) * scale)
        .mask_fill(full_mask.clone(), f32::NEG_INFINITY);
    let dscores = ((dq.matmul(k.swap_dims(2, 3)) + q.matmul(dk.swap_dims(2, 3))) * scale)
        .mask_fill(full_mask, 0.0);
    let a = softmax(scores, 3);
    let da = a.clone() * (dscores.clone() - (a.clone() * dscores).sum_dim(3));
    let out = a.clone().matmul(v.clone());
    let dout = da.matmul(v) + a.matmul(dv);
    let merge = |z: Tensor<4>| -> Tensor<3> { z.swap_dims(1, 2).reshape([b, t, w]) };
    linear(&block.proj, &dir.proj, Dual { primal: merge(out), tangent: merge(dout) })
}

/// `y = conv(x, W) + b` → `ẏ = conv(ẋ, W) + conv(x, Ẇ) + ḃ`.
pub fn conv2d_dual(layer: &Conv2d, dir: &Conv2d, x: Dual<4>) -> Dual<4> {
    let [_, _, h, w] = x.primal.dims();
    let ((top, bottom), (left, right)) =
        padding_pairs(&layer.padding, [h, w], layer.kernel_size, layer.stride, layer.dilation);
    let options = || {
        ConvOptions::new_with_padding(
            layer.stride,
            [(top, bottom), (left, right)],
            layer.dilation,
            layer.groups,
        )
    };
    let bias = layer.bias.as_ref().map(|b| b.val());
    let dbias = dir.bias.as_ref().map(|b| b.val());
    let primal = conv2d(x.primal.clone(), layer.weight.val(), bias, options());
    let tangent = conv2d(x.tangent, layer.weight.val(), None, options())
        + conv2d(x.primal, dir.weight.val(), dbias, options());
    Dual { primal, tangent }
}

/// `((top, bottom), (left, right))` padding of a 2-D window (Burn's own helper is private):
/// explicit values as given, `Valid` none, `Same` the total `(⌈n/s⌉−1)·s + (k−1)·d + 1 − n`
/// split with the extra element at the end.
pub(crate) fn padding_pairs(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    match *padding {
        PaddingConfig2d::Explicit(t, l, b, r) => ((t, b), (l, r)),
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => {
            let pair = |i: usize| {
                let out = size[i].div_ceil(stride[i]);
                let total = ((out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1)
                    .saturating_sub(size[i]);
                (total / 2, total - total / 2)
            };
            (pair(0), pair(1))
        }
    }
}

/// `y = max(x, 0)` → `ẏ = ẋ·1[x > 0]`.
pub fn relu<const D: usize>(x: Dual<D>) -> Dual<D> {
    let mask = x.primal.clone().greater_elem(0.0).float();
    Dual { primal: x.primal.clamp_min(0.0), tangent: x.tangent * mask }
}

/// The functional options of `layer` on an input of `size` (its padding resolved).
pub(crate) fn pool_options(layer: &MaxPool2d, size: [usize; 2]) -> MaxPoolOptions<2> {
    let ((top, bottom), (left, right)) =
        padding_pairs(&layer.padding, size, layer.kernel_size, layer.stride, layer.dilation);
    MaxPoolOptions::new(layer.kernel_size)
        .with_stride(layer.stride)
        .with_padding_pairs([(top, bottom), (left, right)])
        .with_dilation(layer.dilation)
        .with_ceil_mode(layer.ceil_mode)
}

/// Max-pooling → the tangent of the selected input element.
pub fn max_pool2d(layer: &MaxPool2d, x: Dual<4>) -> Dual<4> {
    let [b, c, h, w] = x.primal.dims();
    let (primal, indices) = max_pool2d_with_indices(x.primal, pool_options(layer, [h, w]));
    let [_, _, ho, wo] = primal.dims();
    let flat: Tensor<3> = x.tangent.reshape([b, c, h * w]);
    let tangent = flat.gather(2, indices.reshape([b, c, ho * wo])).reshape([b, c, ho, wo]);
    Dual { primal, tangent }
}

/// Move channels (dim 1) to the front and flatten the rest: `[C, n]`, and back.
fn channels_first<const D: usize>(t: Tensor<D>) -> Tensor<2> {
    let c = t.dims()[1];
    let n = t.shape().num_elements() / c;
    t.swap_dims(0, 1).reshape([c, n])
}

fn channels_back<const D: usize>(t: Tensor<2>, like: [usize; D]) -> Tensor<D> {
    let mut swapped = like;
    swapped.swap(0, 1);
    t.reshape(swapped).swap_dims(0, 1)
}

/// Batch normalisation. Training mode (batch statistics `μ`, `σ² ` over all but the channel
/// dimension): `ẏ = γ̇·x̂ + β̇ + γ·(ẋ − mean ẋ − x̂·mean(ẋ·x̂))/σ`; it reports the batch
/// statistics like [`BatchNorm::forward`]. Evaluation mode (running statistics):
/// `ẏ = γ̇·x̂ + β̇ + γ·ẋ/σ_running`.
pub fn batch_norm<const D: usize>(
    layer: &BatchNorm,
    dir: &BatchNorm,
    x: Dual<D>,
    ctx: &mut ForwardCtx,
) -> Dual<D> {
    let dims = x.primal.dims();
    let xs = channels_first(x.primal);
    let dxs = channels_first(x.tangent);
    let n = xs.dims()[1] as f64;
    let (gamma, beta) = (layer.gamma.val().unsqueeze_dim(1), layer.beta.val().unsqueeze_dim(1));
    let (dgamma, dbeta) = (dir.gamma.val().unsqueeze_dim(1), dir.beta.val().unsqueeze_dim(1));
    let (xhat, dxhat) = if ctx.train {
        let mean = xs.clone().mean_dim(1); // [C, 1]
        let centered = xs - mean.clone();
        let var = centered.clone().powi_scalar(2).mean_dim(1);
        let std = (var.clone() + BatchNorm::EPSILON).sqrt();
        let xhat = centered / std.clone();
        let dmean = dxs.clone().mean_dim(1);
        let dproj = (dxs.clone() * xhat.clone()).mean_dim(1);
        let dxhat = (dxs - dmean - xhat.clone() * dproj) / std;
        let count = n.max(2.0);
        ctx.batch_stats.push((mean.squeeze_dim(1), var.squeeze_dim(1) * (count / (count - 1.0))));
        (xhat, dxhat)
    } else {
        let mean = layer.running_mean.val().unsqueeze_dim(1);
        let std = (layer.running_var.val().unsqueeze_dim(1) + BatchNorm::EPSILON).sqrt();
        ((xs - mean) / std.clone(), dxs / std)
    };
    let primal = xhat.clone() * gamma.clone() + beta;
    let tangent = dgamma * xhat + dbeta + gamma * dxhat;
    Dual { primal: channels_back(primal, dims), tangent: channels_back(tangent, dims) }
}

/// Mean softmax cross-entropy and its directional derivative:
/// `L̇ = mean_b Σ_c (softmax(z)_c − y_c)·ż_c`.
pub fn cross_entropy(logits: Dual<2>, targets: &Tensor<1, Int>) -> (Tensor<1>, Tensor<1>) {
    let [b, classes] = logits.primal.dims();
    let onehot = targets.clone().one_hot(classes).float();
    let logp = log_softmax(logits.primal.clone(), 1);
    let loss = (logp * onehot.clone()).sum().neg() / b as f64;
    let p = softmax(logits.primal, 1);
    let dloss = ((p - onehot) * logits.tangent).sum() / b as f64;
    (loss, dloss)
}
