//! Batch normalisation over dimension 1 whose running statistics are plain parameters.

use crate::context::ForwardCtx;
use crate::exec::{BatchStats, Duals, Members, Pass, Rule};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{batch_norm, batch_norm_train};

/// Batch normalisation over dimension 1 (`[batch, channels, …]`).
///
/// Why not Burn's: it keeps running statistics in shared mutable state, so clones of a module (our
/// node replicas) would silently share them, and it uses batch statistics only on autodiff
/// devices, so forward-only (zeroth-order) nodes would never see them. Here `running_mean` /
/// `running_var` are non-trainable parameters (require no gradient and are skipped by estimators
/// and optimizers because their names start with `running_`), so copies are independent and
/// gossip averages them. Training mode normalises with batch statistics and reports them to
/// [`ForwardCtx::batch_stats`], keyed by the running statistics' identities; the node folds them
/// in with [`BatchNorm::MOMENTUM`].
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

    /// Normalise `x` as one replica (see the type's docs for the two modes).
    pub fn forward<const D: usize>(&self, x: Tensor<D>, ctx: &mut ForwardCtx) -> Tensor<D> {
        self.plain(x, ctx)
    }

    fn report(&self, ctx: &mut ForwardCtx, mean: Tensor<1>, var: Tensor<1>) {
        ctx.batch_stats.push(BatchStats {
            mean_id: self.running_mean.id,
            var_id: self.running_var.id,
            mean,
            var,
        });
    }
}

/// `n/(n−1)`: the running variance stores the unbiased estimate, as PyTorch's.
fn unbiased(n: usize) -> f64 {
    let count = (n as f64).max(2.0);
    count / (count - 1.0)
}

impl<const D: usize> Rule<D, D> for BatchNorm {
    fn plain(&self, x: Tensor<D>, ctx: &mut ForwardCtx) -> Tensor<D> {
        if ctx.train {
            let n = x.shape().num_elements() / x.dims()[1];
            let out = batch_norm_train(x, self.gamma.val(), self.beta.val(), Self::EPSILON);
            self.report(ctx, out.mean, out.variance * unbiased(n));
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

    /// On member-major channels `[B, K·C, …]`: each member's channels with their own statistics
    /// (training) or running statistics.
    fn stacked(&self, x: Members<D>, pass: &mut Pass<'_>) -> Members<D> {
        let k = pass.members();
        let c = self.gamma.lazy_shape().dims::<1>()[0];
        let x = x.into_channels(k);
        let mut next =
            |p: &Param<Tensor<1>>| pass.params.take_full::<1, 2>(p, [0, c]).reshape([k * c]);
        let (gamma, beta) = (next(&self.gamma), next(&self.beta));
        let y = if pass.ctx.train {
            batch_norm_train(x, gamma, beta, Self::EPSILON).output
        } else {
            let (mean, var) = (next(&self.running_mean), next(&self.running_var));
            batch_norm(x, gamma, beta, mean, var, Self::EPSILON)
        };
        Members::channels(y)
    }

    /// Training mode (batch statistics `μ`, `σ²` over all but the channel dimension, reported
    /// for the primal): `ẏ_k = γ̇_k·x̂ + β̇_k + γ·(ẋ_k − mean ẋ_k − x̂·mean(ẋ_k·x̂))/σ`;
    /// evaluation mode (running statistics): `ẏ_k = γ̇_k·x̂ + β̇_k + γ·ẋ_k/σ_running`.
    fn tangents(&self, x: Duals<D>, pass: &mut Pass<'_>) -> Duals<D> {
        let k = pass.members();
        let dims = x.primal.dims();
        let (b, c) = (dims[0], dims[1]);
        let s: usize = dims[2..].iter().product();
        let n = b * s;
        let g_dot: Tensor<3> = pass.params.take_full(&self.gamma, [0, c, 1]);
        let b_dot: Tensor<3> = pass.params.take_full(&self.beta, [0, c, 1]);
        // primal, channels first: [C, N]
        let xs: Tensor<2> = x.primal.swap_dims(0, 1).reshape([c, n]);
        let gamma: Tensor<2> = self.gamma.val().unsqueeze_dim(1);
        let beta: Tensor<2> = self.beta.val().unsqueeze_dim(1);
        // tangents as [K, C, N]
        let dxs = x
            .tangents
            .map(|t| -> Tensor<3> { t.reshape([k, b, c, s]).swap_dims(1, 2).reshape([k, c, n]) });
        let (xhat, dxhat) = if pass.ctx.train {
            let mean = xs.clone().mean_dim(1);
            let centered = xs - mean.clone();
            let var = centered.clone().powi_scalar(2).mean_dim(1);
            let std = (var.clone() + Self::EPSILON).sqrt();
            let xhat = centered / std.clone();
            self.report(&mut pass.ctx, mean.squeeze_dim(1), var.squeeze_dim(1) * unbiased(n));
            let xh: Tensor<3> = xhat.clone().unsqueeze_dim(0);
            let dxhat = dxs.map(|d| {
                let dmean = d.clone().mean_dim(2);
                let dproj = (d.clone() * xh.clone()).mean_dim(2);
                (d - dmean - xh * dproj) / std.unsqueeze_dim::<3>(0)
            });
            (xhat, dxhat)
        } else {
            let mean = self.running_mean.val().unsqueeze_dim(1);
            let std = (self.running_var.val().unsqueeze_dim(1) + Self::EPSILON).sqrt();
            let xhat = (xs - mean) / std.clone();
            (xhat, dxs.map(|d| d / std.unsqueeze_dim::<3>(0)))
        };
        let primal = xhat.clone() * gamma.clone() + beta;
        let mut tangents = g_dot * xhat.unsqueeze_dim::<3>(0) + b_dot; // [K, C, N]
        if let Some(d) = dxhat {
            tangents = tangents + d * gamma.unsqueeze_dim::<3>(0);
        }
        let mut swapped = dims;
        swapped.swap(0, 1);
        let mut wide = dims;
        wide[0] = k * b;
        Duals {
            primal: primal.reshape(swapped).swap_dims(0, 1),
            tangents: Some(tangents.reshape([k, c, b, s]).swap_dims(1, 2).reshape(wide)),
        }
    }
}
