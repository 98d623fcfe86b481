//! Multinomial logistic regression (the HDO paper's convex "regression" model, Figure 2).
//!
//! Departure from the authors' code: their linear model ends in BatchNorm + sigmoid before the
//! cross-entropy (a loss floor of ≈ 1.46); ours feeds the logits straight into softmax
//! cross-entropy, the model the paper describes.

use crate::jvp_stacked::{self, Duals};
use crate::stacked::{self, Cursor, StackInput};
use crate::{Dual, Input, Loss, flatten, flatten_dual, jvp};
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

    /// Logits `[batch, classes]`.
    pub fn forward(&self, input: &Input) -> Tensor<2> {
        self.linear.forward(flatten(input))
    }

    /// Logits and their derivative along `direction`'s parameters.
    pub fn forward_jvp(&self, direction: &Logistic, input: &Input) -> Dual<2> {
        jvp::linear(&self.linear, &direction.linear, flatten_dual(input))
    }

    /// Logits `[K, batch, classes]` of the stack's `K` members.
    pub(crate) fn forward_stacked(&self, cur: &mut Cursor<'_>, input: StackInput<'_>) -> Tensor<3> {
        let x = stacked::flat_input(input, cur.members());
        stacked::linear(cur, &self.linear, x)
    }

    /// Logits and their derivatives along the stack's `K` directions (one primal pass).
    pub(crate) fn forward_jvp_stacked(&self, cur: &mut Cursor<'_>, input: &Input) -> Duals<2> {
        jvp_stacked::linear(cur, &self.linear, Duals::constant(flatten(input)))
    }
}
