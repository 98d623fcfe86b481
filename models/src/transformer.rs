//! The HDO paper's Brackets Transformer (Figure 4): pre-LayerNorm causal self-attention blocks
//! over token and learned position embeddings, and a linear head over the pooled sequence.
//!
//! Defaults are the authors' model: 2 blocks, 2 heads, width 4, MLP 4 → 16 → 4 with GELU, no
//! biases in linear layers, learned positions, head over the flattened sequence, dropout 0.1
//! (after attention and after the MLP, seeded through [`ForwardCtx`]). Width, depth, heads and
//! pooling (`flatten`, `mean`, `last`) are configurable. Attention is written out (scores, causal
//! mask, softmax, values) in its forward-mode rule ([`crate::layers::attention`]).

use crate::exec::{Architecture, Exec};
use crate::input::{DataShape, Input};
use crate::layers::{CausalAttention, Dropout, Gelu, Norm, Positions, SeqPool};
use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
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

impl Architecture for Transformer {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let keep = match input {
            Input::Tokens(t) => t.clone().not_equal_elem(self.pad_token as i64).float(),
            Input::Images(_) => panic!("the transformer takes token inputs (its config checks)"),
        };
        let attention = CausalAttention { heads: self.heads };
        let drop = Dropout { p: self.dropout };
        let h = exec.embed(&self.tokens, input);
        let mut h = exec.apply(&Positions(self.positions.clone()), h); // [b, t, w]
        for block in &self.blocks {
            let a = exec.apply(&block.norm1, h.clone());
            let a = exec.apply(&block.qkv, a);
            let a = exec.apply(&attention, a);
            let a = exec.apply(&block.proj, a);
            let a = exec.apply(&drop, a);
            h = exec.add(h, a);
            let m = exec.apply(&block.norm2, h.clone());
            let m = exec.apply(&block.fc1, m);
            let m = exec.apply(&Gelu, m);
            let m = exec.apply(&block.fc2, m);
            let m = exec.apply(&drop, m);
            h = exec.add(h, m);
        }
        let pooled = exec.apply(&SeqPool { pooling: self.pooling, keep }, h);
        exec.apply(&self.head, pooled)
    }
}
