//! The HDO paper's CNN (Figure 1): three 3×3 convolutions with batch norm and ReLU, max-pooling
//! after the second and third, then three linear layers.
//!
//! Follows the authors' `CustomNN`: conv channels double from 8 (8 → 16 → 32), hidden linear
//! layers are Linear → BatchNorm1d → ReLU. Departure: the output layer feeds softmax
//! cross-entropy directly, not BatchNorm + sigmoid.

use crate::jvp_stacked::{self, Duals};
use crate::stacked::{self, Cursor, StackInput};
use crate::{BatchNorm, Dual, ForwardCtx, Input, jvp};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Options of `[model] kind = "cnn"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of the three convolutions.
    pub channels: [usize; 3],
    /// Widths of the hidden linear layers (the output layer is added).
    pub hidden: Vec<usize>,
}

impl Default for CnnConfig {
    fn default() -> Self {
        CnnConfig { channels: [8, 16, 32], hidden: vec![128, 128] }
    }
}

/// A convolution followed by batch norm and ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// 3×3 convolution, padding 1.
    pub conv: Conv2d,
    /// Per-channel normalisation.
    pub norm: BatchNorm,
}

/// A hidden linear layer followed by batch norm and ReLU.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// Linear layer.
    pub linear: Linear,
    /// Per-feature normalisation.
    pub norm: BatchNorm,
}

/// The CNN.
#[derive(Module, Debug)]
pub struct Cnn {
    /// The three convolution blocks.
    pub convs: Vec<ConvBlock>,
    /// 2×2 max-pooling (after the 2nd and 3rd block).
    pub pool: MaxPool2d,
    /// Hidden linear blocks.
    pub dense: Vec<DenseBlock>,
    /// Output layer.
    pub head: Linear,
}

impl CnnConfig {
    /// Build the CNN for images of `image`.
    pub fn init(&self, image: [usize; 3], classes: usize, device: &Device) -> Cnn {
        let [c, h, w] = image;
        let mut inputs = c;
        let convs = self
            .channels
            .iter()
            .map(|&out| {
                let conv = Conv2dConfig::new([inputs, out], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                inputs = out;
                ConvBlock { conv, norm: BatchNorm::new(out, device) }
            })
            .collect();
        let mut features = self.channels[2] * (h / 4) * (w / 4);
        let dense = self
            .hidden
            .iter()
            .map(|&width| {
                let linear = LinearConfig::new(features, width).init(device);
                features = width;
                DenseBlock { linear, norm: BatchNorm::new(width, device) }
            })
            .collect();
        Cnn {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense,
            head: LinearConfig::new(features, classes).init(device),
        }
    }
}

impl Cnn {
    /// Logits `[batch, classes]`.
    pub fn forward(&self, input: &Input, ctx: &mut ForwardCtx) -> Tensor<2> {
        let Input::Images(mut x) = input.clone() else { panic!("the CNN takes image inputs") };
        for (i, block) in self.convs.iter().enumerate() {
            x = relu(block.norm.forward(block.conv.forward(x), ctx)); // [b, c_i, h, w]
            if i >= 1 {
                x = self.pool.forward(x); // halves h and w
            }
        }
        let mut x: Tensor<2> = x.flatten(1, 3); // [b, c_3 · h/4 · w/4]
        for block in &self.dense {
            x = relu(block.norm.forward(block.linear.forward(x), ctx));
        }
        self.head.forward(x)
    }

    /// Logits and their derivative along `direction`'s parameters (same layer order as
    /// [`Cnn::forward`], so batch statistics are reported in the same order).
    pub fn forward_jvp(&self, direction: &Cnn, input: &Input, ctx: &mut ForwardCtx) -> Dual<2> {
        let Input::Images(x) = input.clone() else { panic!("the CNN takes image inputs") };
        let mut x = Dual::constant(x);
        for (i, (block, dir)) in self.convs.iter().zip(&direction.convs).enumerate() {
            let y = jvp::conv2d_dual(&block.conv, &dir.conv, x);
            x = jvp::relu(jvp::batch_norm(&block.norm, &dir.norm, y, ctx));
            if i >= 1 {
                x = jvp::max_pool2d(&self.pool, x);
            }
        }
        let [b, c, h, w] = x.primal.dims();
        let mut x: Dual<2> = x.reshape([b, c * h * w]);
        for (block, dir) in self.dense.iter().zip(&direction.dense) {
            x = jvp::relu(jvp::batch_norm(
                &block.norm,
                &dir.norm,
                jvp::linear(&block.linear, &dir.linear, x),
                ctx,
            ));
        }
        jvp::linear(&self.head, &direction.head, x)
    }

    /// Logits `[K, batch, classes]` of the stack's `K` members: members are convolution groups,
    /// then a leading axis of batched matrix products (same layer order as [`Cnn::forward`]).
    pub(crate) fn forward_stacked(
        &self,
        cur: &mut Cursor<'_>,
        input: StackInput<'_>,
        ctx: &ForwardCtx,
    ) -> Tensor<3> {
        let Input::Images(mut x) = input.input().clone() else {
            panic!("the CNN takes image inputs")
        };
        if !input.is_shared() {
            x = stacked::members_as_channels(x, cur.members()); // [b, K·c, h, w]
        }
        for (i, block) in self.convs.iter().enumerate() {
            let shared = i == 0 && input.is_shared();
            x = stacked::conv2d_stacked(cur, &block.conv, x, shared); // [b, K·c_i, h, w]
            x = relu(stacked::batch_norm_channels(cur, &block.norm, x, ctx));
            if i >= 1 {
                x = self.pool.forward(x);
            }
        }
        let mut x = stacked::members_first(x, cur.members()); // [K, b, c_3 · h/4 · w/4]
        for block in &self.dense {
            let y = stacked::linear(cur, &block.linear, x);
            x = relu(stacked::batch_norm_features(cur, &block.norm, y, ctx));
        }
        stacked::linear(cur, &self.head, x)
    }

    /// Logits and their derivatives along the stack's `K` directions (one primal pass, same
    /// layer order and batch statistics as [`Cnn::forward_jvp`]).
    pub(crate) fn forward_jvp_stacked(
        &self,
        cur: &mut Cursor<'_>,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Duals<2> {
        let Input::Images(x) = input.clone() else { panic!("the CNN takes image inputs") };
        let k = cur.members();
        let mut x = Duals::constant(x);
        for (i, block) in self.convs.iter().enumerate() {
            let y = jvp_stacked::conv2d_duals(cur, &block.conv, x);
            x = jvp_stacked::relu(jvp_stacked::batch_norm(cur, &block.norm, y, ctx), k);
            if i >= 1 {
                x = jvp_stacked::max_pool2d(&self.pool, x, k);
            }
        }
        let [b, c, h, w] = x.primal.dims();
        let mut x: Duals<2> = x.reshape([b, c * h * w], k);
        for block in &self.dense {
            let y = jvp_stacked::linear(cur, &block.linear, x);
            x = jvp_stacked::relu(jvp_stacked::batch_norm(cur, &block.norm, y, ctx), k);
        }
        jvp_stacked::linear(cur, &self.head, x)
    }
}
