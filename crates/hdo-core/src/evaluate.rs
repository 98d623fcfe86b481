//! Validation loss and accuracy of a model.

use crate::data::ValidationSet;
use crate::estimator::loss;
use burn::module::Module;
use hdo_models::{ForwardCtx, Loss, Model};

/// Mean loss and accuracy on a validation set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evaluation {
    /// Mean loss (the model's: cross-entropy, or hinge; an objective's value).
    pub loss: f64,
    /// Fraction classified correctly (0 for an objective, which classifies nothing).
    pub accuracy: f64,
    /// Accuracy on hard negatives (Brackets: balanced but incorrect strings), when the data has them.
    pub hard_accuracy: Option<f64>,
}

/// Evaluate `model` (running statistics, no autodiff graph) on `validation`.
pub fn evaluate(model: &Model, validation: &ValidationSet) -> Evaluation {
    let model = model.valid();
    let mut loss_sum = 0.0f64;
    let mut correct = 0i64;
    let (mut hard_hits, mut hard_total) = (0usize, 0usize);
    for (i, b) in validation.batches.iter().enumerate() {
        let n = b.targets.dims()[0];
        let logits = model.forward(&b.input, &mut ForwardCtx::eval());
        let predicted = match model.loss() {
            // one score: class 1 when positive
            Loss::Hinge => logits.clone().reshape([n]).greater_elem(0.0).int(),
            Loss::CrossEntropy => logits.clone().argmax(1).reshape([n]),
            // an objective's value: nothing to classify (accuracy 0)
            Loss::Value => {
                loss_sum += loss(&model, logits, &b.targets).into_scalar::<f32>() as f64 * n as f64;
                continue;
            }
        };
        let hits = predicted.equal(b.targets.clone());
        if let Some(hard) = validation.hard.as_ref().map(|h| &h[i]) {
            let flags = hits
                .clone()
                .into_data()
                .convert::<bool>()
                .try_into_vec::<bool>()
                .unwrap_or_default();
            for (hit, &is_hard) in flags.iter().zip(hard) {
                if is_hard {
                    hard_total += 1;
                    hard_hits += usize::from(*hit);
                }
            }
        }
        correct += hits.int().sum().into_scalar::<i64>();
        loss_sum += loss(&model, logits, &b.targets).into_scalar::<f32>() as f64 * n as f64;
    }
    let n = validation.len.max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        hard_accuracy: (hard_total > 0).then(|| hard_hits as f64 / hard_total as f64),
    }
}
