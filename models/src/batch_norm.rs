//! Batch normalisation whose running statistics are plain parameters.

use crate::ForwardCtx;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{batch_norm, batch_norm_train};

/// Batch normalisation over dimension 1 (`[batch, channels, …]`).
///
/// `running_mean` / `running_var` are non-trainable parameters (require no gradient and are
/// skipped by estimators and optimizers because their names start with `running_`), so copies are
/// independent and gossip averages them. Training mode normalises with batch statistics and
/// pushes them to [`ForwardCtx::batch_stats`]; the node folds them into the running statistics
/// with [`BatchNorm::MOMENTUM`].
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale.
    pub gamma: Param<Tensor<1>>,
    /// Shift.
    pub beta: Param<Tensor<1>>,
    /// Running mean (not trainable).
    pub running_mean: Param<Tensor<1>>,
    /// Running variance (not trainable).
    pub running_var: Param<Tensor<1>>,
}

impl BatchNorm {
    /// Weight of a new batch's statistics in the running statistics (PyTorch's 0.1).
    pub const MOMENTUM: f64 = 0.1;
    /// Added to the variance for stability.
    pub const EPSILON: f64 = 1e-5;

    /// Identity-initialised normalisation of `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        let frozen = |t: Tensor<1>| Param::from_tensor(t).set_require_grad(false);
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: frozen(Tensor::zeros([channels], device)),
            running_var: frozen(Tensor::ones([channels], device)),
        }
    }

    /// Normalise `x`; see the type's docs for the two modes.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, ctx: &mut ForwardCtx) -> Tensor<D> {
        if ctx.train {
            // Values per channel: the running variance stores the unbiased estimate, as PyTorch.
            let count = (x.shape().num_elements() / x.dims()[1]).max(2) as f64;
            let out = batch_norm_train(x, self.gamma.val(), self.beta.val(), Self::EPSILON);
            ctx.batch_stats.push((out.mean, out.variance * (count / (count - 1.0))));
            out.output
        } else {
            batch_norm(
                x,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.val(),
                self.running_var.val(),
                Self::EPSILON,
            )
        }
    }
}
