//! Forward gradient by real forward-mode differentiation (Baydin et al. 2022).

use super::{Direction, Estimate, Estimator, Projection, StepInput, direction_stack, seeded};
use crate::error::Error;
use crate::noise::NoiseStream;
use crate::params::{self, Layout, upload};
use hdo_models::{Model, jvp, jvp_stacked};

/// `G = (c/rv) Σ_k (u_k·∇F) u_k`, where the directional derivative `u_k·∇F` is computed exactly
/// by one forward pass that carries tangents ([`hdo_models::jvp`]) — no backward pass, no autodiff
/// graph. `per_tensor` projects block-wise, `G_l = (c/rv) Σ_k (u_{k,l}·∇_l F) u_{k,l}`, at the cost
/// of one forward-mode pass per trainable tensor and direction. Unbiased: `E[G] = ∇F`.
///
/// With `stack > 1` (global projection, models with a stacked forward) up to `stack` directions
/// share one primal pass and their tangents run batched ([`hdo_models::jvp_stacked`]); the
/// estimate is the same up to float summation order.
#[derive(Debug, Clone, Copy)]
pub struct ForwardGradient {
    /// Directions averaged.
    pub rv: u32,
    /// Global or block-wise projection.
    pub projection: Projection,
    /// Distribution of the directions.
    pub direction: Direction,
}

/// A model of `model`'s architecture whose trainable tensors hold `scale·z_k` (only tensor
/// `only` when given, zeros elsewhere) — the tangent of a forward-mode pass.
pub fn direction_model(
    model: &Model,
    layout: &Layout,
    noise: NoiseStream,
    k: u32,
    scale: f32,
    only: Option<usize>,
) -> Model {
    params::map(model.clone(), |i, t| {
        let info = &layout.tensors[i];
        match info.trainable {
            Some(l) if only.is_none_or(|o| o == l) => {
                let mut z = vec![0f32; info.numel];
                noise.fill_gaussian(k, info.offset, &mut z);
                z.iter_mut().for_each(|v| *v *= scale);
                upload(z, &t.device())
            }
            _ => t.zeros_like(),
        }
    })
}

impl ForwardGradient {
    /// The global-projection estimate with `input.stack` directions per forward-mode pass.
    fn estimate_stacked(&self, input: &StepInput<'_>) -> Result<Estimate, Error> {
        let factor = self.direction.factor(input.layout);
        let probes: Vec<(u32, f32)> =
            (0..self.rv).map(|k| (k, self.direction.scale(input.noise, k, input.layout))).collect();
        let mut coefficients = Vec::with_capacity(probes.len());
        let mut first: Option<(f32, Vec<_>)> = None;
        for chunk in probes.chunks(input.stack) {
            let dirs = direction_stack(input.model, input.layout, input.noise, chunk);
            let mut ctx = input.train_ctx();
            let duals = input
                .model
                .forward_jvp_stacked(&dirs, &input.batch.input, &mut ctx)
                .ok_or_else(|| Error::Device("this model has no stacked forward mode".into()))?;
            let (loss, dloss) =
                jvp_stacked::cross_entropy(duals, &input.batch.targets, chunk.len());
            if first.is_none() {
                first = Some((super::scalar(loss), ctx.batch_stats));
            }
            for (&(_, s), d) in chunk.iter().zip(params::download(dloss)) {
                coefficients.push(factor * s * d / self.rv as f32);
            }
        }
        let (loss, stats) = first.unwrap_or((f32::NAN, Vec::new()));
        Ok(seeded(input, self.rv, 1, coefficients, loss, stats, self.rv as u64, 0))
    }
}

impl Estimator for ForwardGradient {
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error> {
        if input.stack > 1 && self.projection == Projection::Global && input.model.can_stack_jvp() {
            return self.estimate_stacked(&input);
        }
        let factor = self.direction.factor(input.layout);
        let n_tensors = input.layout.num_trainable();
        let blocks = match self.projection {
            Projection::Global => 1,
            Projection::PerTensor => n_tensors,
        };
        let mut coefficients = vec![0f32; self.rv as usize * blocks];
        let mut first: Option<(f32, Vec<_>)> = None;
        let mut passes = 0u64;
        for k in 0..self.rv {
            let s = self.direction.scale(input.noise, k, input.layout);
            for b in 0..blocks {
                let only = (blocks > 1).then_some(b);
                let dir = direction_model(input.model, input.layout, input.noise, k, s, only);
                let mut ctx = input.train_ctx();
                let logits =
                    input.model.forward_jvp(&dir, &input.batch.input, &mut ctx).ok_or_else(
                        || Error::Device("forward_jvp: direction has another architecture".into()),
                    )?;
                let (loss, dloss) = jvp::cross_entropy(logits, &input.batch.targets);
                passes += 1;
                if first.is_none() {
                    first = Some((super::scalar(loss), ctx.batch_stats));
                }
                coefficients[k as usize * blocks + b] =
                    factor * s * super::scalar(dloss) / self.rv as f32;
            }
        }
        let (loss, stats) = first.unwrap_or((f32::NAN, Vec::new()));
        Ok(seeded(&input, self.rv, blocks, coefficients, loss, stats, passes, 0))
    }
}
