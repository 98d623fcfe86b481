//! Multi-layer perceptron (the HDO appendix's rv ablation uses two hidden layers of 128).

use crate::jvp_stacked::{self, Duals};
use crate::stacked::{self, Cursor, StackInput};
use crate::{Dual, ForwardCtx, Input, flatten, flatten_dual, jvp};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Options of `[model] kind = "mlp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig { hidden: vec![128, 128] }
    }
}

impl MlpConfig {
    /// Build the MLP for images of `image`.
    pub fn init(&self, image: [usize; 3], classes: usize, device: &Device) -> Mlp {
        let mut widths = vec![image.iter().product::<usize>()];
        widths.extend(&self.hidden);
        widths.push(classes);
        let layers =
            widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Mlp { layers }
    }
}

/// Linear layers with ReLU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers, then the output layer.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// Logits `[batch, classes]`.
    pub fn forward(&self, input: &Input, _ctx: &mut ForwardCtx) -> Tensor<2> {
        let mut x = flatten(input);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }

    /// Logits and their derivative along `direction`'s parameters.
    pub fn forward_jvp(&self, direction: &Mlp, input: &Input) -> Dual<2> {
        let mut x = flatten_dual(input);
        let last = self.layers.len() - 1;
        for (i, (layer, dir)) in self.layers.iter().zip(&direction.layers).enumerate() {
            x = jvp::linear(layer, dir, x);
            if i < last {
                x = jvp::relu(x);
            }
        }
        x
    }

    /// Logits `[K, batch, classes]` of the stack's `K` members.
    pub(crate) fn forward_stacked(&self, cur: &mut Cursor<'_>, input: StackInput<'_>) -> Tensor<3> {
        let mut x = stacked::flat_input(input, cur.members());
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = stacked::linear(cur, layer, x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }

    /// Logits and their derivatives along the stack's `K` directions (one primal pass).
    pub(crate) fn forward_jvp_stacked(&self, cur: &mut Cursor<'_>, input: &Input) -> Duals<2> {
        let k = cur.members();
        let mut x = Duals::constant(flatten(input));
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = jvp_stacked::linear(cur, layer, x);
            if i < last {
                x = jvp_stacked::relu(x, k);
            }
        }
        x
    }
}
