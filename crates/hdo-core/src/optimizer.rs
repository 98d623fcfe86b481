//! Applying an estimate: momentum and the step `x ← x − lr·v`, one tensor at a time.
//!
//! Seeded (zeroth-order) estimates are materialised tensor by tensor while the update is applied,
//! so beyond the model and its momentum buffer, the step holds one parameter tensor at a time.

use crate::config::MomentumStyle;
use crate::estimator::Gradient;
use crate::params::{self, Layout};
use crate::schedule::LrSchedule;
use burn::prelude::*;
use hdo_models::{BatchNorm, Model};

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
/// `running ← (1 − 0.1)·running + 0.1·batch`, matched in order to the layout's
/// `running_mean`/`running_var` pairs.
pub fn update_running_stats(
    model: Model,
    layout: &Layout,
    stats: &[(Tensor<1>, Tensor<1>)],
) -> Model {
    if stats.is_empty() {
        return model;
    }
    let keep = (1.0 - BatchNorm::MOMENTUM) as f32;
    let take = BatchNorm::MOMENTUM as f32;
    let mut next = 0usize;
    params::map(model, |i, t| {
        let path = &layout.tensors[i].path;
        let stat = if path.ends_with("running_mean") {
            stats.get(next).map(|s| s.0.clone())
        } else if path.ends_with("running_var") {
            let s = stats.get(next).map(|s| s.1.clone());
            next += 1;
            s
        } else {
            None
        };
        match stat {
            Some(s) => {
                let device = t.device();
                t * keep + s.inner().to_device(&device) * take
            }
            None => t,
        }
    })
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
