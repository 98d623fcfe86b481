//! Multinomial logistic regression (the HDO paper's convex "regression" model, Figure 2).
//!
//! Departure from the authors' code: their linear model ends in BatchNorm + sigmoid before the
//! cross-entropy (a loss floor of ≈ 1.46); ours feeds the logits straight into softmax
//! cross-entropy, the model the paper describes.

use crate::Loss;
use crate::exec::{Architecture, Exec};
use crate::input::Input;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// `logits = flatten(x) · W + b`; also the `linear` model (one score per example with the hinge
/// loss, one per class with cross-entropy).
#[derive(Module, Debug)]
pub struct Logistic {
    /// The single linear layer (`[features, outputs]`).
    pub linear: Linear,
    /// What it is trained on.
    #[module(skip)]
    pub loss: Loss,
    /// A constant factor on the loss (1; other values test scale invariance).
    #[module(skip)]
    pub loss_scale: f32,
}

impl Logistic {
    /// A model for images of `image` (784 → 10 on MNIST) with `outputs` scores.
    pub fn new(image: [usize; 3], outputs: usize, device: &Device) -> Self {
        Logistic::with_loss(image, outputs, Loss::CrossEntropy, device)
    }

    /// A linear model trained on `loss`.
    pub fn with_loss(image: [usize; 3], outputs: usize, loss: Loss, device: &Device) -> Self {
        let features = image.iter().product();
        Logistic {
            linear: LinearConfig::new(features, outputs).init(device),
            loss,
            loss_scale: 1.0,
        }
    }
}

impl Architecture for Logistic {
    fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> E::T<2> {
        let x = exec.features(input);
        exec.apply(&self.linear, x)
    }
}
