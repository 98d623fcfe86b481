//! Layer normalisation over the last dimension, with scale and shift.

use crate::context::ForwardCtx;
use crate::exec::{Duals, Layout, Members, Pass, Rule};
use burn::module::Param;
use burn::prelude::*;

/// `γ·(x − mean)/√(var + ε) + β` over the last dimension of `[b, t, w]`.
#[derive(Module, Debug)]
pub struct Norm {
    /// Scale.
    pub gamma: Param<Tensor<1>>,
    /// Shift.
    pub beta: Param<Tensor<1>>,
}

impl Norm {
    /// Added to the variance.
    pub const EPSILON: f64 = 1e-5;

    /// Identity-initialised normalisation of `width` features.
    pub fn new(width: usize, device: &Device) -> Self {
        Norm {
            gamma: Param::from_tensor(Tensor::ones([width], device)),
            beta: Param::from_tensor(Tensor::zeros([width], device)),
        }
    }

    /// One replica.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(2);
        let xhat = centered / (var + Self::EPSILON).sqrt();
        xhat * self.gamma.val().unsqueeze_dims::<3>(&[0, 1])
            + self.beta.val().unsqueeze_dims::<3>(&[0, 1])
    }
}

impl Rule<3, 3> for Norm {
    fn plain(&self, x: Tensor<3>, _: &mut ForwardCtx) -> Tensor<3> {
        self.forward(x)
    }

    /// Each member's rows `[K, b, t, w]` with its own scale and shift.
    fn stacked(&self, x: Members<3>, pass: &mut Pass<'_>) -> Members<3> {
        let k = pass.members();
        let x = match x.layout {
            Layout::Shared => x.tensor.unsqueeze_dim::<4>(0),
            _ => {
                let t = x.into_batch(k);
                let [kb, t_len, w] = t.dims();
                t.reshape([k, kb / k, t_len, w])
            }
        };
        let [_, b, t, w] = x.dims();
        let gamma: Tensor<2> = pass.params.take_full(&self.gamma, [0, w]);
        let beta: Tensor<2> = pass.params.take_full(&self.beta, [0, w]);
        let mean = x.clone().mean_dim(3);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(3);
        let xhat = centered / (var + Self::EPSILON).sqrt();
        let y = xhat * gamma.reshape([k, 1, 1, w]) + beta.reshape([k, 1, 1, w]);
        Members::batch(y.reshape([k * b, t, w]))
    }

    /// `ẏ_k = γ̇_k·x̂ + β̇_k + γ·(ẋ_k − mean ẋ_k − x̂·mean(ẋ_k·x̂))/σ`.
    fn tangents(&self, x: Duals<3>, pass: &mut Pass<'_>) -> Duals<3> {
        let k = pass.members();
        let [b, t, w] = x.primal.dims();
        let g_dot: Tensor<2> = pass.params.take_full(&self.gamma, [0, w]);
        let b_dot: Tensor<2> = pass.params.take_full(&self.beta, [0, w]);
        let mean = x.primal.clone().mean_dim(2);
        let centered = x.primal - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(2);
        let std = (var + Self::EPSILON).sqrt();
        let xhat = centered / std.clone(); // [b, t, w]
        let row = |p: Tensor<1>| p.unsqueeze_dims::<3>(&[0, 1]);
        let primal = xhat.clone() * row(self.gamma.val()) + row(self.beta.val());
        let xh: Tensor<4> = xhat.unsqueeze_dim(0); // [1, b, t, w]
        let mut tangents = xh.clone() * g_dot.reshape([k, 1, 1, w]) + b_dot.reshape([k, 1, 1, w]);
        if let Some(d) = x.tangents {
            let d: Tensor<4> = d.reshape([k, b, t, w]);
            let dmean = d.clone().mean_dim(3);
            let dproj = (d.clone() * xh.clone()).mean_dim(3);
            let dxhat = (d - dmean - xh * dproj) / std.unsqueeze_dim::<4>(0);
            tangents = tangents + dxhat * self.gamma.val().unsqueeze_dims::<4>(&[0, 1, 2]);
        }
        Duals { primal, tangents: Some(tangents.reshape([k * b, t, w])) }
    }
}
