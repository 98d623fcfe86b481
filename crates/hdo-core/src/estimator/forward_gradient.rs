//! Forward gradient by real forward-mode differentiation (Baydin et al. 2022).

use super::{Direction, Estimate, Estimator, Projection, StepInput, lazy_directions, seeded};
use crate::error::Error;
use crate::params::{self, Layout};
use hdo_models::{LazyStack, Loss, layers};

/// `G = (c/rv) Σ_k (u_k·∇F) u_k`, where the directional derivative `u_k·∇F` is computed exactly
/// by one forward pass that carries tangents ([`hdo_models::jvp`]) — no backward pass, no autodiff
/// graph. `per_tensor` projects block-wise, `G_l = (c/rv) Σ_k (u_{k,l}·∇_l F) u_{k,l}`, at the cost
/// of `⌈rv/stack⌉` forward-mode passes per trainable tensor. Unbiased: `E[G] = ∇F`.
///
/// The directions are never stored: the pass generates each layer's tangents from the noise
/// stream when it reaches that layer and drops them after ([`LazyStack`]), so beyond the pass
/// itself one layer's direction tensors are alive at a time (on eager backends such as flex; a
/// fusing backend may hold them until it runs the fused graph). With `stack > 1` up to `stack`
/// directions share one primal pass and their tangents run batched ([`hdo_models::jvp_stacked`]);
/// the estimate is the same up to float summation order.
#[derive(Debug, Clone, Copy)]
pub struct ForwardGradient {
    /// Directions averaged.
    pub rv: u32,
    /// Global or block-wise projection.
    pub projection: Projection,
    /// Distribution of the directions.
    pub direction: Direction,
}

impl ForwardGradient {
    /// The coefficient of `z_k` from the directional derivative `u_k·∇F` (of one block, for
    /// `per_tensor`), for a direction of scale `s` (`u_k = s·z_k`).
    pub fn coefficient(&self, layout: &Layout, s: f32, directional: f32) -> f32 {
        self.direction.factor(layout) * s * directional / self.rv as f32
    }
}

impl Estimator for ForwardGradient {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        let blocks = match self.projection {
            Projection::Global => 1,
            Projection::PerTensor => input.layout.num_trainable(),
        };
        let probes: Vec<(u32, f32)> =
            (0..self.rv).map(|k| (k, self.direction.scale(input.noise, k, input.layout))).collect();
        let device = input.batch.targets.device();
        let mut coefficients = vec![0f32; self.rv as usize * blocks];
        let mut first: Option<(f32, Vec<_>)> = None;
        for b in 0..blocks {
            let only = (blocks > 1).then_some(b);
            for chunk in probes.chunks(input.stack.max(1)) {
                let mut make = lazy_directions(input.layout, input.noise, chunk, only, &device);
                let tangents = LazyStack {
                    members: chunk.len(),
                    tensors: input.layout.tensors.len(),
                    make: &mut make,
                };
                let mut ctx = input.train_ctx();
                let duals = input
                    .model
                    .forward_jvp_lazy(tangents, &input.batch.input, &mut ctx)
                    .map_err(Error::Model)?;
                let (loss, dloss) = match input.model.loss() {
                    Loss::Hinge => layers::hinge(duals, &input.batch.targets, chunk.len()),
                    _ => layers::cross_entropy(duals, &input.batch.targets, chunk.len()),
                };
                let scale = input.model.loss_scale();
                let (loss, dloss) =
                    if scale == 1.0 { (loss, dloss) } else { (loss * scale, dloss * scale) };
                if first.is_none() {
                    first = Some((super::scalar(loss), ctx.batch_stats));
                }
                for (&(k, s), d) in chunk.iter().zip(params::download(dloss)?) {
                    coefficients[k as usize * blocks + b] = self.coefficient(input.layout, s, d);
                }
            }
        }
        let (loss, stats) = first.unwrap_or((f32::NAN, Vec::new()));
        let passes = self.rv as u64 * blocks as u64;
        Ok(seeded(&input, self.rv, blocks, coefficients, loss, stats, passes, 0))
    }
}
