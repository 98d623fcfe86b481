//! The HDO paper's Brackets Transformer (Figure 4): pre-LayerNorm causal self-attention blocks
//! over token and learned position embeddings, and a linear head over the pooled sequence.
//!
//! Defaults are the authors' model: 2 blocks, 2 heads, width 4, MLP 4 → 16 → 4 with GELU, no
//! biases in linear layers, learned positions, head over the flattened sequence, dropout 0.1
//! (after attention and after the MLP, seeded through [`ForwardCtx`]). Width, depth, heads and
//! pooling (`flatten`, `mean`, `last`) are configurable. Attention is written out (scores, causal
//! mask, softmax, values) so that its forward-mode rule in [`crate::jvp`] mirrors it exactly.

use crate::jvp::{self, Dual};
use crate::jvp_stacked::{self, Duals};
use crate::stacked::{self, Cursor, StackInput};
use crate::{DataShape, ForwardCtx, Input};
use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::ops::AttentionModuleOptions;
use serde::{Deserialize, Serialize};

/// How the sequence of hidden states becomes one vector for the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Concatenate every position (the authors'): head input `len × width`.
    #[default]
    Flatten,
    /// Average over the real (non-padding) positions.
    Mean,
    /// The last real position — the stop token, which has seen the whole string under the causal
    /// mask.
    Last,
}

/// Options of `[model] kind = "transformer"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    /// Model width.
    pub width: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// Blocks.
    pub depth: usize,
    /// Hidden width of each block's MLP.
    pub mlp: usize,
    /// Pooling before the head.
    pub pooling: Pooling,
    /// Dropout probability.
    pub dropout: f64,
    /// Padding token id: `mean` pooling averages the other positions and `last` takes the last
    /// non-padding position, so those poolings do not depend on how much padding follows.
    pub pad_token: u32,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        TransformerConfig {
            width: 4,
            heads: 2,
            depth: 2,
            mlp: 16,
            pooling: Pooling::Flatten,
            dropout: 0.1,
            pad_token: 2,
        }
    }
}

/// Layer normalisation over the last dimension, with scale and shift.
#[derive(Module, Debug)]
pub struct Norm {
    /// Scale.
    pub gamma: Param<Tensor<1>>,
    /// Shift.
    pub beta: Param<Tensor<1>>,
}

impl Norm {
    /// Added to the variance.
    pub const EPSILON: f64 = 1e-5;

    fn new(width: usize, device: &Device) -> Self {
        Norm {
            gamma: Param::from_tensor(Tensor::ones([width], device)),
            beta: Param::from_tensor(Tensor::zeros([width], device)),
        }
    }

    /// `γ·(x − mean)/√(var + ε) + β` over the last dimension.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(2);
        let xhat = centered / (var + Self::EPSILON).sqrt();
        xhat * self.gamma.val().unsqueeze_dims::<3>(&[0, 1])
            + self.beta.val().unsqueeze_dims::<3>(&[0, 1])
    }
}

/// One pre-LN block: `h + drop(attn(LN(h)))`, then `h + drop(MLP(LN(h)))`.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Query, key and value projections, fused: `[width, 3·width]`.
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    /// Norm before the MLP.
    pub norm2: Norm,
    /// MLP up-projection.
    pub fc1: Linear,
    /// MLP down-projection.
    pub fc2: Linear,
}

/// The model.
#[derive(Module, Debug)]
pub struct Transformer {
    /// Token embeddings `[vocab, width]`.
    pub tokens: Embedding,
    /// Learned position embeddings `[len, width]`.
    pub positions: Param<Tensor<2>>,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Classifier over the pooled sequence.
    pub head: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Pooling code: 0 flatten, 1 mean over real tokens, 2 last real token.
    pub pooling: usize,
    /// Dropout probability.
    pub dropout: f64,
    /// Padding token id.
    pub pad_token: u32,
}

