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
use hdo_models::BatchStats;
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
    /// Distance-over-gradients state (D-POEM); unused by other protocols.
    pub dog: DogState,
    /// A change of estimate order during training (`[fo] order_schedule`), if any.
    pub phases: Option<Phases>,
}

/// An FO node's two phases (ZOFO: zeroth then first order; FOZO: the reverse). The optimizer of
/// the phase to come waits in `next`, fresh; at the switch it replaces the node's, so momentum
/// starts anew with the new order.
#[derive(Debug, Clone)]
pub struct Phases {
    /// Whether the first phase is zeroth order (ZOFO).
    pub zeroth_first: bool,
    /// The local step at which the second phase starts.
    pub switch: u64,
    /// The second phase's optimizer, until the switch.
    pub next: Option<Optimizer>,
}

/// A node's D-POEM state: radius proxy, squared-gradient sum, and the radius-weighted sum of its
/// iterates.
#[derive(Debug, Clone, Default)]
pub struct DogState {
    /// `r_i` (after mixing: `r̄_i`).
    pub radius: f64,
    /// `G_i = Σ_t ‖g_t‖²`.
    pub sum_sq: f64,
    /// `Σ_t r̄_t·x_t`, every float tensor flat (empty before the first accumulation).
    pub iterate_sum: Vec<Tensor<1>>,
    /// `Σ_t r̄_t`.
    pub weight: f64,
}

/// An estimate computed and not applied yet (`Op::Estimate`, then `Op::Share` and `Op::Apply`).
#[derive(Clone)]
pub struct Pending {
    /// The estimate.
    pub gradient: Gradient,
    /// Batch statistics of its unperturbed pass, folded into running statistics when applied.
    pub batch_stats: Vec<BatchStats>,
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
        let plain = self.enter_phase();
        let (pending, report) =
            self.estimate(estimator, train, layout, seed, diagnose, batcher, plain)?;
        self.apply(pending, layout)?;
        Ok(report)
    }

    /// Whether this step is a zeroth-order one of an FO node with an order schedule (then its
    /// plain copy is evaluated with the `[zo]` estimator).
    pub fn in_zeroth_phase(&self) -> bool {
        self.phases.as_ref().is_some_and(|p| p.zeroth_first == (self.steps < p.switch))
    }

    /// Switch optimizers if the second phase has begun (idempotent); returns
    /// [`Node::in_zeroth_phase`].
    pub fn enter_phase(&mut self) -> bool {
        if let Some(p) = self.phases.as_mut()
            && self.steps >= p.switch
            && let Some(next) = p.next.take()
        {
            self.optimizer = next;
        }
        self.in_zeroth_phase()
    }

    /// Draw a minibatch and estimate at the current parameters without applying. With
    /// `plain`, a replica on an autodiff device is evaluated through its plain copy (a
    /// zeroth-order estimate on an FO node). The step counter advances: the estimate used this
    /// step's noise.
    #[allow(clippy::too_many_arguments)]
    pub fn estimate(
        &mut self,
        estimator: &dyn Estimator,
        train: &Examples,
        layout: &Layout,
        seed: u64,
        diagnose: bool,
        batcher: Option<&Batcher>,
        plain: bool,
    ) -> Result<(Pending, StepReport), Error> {
        let indices = self.sampler.next_batch(self.batch_size);
        let (model, device) = if plain {
            (burn::module::Module::valid(&self.model), self.device.clone().inner())
        } else {
            (self.model.clone(), self.device.clone())
        };
        let batch = train.batch(&indices, &device);
        let noise = NoiseStream::new(seed, self.id as u64, self.steps);
        let input = StepInput {
            model: &model,
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
        let report = StepReport {
            loss: estimate.loss,
            forward_passes: estimate.forward_passes,
            backward_passes: estimate.backward_passes,
            diagnostic,
        };
        Ok((Pending { gradient: estimate.gradient, batch_stats: estimate.batch_stats }, report))
    }

    /// Apply an estimate with the optimizer at this step (then count the step).
    pub fn apply(&mut self, pending: Pending, layout: &Layout) -> Result<(), Error> {
        // Models move through by-value updates; a clone shares buffers, so this costs nothing.
        let model = update_running_stats(self.model.clone(), &pending.batch_stats)?;
        self.model = self.optimizer.step(model, layout, &pending.gradient, self.steps);
        self.count_step();
        Ok(())
    }

    /// Keep an estimate's batch statistics but not its step (the estimate went to a server):
    /// the running statistics learn from the batch, the parameters do not move.
    pub fn discard(&mut self, pending: Pending) -> Result<(), Error> {
        self.model = update_running_stats(self.model.clone(), &pending.batch_stats)?;
        self.count_step();
        Ok(())
    }

    /// Count one local step (its noise is used up). An order switch happens as soon as the count
    /// reaches it, so that a checkpoint taken now saves the momentum of the optimizer the next
    /// step uses.
    pub fn count_step(&mut self) {
        self.steps += 1;
        self.enter_phase();
    }

    /// Apply an estimate by distance over gradients: `G ← G + ‖g‖²`, `x ← x − (r/√G)·g` with
    /// `r` the node's mixed radius proxy (no step while `G = 0`).
    pub fn apply_dog(&mut self, pending: Pending, layout: &Layout) -> Result<(), Error> {
        let model = update_running_stats(self.model.clone(), &pending.batch_stats)?;
        let device = self.device.clone().inner();
        let mut sq = 0f64;
        let mut parts = Vec::with_capacity(layout.num_trainable());
        for info in layout.trainable() {
            let g = pending.gradient.tensor(info.trainable.unwrap_or(0), info, &device);
            sq += params::download((g.clone() * g.clone()).sum())?[0] as f64;
            parts.push(g);
        }
        self.dog.sum_sq += sq;
        let eta =
            if self.dog.sum_sq > 0.0 { self.dog.radius / self.dog.sum_sq.sqrt() } else { 0.0 };
        let eta = eta as f32;
        let mut parts = parts.into_iter();
        self.model = params::map(model, |i, x| match layout.tensors[i].trainable {
            Some(_) => match parts.next() {
                Some(g) => x.clone() - g.to_device(&x.device()) * eta,
                None => x,
            },
            None => x,
        });
        self.count_step();
        Ok(())
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
