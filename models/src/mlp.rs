//! Multi-layer perceptron (the HDO appendix's rv ablation uses two hidden layers of 128).

use crate::exec::{Architecture, Exec};
use crate::input::Input;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
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

impl Architecture for Mlp {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let mut x = exec.features(input);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = exec.apply(layer, x);
            if i < last {
                x = exec.apply(&Relu, x);
            }
        }
        x
    }
}
