//! Which loss a model is trained on.

use serde::{Deserialize, Serialize};

/// The `loss` key of `kind = "linear"` (every other model uses cross-entropy, an objective its
/// value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean softmax cross-entropy of `[batch, classes]` logits.
    #[default]
    CrossEntropy,
    /// Binary hinge loss `mean(max(0, 1 − y·s))` of one score `s` per example, `y = ±1` for
    /// classes 1 / 0 (D-POEM's objective). The prediction is class 1 when `s > 0`.
    Hinge,
    /// The model's single output is the value to minimise ([`crate::Objective`]); there is no
    /// class to predict.
    Value,
}
