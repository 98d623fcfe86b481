//! A node: one model replica with its kind, data shard, optimizer state and step counter.

use crate::batcher::Batcher;
use crate::config::NodeKind;
use crate::data::Examples;
use crate::error::Error;
use crate::estimator::{Backprop, Estimator, Gradient, StepInput};
use crate::noise::NoiseStream;
use crate::optimizer::{Optimizer, update_running_stats};
use crate::params::{self, Layout};
use burn::prelude::*;
use hdo_datasets::ShardSampler;
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
    /// Perturbed copies evaluated together in one stacked pass (the population's `stack`).
    pub stack: usize,
    /// Whether its perturbed passes join other nodes' ([`Batcher`], the group's `batch_nodes`).
    pub batched: bool,
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
    /// Diagnostics, when requested: cosine similarity and norm ratio `‖G‖/‖∇F‖` of the
    /// estimate against the true minibatch gradient.
    pub diagnostic: Option<(f64, f64)>,
}

impl Node {
    /// One local step: draw a minibatch, estimate, update running statistics, apply the optimizer.
    /// With a `batcher`, the estimator's perturbed passes are evaluated together with other
    /// nodes' ([`Batcher`]).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        estimator: &dyn Estimator,
        train: &Examples,
        layout: &Layout,
        seed: u64,
        diagnose: bool,
        batcher: Option<&Batcher>,
    ) -> Result<StepReport, Error> {
        let indices = self.sampler.next_batch(self.batch_size);
        let batch = train.batch(&indices, &self.device);
        let noise = NoiseStream::new(seed, self.id as u64, self.steps);
        let input = StepInput {
            model: &self.model,
            batch: &batch,
            layout,
            noise,
            stack: self.stack,
            batcher: batcher.map(|b| (self.id, b)),
        };
        let estimate = estimator.estimate(input)?;
        let diagnostic = if diagnose && self.kind == NodeKind::Zo {
            Some(self.compare_with_true_gradient(
                &estimate.gradient,
                train,
                &indices,
                layout,
                noise,
            )?)
        } else {
            None
        };
        // Models move through by-value updates; a clone shares buffers, so this costs nothing.
        let model = update_running_stats(self.model.clone(), layout, &estimate.batch_stats);
        self.model = self.optimizer.step(model, layout, &estimate.gradient, self.steps);
        self.steps += 1;
        Ok(StepReport {
            loss: estimate.loss,
            forward_passes: estimate.forward_passes,
            backward_passes: estimate.backward_passes,
            diagnostic,
        })
    }

    /// Cosine similarity and norm ratio of `gradient` against the minibatch gradient computed by
    /// autodiff on a separate copy of the replica (diagnostics only: not counted as a pass, the
    /// replica is untouched).
    fn compare_with_true_gradient(
        &self,
        gradient: &Gradient,
        train: &Examples,
        indices: &[usize],
        layout: &Layout,
        noise: NoiseStream,
    ) -> Result<(f64, f64), Error> {
        let autodiff = self.device.clone().inner().autodiff();
        let copy = burn::module::Module::train(self.model.clone());
        let batch = train.batch(indices, &autodiff);
        let input =
            StepInput { model: &copy, batch: &batch, layout, noise, stack: 1, batcher: None };
        let truth = Backprop.estimate(input)?;
        let plain = self.device.clone().inner();
        let (mut dot, mut nn, mut tt) = (0f64, 0f64, 0f64);
        for info in layout.trainable() {
            let l = info.trainable.unwrap_or(0);
            let g = params::download(gradient.tensor(l, info, &plain))?;
            let t = params::download(truth.gradient.tensor(l, info, &plain))?;
            for (a, b) in g.iter().zip(&t) {
                dot += *a as f64 * *b as f64;
                nn += (*a as f64).powi(2);
                tt += (*b as f64).powi(2);
            }
        }
        Ok((
            dot / (nn.sqrt() * tt.sqrt()).max(f64::MIN_POSITIVE),
            nn.sqrt() / tt.sqrt().max(f64::MIN_POSITIVE),
        ))
    }
}
