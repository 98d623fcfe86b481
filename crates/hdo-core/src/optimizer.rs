//! Applying an estimate: momentum and the step `x ← x − lr·v`, one tensor at a time.
//!
//! Seeded (zeroth-order) estimates are materialised tensor by tensor while the update is applied,
//! so beyond the model and its momentum buffer, the step holds one parameter tensor at a time.

use crate::config::MomentumStyle;
use crate::error::Error;
use crate::estimator::Gradient;
use crate::params::{self, Layout};
use crate::schedule::LrSchedule;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::prelude::*;
use hdo_models::{BatchNorm, BatchStats, Model};
use std::collections::HashMap;

/// One node's optimizer: schedule, momentum rule and momentum buffers.
#[derive(Debug, Clone)]
pub struct Optimizer {
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Momentum `m`.
    pub momentum: f64,
    /// How `m` combines with the estimate.
    pub style: MomentumStyle,
    /// Step along `sign(v)` instead of `v`.
    pub sign: bool,
    velocity: Vec<Option<Tensor<1>>>,
}

impl Optimizer {
    /// A fresh optimizer (zero momentum buffers).
    pub fn new(schedule: LrSchedule, momentum: f64, style: MomentumStyle, sign: bool) -> Self {
        Optimizer { schedule, momentum, style, sign, velocity: Vec::new() }
    }

    /// The momentum buffers, one per trainable tensor (`None` before its first step; empty before
    /// the first step of all).
    pub fn velocity(&self) -> &[Option<Tensor<1>>] {
        &self.velocity
    }

    /// Replace the momentum buffers (from a checkpoint).
    pub fn set_velocity(&mut self, velocity: Vec<Option<Tensor<1>>>) {
        self.velocity = velocity;
    }

    /// Apply `gradient` at local step `t`: `v ← m·v + c·G` (c = 1 for `sgd`, 1−m for `ema`;
    /// no buffer when m = 0), then `x ← x − lr(t)·v`, or `x ← x − lr(t)·sign(v)` with `sign`.
    /// Running statistics are left alone.
    pub fn step(&mut self, model: Model, layout: &Layout, gradient: &Gradient, t: u64) -> Model {
        let lr = self.schedule.at(t) as f32;
        let m = self.momentum as f32;
        let c = match self.style {
            MomentumStyle::Sgd => 1.0,
            MomentumStyle::Ema => 1.0 - m,
        };
        if self.velocity.len() != layout.num_trainable() {
            self.velocity = vec![None; layout.num_trainable()];
        }
        let sign = self.sign;
        let velocity = &mut self.velocity;
        params::map(model, |i, x| {
            let info = &layout.tensors[i];
            let Some(l) = info.trainable else { return x };
            let g = gradient.tensor(l, info, &x.device());
            let update = if m > 0.0 {
                let v = match velocity[l].take() {
                    Some(v) => v * m + g * c,
                    None => g * c,
                };
                velocity[l] = Some(v.clone());
                v
            } else {
                g
            };
            let update = if sign { update.sign() } else { update };
            x - update * lr
        })
    }
}

/// Fold a forward pass's batch statistics into the running statistics:
/// `running ← (1 − 0.1)·running + 0.1·batch`, each matched to its parameters by identity (the
/// [`ParamId`](burn::module::ParamId)s of the layer that reported them). Statistics for
/// parameters the model does not have are an error (they come from another model).
pub fn update_running_stats(model: Model, stats: &[BatchStats]) -> Result<Model, Error> {
    if stats.is_empty() {
        return Ok(model);
    }
    let mut pending: HashMap<ParamId, Tensor<1>> = HashMap::with_capacity(2 * stats.len());
    for s in stats {
        pending.insert(s.mean_id, s.mean.clone());
        pending.insert(s.var_id, s.var.clone());
    }
    struct Fold(HashMap<ParamId, Tensor<1>>);
    impl ModuleMapper for Fold {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some(stat) = self.0.remove(&param.id) else { return param };
            let keep = (1.0 - BatchNorm::MOMENTUM) as f32;
            let take = BatchNorm::MOMENTUM as f32;
            param.map(|t| {
                let (autodiff, grad) = (t.is_autodiff(), t.is_require_grad());
                let inner = t.inner();
                let stat = stat.inner().to_device(&inner.device()).reshape(inner.shape());
                let mut out = inner * keep + stat * take;
                if autodiff {
                    out = out.autodiff();
                }
                if grad {
                    out = out.require_grad();
                }
                out
            })
        }
    }
    let mut fold = Fold(pending);
    let model = model.map(&mut fold);
    if !fold.0.is_empty() {
        return Err(Error::Model(format!(
            "{} batch statistics belong to no running statistic of this model",
            fold.0.len()
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScheduleKind;
    use crate::params::{collect, download, upload};
    use hdo_models::{DataShape, ModelConfig};

    fn flat(model: &Model) -> Vec<f32> {
        collect(model).into_iter().flat_map(|t| download(t).expect("download")).collect()
    }

    /// With `sign`, a step moves every parameter by exactly `lr` against the sign of the momentum
    /// buffer (not of the latest estimate), and leaves coordinates with a zero buffer alone.
    #[test]
    fn sign_step_moves_by_lr_against_the_sign_of_the_buffer() -> Result<(), String> {
        let device = Device::flex();
        let model = ModelConfig::Logistic {}.init(DataShape::image([1, 28, 28], 10), &device)?;
        let layout = Layout::of(&model);
        let lr = 0.25f32;
        let schedule =
            LrSchedule { lr: lr as f64, kind: ScheduleKind::Constant, warmup: 0, total: 10 };
        let mut opt = Optimizer::new(schedule, 0.5, MomentumStyle::Sgd, true);
        // g₁ has mixed signs, zeros and very different magnitudes
        let g1: Vec<Vec<f32>> = layout
            .trainable()
            .map(|info| {
                (0..info.numel).map(|i| [3.0, -1e-3, 0.0, 7e2, -0.5][i % 5] as f32).collect()
            })
            .collect();
        let dense = |g: &[Vec<f32>]| {
            Gradient::Dense(g.iter().map(|v| upload(v.clone(), &device)).collect())
        };
        let x0 = flat(&model);
        let x1m = opt.step(model, &layout, &dense(&g1), 0);
        let x1 = flat(&x1m);
        let g1_flat: Vec<f32> = g1.concat();
        for ((a, b), g) in x0.iter().zip(&x1).zip(&g1_flat) {
            assert_eq!(*b, a - lr * g.signum() * (*g != 0.0) as u8 as f32);
        }
        // g₂ = −0.2·g₁: the buffer 0.5·g₁ − 0.2·g₁ still points along g₁
        let g2: Vec<Vec<f32>> = g1.iter().map(|v| v.iter().map(|x| -0.2 * x).collect()).collect();
        let x2 = flat(&opt.step(x1m, &layout, &dense(&g2), 1));
        for ((a, b), g) in x1.iter().zip(&x2).zip(&g1_flat) {
            assert_eq!(*b, a - lr * g.signum() * (*g != 0.0) as u8 as f32);
        }
        Ok(())
    }
}
