//! A node: one model replica with its kind, data shard, optimizer state and step counter.

use crate::config::NodeKind;
use crate::data;
use crate::error::Error;
use crate::estimator::{Estimator, StepInput};
use crate::noise::NoiseStream;
use crate::optimizer::{Optimizer, update_running_stats};
use crate::params::Layout;
use burn::prelude::*;
use hdo_datasets::{ImageSet, ShardSampler};
use hdo_models::Model;

/// One member of the population.
#[derive(Debug, Clone)]
pub struct Node {
    /// Index in the population (FO nodes first).
    pub id: usize,
    /// First- or zeroth-order.
    pub kind: NodeKind,
    /// The replica (on the autodiff device for FO nodes, the plain device for ZO nodes).
    pub model: Model,
    /// Draws this node's minibatches from its shard.
    pub sampler: ShardSampler,
    /// Momentum buffers and schedule.
    pub optimizer: Optimizer,
    /// Minibatch size.
    pub batch_size: usize,
    /// Local steps taken so far.
    pub steps: u64,
    /// The device its model lives on.
    pub device: Device,
}

/// What one local step cost and saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepReport {
    /// Minibatch loss before the step.
    pub loss: f32,
    /// Forward passes.
    pub forward_passes: u64,
    /// Backward passes.
    pub backward_passes: u64,
}

impl Node {
    /// One local step: draw a minibatch, estimate, update running statistics, apply the optimizer.
    pub fn step(
        &mut self,
        estimator: &dyn Estimator,
        train: &ImageSet,
        layout: &Layout,
        seed: u64,
    ) -> Result<StepReport, Error> {
        let indices = self.sampler.next_batch(self.batch_size);
        let batch = data::batch(train, &indices, &self.device);
        let noise = NoiseStream::new(seed, self.id as u64, self.steps);
        let estimate =
            estimator.estimate(StepInput { model: &self.model, batch: &batch, layout, noise })?;
        // Models move through by-value updates; a clone shares buffers, so this costs nothing.
        let model = update_running_stats(self.model.clone(), layout, &estimate.batch_stats);
        self.model = self.optimizer.step(model, layout, &estimate.gradient, self.steps);
        self.steps += 1;
        Ok(StepReport {
            loss: estimate.loss,
            forward_passes: estimate.forward_passes,
            backward_passes: estimate.backward_passes,
        })
    }
}
