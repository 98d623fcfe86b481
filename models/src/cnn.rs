//! The HDO paper's CNN (Figure 1): three 3×3 convolutions with batch norm and ReLU, max-pooling
//! after the second and third, then three linear layers.
//!
//! Follows the authors' `CustomNN`: conv channels double from 8 (8 → 16 → 32), hidden linear
//! layers are Linear → BatchNorm1d → ReLU. Departure: the output layer feeds softmax
//! cross-entropy directly, not BatchNorm + sigmoid.

use crate::exec::{Architecture, Exec};
use crate::input::Input;
use crate::layers::{BatchNorm, Flatten};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
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

impl Architecture for Cnn {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let mut x = exec.images(input);
        for (i, block) in self.convs.iter().enumerate() {
            let y = exec.apply(&block.conv, x); // [b, c_i, h, w]
            let y = exec.apply(&block.norm, y);
            x = exec.apply(&Relu, y);
            if i >= 1 {
                x = exec.apply(&self.pool, x); // halves h and w
            }
        }
        let mut x = exec.apply(&Flatten, x); // [b, c_3 · h/4 · w/4]
        for block in &self.dense {
            let y = exec.apply(&block.linear, x);
            let y = exec.apply(&block.norm, y);
            x = exec.apply(&Relu, y);
        }
        exec.apply(&self.head, x)
    }
}