impl TransformerConfig {
    /// Every option in its range (see [`crate::ModelConfig::validate`]).
    pub fn validate(&self) -> Result<(), crate::ConfigProblem> {
        crate::width("model.width", self.width)?;
        crate::width("model.heads", self.heads)?;
        crate::width("model.depth", self.depth)?;
        crate::width("model.mlp", self.mlp)?;
        if !self.width.is_multiple_of(self.heads) {
            return Err(crate::ConfigProblem::new(
                "model.heads",
                format!("{} must divide model.width = {}", self.heads, self.width),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(crate::ConfigProblem::new(
                "model.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    /// Build the model for token sequences of `shape`.
    pub fn init(&self, shape: DataShape, device: &Device) -> Result<Transformer, String> {
        let (vocab, len) =
            shape.tokens().ok_or("the transformer needs a token data set (e.g. brackets)")?;
        self.validate().map_err(|p| format!("{}: {}", p.key, p.problem))?;
        if self.pad_token as usize >= vocab {
            return Err(format!(
                "model.pad_token = {} is not a token of the data (vocabulary of {vocab})",
                self.pad_token
            ));
        }
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).with_bias(false).init(device);
        let blocks = (0..self.depth)
            .map(|_| Block {
                norm1: Norm::new(self.width, device),
                qkv: lin(self.width, 3 * self.width),
                proj: lin(self.width, self.width),
                norm2: Norm::new(self.width, device),
                fc1: lin(self.width, self.mlp),
                fc2: lin(self.mlp, self.width),
            })
            .collect();
        let pooled = match self.pooling {
            Pooling::Flatten => len * self.width,
            Pooling::Mean | Pooling::Last => self.width,
        };
        Ok(Transformer {
            tokens: EmbeddingConfig::new(vocab, self.width).init(device),
            positions: Param::from_tensor(Tensor::zeros([len, self.width], device)),
            blocks,
            head: lin(pooled, shape.classes),
            heads: self.heads,
            pooling: self.pooling as usize,
            dropout: self.dropout,
            pad_token: self.pad_token,
        })
    }
}

/// `true` above the diagonal: position `i` may not attend to `j > i`.
pub fn causal_mask(len: usize, device: &Device) -> Tensor<2, Bool> {
    let v: Vec<bool> = (0..len * len).map(|k| k % len > k / len).collect();
    Tensor::from_data(TensorData::new(v, [len, len]), device)
}

impl Transformer {
    fn tokens_of(input: &Input) -> Tensor<2, Int> {
        match input {
            Input::Tokens(t) => t.clone(),
            Input::Images(_) => panic!("the transformer takes token inputs"),
        }
    }

    /// Logits `[batch, classes]`.
    pub fn forward(&self, input: &Input, ctx: &mut ForwardCtx) -> Tensor<2> {
        let tokens = Self::tokens_of(input);
        let t = tokens.dims()[1];
        let keep = keep_mask(&tokens, self.pad_token);
        let mut h =
            self.tokens.forward(tokens) + self.positions.val().narrow(0, 0, t).unsqueeze_dim(0); // [b, t, w]
        for block in &self.blocks {
            let a = attention(block, self.heads, block.norm1.forward(h.clone()));
            h = h + drop(a, self.dropout, ctx);
            let m = block.fc2.forward(burn::tensor::activation::gelu(
                block.fc1.forward(block.norm2.forward(h.clone())),
            ));
            h = h + drop(m, self.dropout, ctx);
        }
        self.head.forward(pool(h, self.pooling, &keep))
    }

    /// Logits and their derivative along `direction`'s parameters (same dropout masks as
    /// [`Transformer::forward`] with the same context seed).
    pub fn forward_jvp(
        &self,
        direction: &Transformer,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Dual<2> {
        let tokens = Self::tokens_of(input);
        let t = tokens.dims()[1];
        let device = tokens.device();
        let mask = causal_mask(t, &device);
        let keep = keep_mask(&tokens, self.pad_token);
        let emb = jvp::embedding(&self.tokens, &direction.tokens, tokens);
        let mut h = jvp::add_positions(&self.positions, &direction.positions, emb);
        for (block, dir) in self.blocks.iter().zip(&direction.blocks) {
            let a = jvp::layer_norm(&block.norm1, &dir.norm1, h.clone());
            let a = jvp::attention(block, dir, self.heads, a, &mask);
            h = jvp::add(h, jvp::dropout(a, self.dropout, ctx));
            let m = jvp::layer_norm(&block.norm2, &dir.norm2, h.clone());
            let m =
                jvp::linear(&block.fc2, &dir.fc2, jvp::gelu(jvp::linear(&block.fc1, &dir.fc1, m)));
            h = jvp::add(h, jvp::dropout(m, self.dropout, ctx));
        }
        // pooling is linear in h with a constant mask
        let pooled = jvp::linear_map(h, |x| pool(x, self.pooling, &keep));
        jvp::linear(&self.head, &direction.head, pooled)
    }
}

impl Transformer {
    /// Logits `[K, batch, classes]` of the stack's `K` members: the members' hidden states carry a
    /// leading axis `[K, b, t, w]`; embeddings are rows of the members' stacked tables, linear
    /// layers batched matrix products, and attention runs over `K·b` sequences at once. Dropout
    /// masks are those of [`Transformer::forward`] with the same context seed, shared by every
    /// member.
    pub(crate) fn forward_stacked(
        &self,
        cur: &mut Cursor<'_>,
        input: StackInput<'_>,
        ctx: &ForwardCtx,
    ) -> Tensor<3> {
        let k = cur.members();
        let tokens = Self::tokens_of(input.input()); // [b or K·b, t]
        let [rows, t] = tokens.dims();
        let b = if input.is_shared() { rows } else { rows / k };
        let [vocab, w] = self.tokens.weight.lazy_shape().dims::<2>();
        let len = self.positions.lazy_shape().dims::<2>()[0];
        let tables: Tensor<3> = cur.take_full([0, vocab, w]);
        let emb = stacked::embedding_rows(tables, tokens.clone(), input.is_shared());
        let positions: Tensor<3> = cur.take_full([0, len, w]);
        let positions = positions.narrow(1, 0, t).unsqueeze_dim::<4>(1); // [K, 1, t, w]
        let mut h = emb.reshape([k, b, t, w]) + positions;
        let mut dctx =
            ForwardCtx { train: ctx.train, dropout_seed: ctx.dropout_seed, ..Default::default() };
        for block in &self.blocks {
            let x = norm_stacked(cur, h.clone());
            let qkv = linear_stacked(cur, &block.qkv, x).reshape([k * b, t, 3 * w]);
            let a = attend(qkv, self.heads).reshape([k, b, t, w]);
            let a = linear_stacked(cur, &block.proj, a);
            h = h + drop_stacked(a, self.dropout, &mut dctx);
            let x = norm_stacked(cur, h.clone());
            let m = burn::tensor::activation::gelu(linear_stacked(cur, &block.fc1, x));
            let m = linear_stacked(cur, &block.fc2, m);
            h = h + drop_stacked(m, self.dropout, &mut dctx);
        }
        let keep = keep_mask(&tokens, self.pad_token);
        let keep = if input.is_shared() { keep.repeat_dim(0, k) } else { keep }; // [K·b, t]
        let pooled = pool(h.reshape([k * b, t, w]), self.pooling, &keep);
        let features = pooled.dims()[1];
        stacked::linear(cur, &self.head, pooled.reshape([k, b, features]))
    }
}

impl Transformer {
    /// Logits and their derivatives along the stack's `K` directions: one primal pass, `K`
    /// tangents member-major along the batch axis ([`jvp_stacked`]), the same dropout masks as
    /// [`Transformer::forward_jvp`] with the same context seed.
    pub(crate) fn forward_jvp_stacked(
        &self,
        cur: &mut Cursor<'_>,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Duals<2> {
        let k = cur.members();
        let tokens = Self::tokens_of(input);
        let t = tokens.dims()[1];
        let device = tokens.device();
        let mask = causal_mask(t, &device);
        let keep = keep_mask(&tokens, self.pad_token);
        let h = jvp_stacked::embedding(cur, &self.tokens, tokens);
        let mut h = jvp_stacked::add_positions(cur, &self.positions, h);
        for block in &self.blocks {
            let a = jvp_stacked::layer_norm(cur, &block.norm1, h.clone());
            let a = jvp_stacked::attention(cur, block, self.heads, a, &mask);
            h = jvp_stacked::add(h, jvp_stacked::dropout(a, self.dropout, ctx, k));
            let m = jvp_stacked::layer_norm(cur, &block.norm2, h.clone());
            let m = jvp_stacked::gelu(jvp_stacked::linear_seq(cur, &block.fc1, m), k);
            let m = jvp_stacked::linear_seq(cur, &block.fc2, m);
            h = jvp_stacked::add(h, jvp_stacked::dropout(m, self.dropout, ctx, k));
        }
        // pooling is linear in h with a constant mask: the same map on the primal and tangents
        let wide = if k == 1 { keep.clone() } else { keep.clone().repeat_dim(0, k) };
        let pooled = Duals {
            primal: pool(h.primal, self.pooling, &keep),
            tangents: h.tangents.map(|d| pool(d, self.pooling, &wide)),
        };
        jvp_stacked::linear(cur, &self.head, pooled)
    }
}

/// Pool hidden states `[b, t, w]` to `[b, w·(t or 1)]`: flatten, masked mean over real tokens, or
/// the last real token (`keep` is 1 for real tokens, 0 for padding, `[b, t]`).
fn pool(h: Tensor<3>, pooling: usize, keep: &Tensor<2>) -> Tensor<2> {
    let [b, t, w] = h.dims();
    match pooling {
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

/// 1 for real tokens, 0 for padding.
fn keep_mask(tokens: &Tensor<2, Int>, pad: u32) -> Tensor<2> {
    tokens.clone().not_equal_elem(pad as i64).float()
}

/// Multiply by the next dropout mask, if any.
fn drop(x: Tensor<3>, p: f64, ctx: &mut ForwardCtx) -> Tensor<3> {
    let dims = x.dims();
    match ctx.dropout_mask(p, dims, &x.device()) {
        Some(m) => x * m,
        None => x,
    }
}

/// Causal multi-head self-attention of `x` `[b, t, w]`.
pub fn attention(block: &Block, heads: usize, x: Tensor<3>) -> Tensor<3> {
    block.proj.forward(attend(block.qkv.forward(x), heads))
}

/// The attention between the projections: fused queries, keys and values `[b, t, 3w]` to the
/// heads' outputs `[b, t, w]`, `softmax(q·kᵀ/√d_h + causal mask)·v` — through Burn's fused
/// attention operation, which on the CPU and the GPU streams over keys (flash attention) for long
/// sequences instead of materialising `[b, heads, t, t]` scores (on autodiff devices it is
/// differentiated through its decomposition).
fn attend(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    let [b, t, w3] = qkv.dims();
    let w = w3 / 3;
    let dh = w / heads;
    let split = |z: Tensor<3>| -> Tensor<4> { z.reshape([b, t, heads, dh]).swap_dims(1, 2) }; // [b, h, t, dh]
    let q = split(qkv.clone().slice([0..b, 0..t, 0..w]));
    let k = split(qkv.clone().slice([0..b, 0..t, w..2 * w]));
    let v = split(qkv.slice([0..b, 0..t, 2 * w..3 * w]));
    let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
    let out = burn::tensor::module::attention(q, k, v, None, None, options);
    out.swap_dims(1, 2).reshape([b, t, w])
}

/// Layer normalisation of each member's hidden states `[K, b, t, w]` with its own scale and shift.
fn norm_stacked(cur: &mut Cursor<'_>, x: Tensor<4>) -> Tensor<4> {
    let [k, _, _, w] = x.dims();
    let gamma: Tensor<2> = cur.take_full([0, w]);
    let beta: Tensor<2> = cur.take_full([0, w]);
    let mean = x.clone().mean_dim(3);
    let centered = x - mean;
    let var = centered.clone().powi_scalar(2).mean_dim(3);
    let xhat = centered / (var + Norm::EPSILON).sqrt();
    xhat * gamma.reshape([k, 1, 1, w]) + beta.reshape([k, 1, 1, w])
}

/// A bias-free linear layer on each member's `[K, b, t, in]`.
fn linear_stacked(cur: &mut Cursor<'_>, layer: &Linear, x: Tensor<4>) -> Tensor<4> {
    let [k, b, t, d] = x.dims();
    let y = stacked::linear(cur, layer, x.reshape([k, b * t, d]));
    let out = y.dims()[2];
    y.reshape([k, b, t, out])
}

/// Dropout on every member with the mask one replica's pass would draw (members see the same
/// network, as the copies of one node's step do).
fn drop_stacked(x: Tensor<4>, p: f64, ctx: &mut ForwardCtx) -> Tensor<4> {
    let [_, b, t, w] = x.dims();
    match ctx.dropout_mask(p, [b, t, w], &x.device()) {
        Some(m) => x * m.unsqueeze_dim::<4>(0),
        None => x,
    }
}
