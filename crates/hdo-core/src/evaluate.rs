//! Validation loss and accuracy of a model.

use crate::data::ValidationSet;
use crate::estimator::cross_entropy;
use burn::module::Module;
use hdo_models::{ForwardCtx, Model};

/// Mean loss and accuracy on a validation set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// Evaluate `model` (running statistics, no autodiff graph) on `validation`.
pub fn evaluate(model: &Model, validation: &ValidationSet) -> Evaluation {
    let model = model.valid();
    let mut loss_sum = 0.0f64;
    let mut correct = 0i64;
    for b in &validation.batches {
        let n = b.targets.dims()[0];
        let logits = model.forward(&b.input, &mut ForwardCtx::eval());
        let hits = logits.clone().argmax(1).reshape([n]).equal(b.targets.clone()).int().sum();
        correct += hits.into_scalar::<i64>();
        loss_sum += cross_entropy(logits, &b.targets).into_scalar::<f32>() as f64 * n as f64;
    }
    let n = validation.len.max(1) as f64;
    Evaluation { loss: loss_sum / n, accuracy: correct as f64 / n }
}
