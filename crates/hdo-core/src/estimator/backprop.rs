//! First-order estimator: the minibatch gradient by reverse-mode autodiff.

use super::{Estimate, Estimator, Gradient, StepInput, loss, scalar};
use crate::error::Error;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

/// `G = ∇F(x; ξ)`, one forward and one backward pass. The model must live on an autodiff device.
#[derive(Debug, Clone, Copy)]
pub struct Backprop;

impl Estimator for Backprop {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let mut ctx = input.train_ctx();
        let logits = input.model.forward(&input.batch.input, &mut ctx);
        let loss = loss(input.model, logits, &input.batch.targets);
        let value = scalar(loss.clone().inner());
        let grads = loss.backward();
        let mut collect = GradCollector { grads: &grads, path: Vec::new(), out: Vec::new() };
        input.model.visit(&mut collect);
        Ok(Estimate {
            gradient: Gradient::Dense(collect.out),
            loss: value,
            batch_stats: ctx.batch_stats,
            forward_passes: 1,
            backward_passes: 1,
        })
    }
}

/// Flat gradients of the trainable tensors, in layout order (zeros where a tensor got none).
struct GradCollector<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    out: Vec<Tensor<1>>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.last().is_some_and(|n| n.starts_with("running_")) {
            return;
        }
        let value = param.val();
        let n = value.shape().num_elements();
        let g = value
            .grad(self.grads)
            .unwrap_or_else(|| Tensor::zeros(value.shape(), &value.device().inner()));
        self.out.push(g.reshape([n]));
    }
}
