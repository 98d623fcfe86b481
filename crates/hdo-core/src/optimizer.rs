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
