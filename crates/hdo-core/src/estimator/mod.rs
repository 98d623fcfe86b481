//! Gradient estimators: what a node computes from its minibatch each local step.
//!
//! An [`Estimator`] looks at the node's model and batch and returns an [`Estimate`]: the loss at
//! the current parameters and a [`Gradient`], either dense tensors (backprop) or a
//! [`SeededGradient`] — coefficients of random directions that are regenerated from their
//! [`NoiseStream`] coordinates whenever needed, never stored. Every zeroth-order estimator of the
//! family (forward/central differences, sphere directions, de-biased, forward gradients, per-tensor
//! projections) is a rule for those coefficients, so the optimizer, the batched executor and
//! seed-plus-scalar communication never change when an estimator is added.
//!
//! Adding an estimator: one file here, one variant in [`EstimatorKind`] and its `build` arm.

mod backprop;
mod central_difference;
mod debiased;
mod direction;
mod forward_difference;
mod forward_gradient;
mod simulated_forward_gradient;

pub use backprop::Backprop;
pub use central_difference::CentralDifference;
pub use debiased::{Debiased, MAX_LEVEL};
use direction::lazy_directions;
pub use direction::{Direction, direction_stack, perturbed, perturbed_stack};
pub use forward_difference::ForwardDifference;
pub use forward_gradient::ForwardGradient;
pub use simulated_forward_gradient::SimulatedForwardGradient;

use crate::batcher::Batcher;
use crate::config::GroupConfig;
use crate::data::Batch;
use crate::error::Error;
use crate::noise::NoiseStream;
use crate::params::{Layout, TensorInfo, download, upload};
use burn::prelude::*;
use hdo_models::{BatchStats, ForwardCtx, Loss, Model, StackInput};
use serde::{Deserialize, Serialize};

/// What an estimator sees.
pub struct StepInput<'a> {
    /// The node's current parameters (not modified: perturbations are made on copies).
    pub model: &'a Model,
    /// The node's minibatch.
    pub batch: &'a Batch,
    /// Layout of the model's tensors.
    pub layout: &'a Layout,
    /// This node's noise at this step.
    pub noise: NoiseStream,
    /// Perturbed copies evaluated together in one stacked pass (1: one at a time). An execution
    /// choice, not part of the estimate: both ways give the same losses up to float summation
    /// order.
    pub stack: usize,
    /// Where this node's stacks go when nodes are batched together (`batch_nodes`): the node's
    /// id and the round's [`Batcher`]. `None`: the node evaluates its own stacks.
    pub batcher: Option<(usize, &'a Batcher)>,
}

impl StepInput<'_> {
    /// A training-mode forward context whose dropout masks are this step's: every pass of one
    /// estimate (unperturbed, perturbed, forward-mode) sees the same network.
    pub fn train_ctx(&self) -> ForwardCtx {
        ForwardCtx::train_seeded(self.noise.dropout_seed())
    }
}

/// An estimator's result.
pub struct Estimate {
    /// The gradient estimate `G`.
    pub gradient: Gradient,
    /// Minibatch loss at the current parameters.
    pub loss: f32,
    /// Batch statistics of the unperturbed forward pass (for running statistics).
    pub batch_stats: Vec<BatchStats>,
    /// Forward passes spent.
    pub forward_passes: u64,
    /// Backward passes spent.
    pub backward_passes: u64,
}

/// A gradient estimate.
#[derive(Clone)]
pub enum Gradient {
    /// One flat tensor per trainable tensor.
    Dense(Vec<Tensor<1>>),
    /// `G = Σ_k c_k·u_k` over regenerated directions.
    Seeded(SeededGradient),
}

/// `G_b = Σ_k coefficients[k·blocks + b] · u_k` restricted to block `b`, where `u_k` is
/// direction `k` of `noise` (a standard Gaussian over the whole trainable vector). `blocks` is 1
/// when one coefficient scales a whole direction, or the number of trainable tensors for
/// per-tensor estimators.
#[derive(Debug, Clone, PartialEq)]
pub struct SeededGradient {
    /// Where the directions come from.
    pub noise: NoiseStream,
    /// Number of directions.
    pub directions: u32,
    /// Coefficient blocks per direction.
    pub blocks: usize,
    /// `directions × blocks` coefficients.
    pub coefficients: Vec<f32>,
}

impl Gradient {
    /// The estimate restricted to trainable tensor `l` (described by `info`), on `device`.
    pub fn tensor(&self, l: usize, info: &TensorInfo, device: &Device) -> Tensor<1> {
        match self {
            Gradient::Dense(ts) => ts[l].clone().to_device(device),
            Gradient::Seeded(s) => upload(s.materialize(l, info), device),
        }
    }
}

impl SeededGradient {
    /// Host values of the estimate on trainable tensor `l`.
    pub fn materialize(&self, l: usize, info: &TensorInfo) -> Vec<f32> {
        let block = if self.blocks == 1 { 0 } else { l };
        let mut acc = vec![0f32; info.numel];
        for k in 0..self.directions {
            let c = self.coefficients[k as usize * self.blocks + block];
            if c != 0.0 {
                self.noise.add_gaussian(k, info.offset, c, &mut acc);
            }
        }
        acc
    }
}

/// The `projection` key of forward-gradient estimators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    /// One directional derivative over the whole parameter vector (Baydin et al.).
    #[default]
    Global,
    /// One per trainable tensor (block-wise, as the HDO authors' simulation): lower variance.
    PerTensor,
}

/// The `estimator` key of `[fo]` / `[zo]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimatorKind {
    /// Minibatch gradient by reverse-mode autodiff (FO nodes).
    Backprop,
    /// `[F(x+νu) − F(x)]/ν · u` over `rv` directions (biased: `E = ∇F_ν`).
    ForwardDifference,
    /// `[F(x+νu) − F(x−νu)]/(2ν) · u` (bias `O(ν²)`).
    CentralDifference,
    /// Randomized-truncation telescoping estimator (Chen 2020), unbiased for ∇F.
    Debiased,
    /// `(u·∇F)·u` with `u·∇F` by real forward-mode differentiation (Baydin et al. 2022).
    ForwardGradient,
    /// Reference mode: backprop, then `(u·g)u` — how the HDO authors simulated forward gradients.
    SimulatedForwardGradient,
}

impl EstimatorKind {
    /// Every estimator, in config-documentation order.
    pub const ALL: [EstimatorKind; 6] = [
        EstimatorKind::Backprop,
        EstimatorKind::ForwardDifference,
        EstimatorKind::CentralDifference,
        EstimatorKind::Debiased,
        EstimatorKind::ForwardGradient,
        EstimatorKind::SimulatedForwardGradient,
    ];

    /// Whether a ZO population may use it (forward passes only, or the named reference mode).
    pub fn is_zeroth_order(self) -> bool {
        !matches!(self, EstimatorKind::Backprop)
    }

    /// Config name.
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Backprop => "backprop",
            EstimatorKind::ForwardDifference => "forward_difference",
            EstimatorKind::CentralDifference => "central_difference",
            EstimatorKind::Debiased => "debiased",
            EstimatorKind::ForwardGradient => "forward_gradient",
            EstimatorKind::SimulatedForwardGradient => "simulated_forward_gradient",
        }
    }

    /// Expected (forward, backward) passes of one step with `group`'s settings on a model with
    /// `tensors` trainable tensors: what `forward_passes` / `backward_passes` will count. A
    /// forward-mode pass (forward gradients) counts as one forward pass.
    pub fn passes_per_step(self, group: &GroupConfig, tensors: usize) -> (f64, f64) {
        let rv = group.rv as f64;
        let blocks = match group.projection {
            Projection::Global => 1.0,
            Projection::PerTensor => tensors as f64,
        };
        match self {
            EstimatorKind::Backprop | EstimatorKind::SimulatedForwardGradient => (1.0, 1.0),
            EstimatorKind::ForwardDifference => (rv + 1.0, 0.0),
            EstimatorKind::CentralDifference => (2.0 * rv + 1.0, 0.0),
            // probes μ₁ and μ₂ at level 1 (probability 1 − c), else μ₁, μ_n, μ_{n+1}: 2 + c
            EstimatorKind::Debiased => (1.0 + rv * (2.0 + group.debias_ratio), 0.0),
            EstimatorKind::ForwardGradient => (rv * blocks, 0.0),
        }
    }

    /// f32 values of one estimate as a message: the trainable dimension for a dense gradient,
    /// the coefficients of a seeded one (its directions are regenerated from shared seeds).
    pub fn message_values(self, group: &GroupConfig, layout: &Layout) -> u64 {
        let blocks = match group.projection {
            Projection::Global => 1,
            Projection::PerTensor => layout.num_trainable() as u64,
        };
        match self {
            EstimatorKind::Backprop => layout.dim,
            EstimatorKind::ForwardGradient | EstimatorKind::SimulatedForwardGradient => {
                group.rv as u64 * blocks
            }
            _ => group.rv as u64,
        }
    }

    /// One line on what it computes (for `hdo list`).
    pub fn summary(self) -> &'static str {
        match self {
            EstimatorKind::Backprop => "minibatch gradient by reverse-mode autodiff (FO nodes)",
            EstimatorKind::ForwardDifference => {
                "[F(x+νu) − F(x)]/ν · u over rv directions (biased: estimates ∇F_ν)"
            }
            EstimatorKind::CentralDifference => "[F(x+νu) − F(x−νu)]/(2ν) · u (bias O(ν²))",
            EstimatorKind::Debiased => {
                "randomized-truncation telescoping differences, unbiased for ∇F"
            }
            EstimatorKind::ForwardGradient => "(u·∇F)·u with u·∇F by real forward mode",
            EstimatorKind::SimulatedForwardGradient => {
                "reference: backprop, then (u·g)·u (how the HDO authors simulated forward gradients)"
            }
        }
    }

    /// Whether the estimator needs the model on an autodiff device.
    pub fn needs_autodiff(self) -> bool {
        matches!(self, EstimatorKind::Backprop | EstimatorKind::SimulatedForwardGradient)
    }

    /// The estimator with a population's hyper-parameters.
    pub fn build(self, group: &GroupConfig) -> Box<dyn Estimator> {
        let (rv, nu, direction) = (group.rv as u32, group.nu as f32, group.direction);
        match self {
            EstimatorKind::Backprop => Box::new(Backprop),
            EstimatorKind::ForwardDifference => Box::new(ForwardDifference { rv, nu, direction }),
            EstimatorKind::CentralDifference => Box::new(CentralDifference { rv, nu, direction }),
            EstimatorKind::Debiased => {
                Box::new(Debiased { rv, nu, ratio: group.debias_ratio, direction })
            }
            EstimatorKind::ForwardGradient => {
                Box::new(ForwardGradient { rv, projection: group.projection, direction })
            }
            EstimatorKind::SimulatedForwardGradient => {
                Box::new(SimulatedForwardGradient { rv, projection: group.projection, direction })
            }
        }
    }
}

/// Loss at the unperturbed parameters, with the batch statistics to fold into running stats.
pub(crate) fn base_loss(input: &StepInput<'_>) -> (f32, Vec<BatchStats>) {
    let mut ctx = input.train_ctx();
    let logits = input.model.forward(&input.batch.input, &mut ctx);
    (scalar(loss(input.model, logits, &input.batch.targets)), ctx.batch_stats)
}

/// Loss of a copy moved to `x + scale·z_k`. Normalises with its own batch statistics but does
/// not report them.
pub(crate) fn perturbed_loss(input: &StepInput<'_>, k: u32, scale: f32) -> f32 {
    let moved = perturbed(input.model, input.layout, input.noise, k, scale);
    let logits = moved.forward(&input.batch.input, &mut input.train_ctx());
    scalar(loss(input.model, logits, &input.batch.targets))
}

/// Losses of copies moved to `x + scale·z_k`, one per `(k, scale)` probe, in order. When
/// `input.stack > 1` and the model has a stacked forward, up to `stack` copies run as one batched
/// pass ([`hdo_models::stacked`]); with a [`Batcher`], those stacks join other nodes' in one pass;
/// otherwise one at a time. Estimators state which perturbations they need and stay unaware of
/// how they are executed.
pub(crate) fn perturbed_losses(
    input: &StepInput<'_>,
    probes: &[(u32, f32)],
) -> Result<Vec<f32>, Error> {
    let joinable = input.model.can_stack() && !input.model.has_dropout();
    if let Some((node, batcher)) = input.batcher.filter(|_| joinable) {
        probes
            .chunks(input.stack.max(1))
            .map(|chunk| {
                let stack = perturbed_stack(input.model, input.layout, input.noise, chunk);
                batcher.losses(node, input.model, stack, input.batch)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
    } else if input.stack > 1 && input.model.can_stack() {
        let chunks: Result<Vec<_>, _> =
            probes.chunks(input.stack).map(|chunk| stacked_losses(input, chunk)).collect();
        Ok(chunks?.concat())
    } else {
        Ok(probes.iter().map(|&(k, scale)| perturbed_loss(input, k, scale)).collect())
    }
}

/// Losses of one stack of perturbed copies, evaluated together.
fn stacked_losses(input: &StepInput<'_>, probes: &[(u32, f32)]) -> Result<Vec<f32>, Error> {
    let stack = perturbed_stack(input.model, input.layout, input.noise, probes);
    let shared = StackInput::Shared(&input.batch.input);
    let logits =
        input.model.forward_stacked(&stack, shared, &input.train_ctx()).map_err(Error::Model)?;
    download(stacked_loss(input.model, logits, &input.batch.targets))
}

/// A zeroth-order rule that only evaluates the loss at perturbed points `x + scale·z_k`: which
/// probes it needs, and how their losses become the coefficients of the `z_k`. Both halves are
/// pure functions of the noise, the layout and the losses — the model enters only through
/// [`perturbed_losses`] — so the statistical tests run the very same rule on analytic functions.
pub trait DifferenceRule {
    /// What the rule keeps between planning and combining (direction scales, levels).
    type Plan;
    /// Number of directions `rv`.
    fn directions(&self) -> u32;
    /// The plan and its probes `(k, scale)`, in the order [`DifferenceRule::coefficients`] reads
    /// their losses.
    fn plan(&self, noise: NoiseStream, layout: &Layout) -> (Self::Plan, Vec<(u32, f32)>);
    /// Coefficients of `z_0 … z_{rv−1}` from the unperturbed loss `f0` and the probes' losses.
    fn coefficients(&self, plan: &Self::Plan, layout: &Layout, f0: f32, losses: &[f32])
    -> Vec<f32>;
}

/// The estimate of a [`DifferenceRule`]: one unperturbed pass (the reported loss and batch
/// statistics), then the rule's probes.
pub(crate) fn difference_estimate<R: DifferenceRule>(
    rule: &R,
    input: &StepInput<'_>,
) -> Result<Estimate, Error> {
    let (f0, batch_stats) = base_loss(input);
    let (plan, probes) = rule.plan(input.noise, input.layout);
    let losses = perturbed_losses(input, &probes)?;
    let coefficients = rule.coefficients(&plan, input.layout, f0, &losses);
    let passes = 1 + probes.len() as u64;
    Ok(seeded(input, rule.directions(), 1, coefficients, f0, batch_stats, passes, 0))
}

/// Package a seeded estimate.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seeded(
    input: &StepInput<'_>,
    directions: u32,
    blocks: usize,
    coefficients: Vec<f32>,
    loss: f32,
    batch_stats: Vec<BatchStats>,
    forward_passes: u64,
    backward_passes: u64,
) -> Estimate {
    Estimate {
        gradient: Gradient::Seeded(SeededGradient {
            noise: input.noise,
            directions,
            blocks,
            coefficients,
        }),
        loss,
        batch_stats,
        forward_passes,
        backward_passes,
    }
}

/// Computes a gradient estimate for one node's step.
pub trait Estimator: Send + Sync {
    /// Estimate the minibatch gradient at `input.model`.
    fn estimate(&self, input: StepInput<'_>) -> Result<Estimate, Error>;
}

/// The mean loss `model` is trained on ([`Loss`]) of `logits` `[batch, outputs]`.
pub fn loss(model: &Model, logits: Tensor<2>, targets: &Tensor<1, Int>) -> Tensor<1> {
    let value = match model.loss() {
        Loss::CrossEntropy => cross_entropy(logits, targets),
        Loss::Hinge => hinge(logits, targets),
        Loss::Value => logits.mean(),
    };
    scaled(value, model.loss_scale())
}

/// `value · scale`, skipped for 1 so that every other model's arithmetic is unchanged.
fn scaled<const D: usize>(value: Tensor<D>, scale: f32) -> Tensor<D> {
    if scale == 1.0 { value } else { value * scale }
}

/// Each member's mean loss of `logits` `[K, batch, outputs]` (see [`stacked_cross_entropy`]
/// for `targets`). Returns `[K]`.
pub fn stacked_loss(model: &Model, logits: Tensor<3>, targets: &Tensor<1, Int>) -> Tensor<1> {
    let value = match model.loss() {
        Loss::CrossEntropy => stacked_cross_entropy(logits, targets),
        Loss::Hinge => {
            let [k, b, _] = logits.dims();
            let y = signs(targets);
            let y = if y.dims()[0] == b {
                y.unsqueeze_dim::<2>(0).repeat_dim(0, k)
            } else {
                y.reshape([k, b])
            };
            let margin = (logits.reshape([k, b]) * y).neg() + 1.0;
            margin.clamp_min(0.0).mean_dim(1).reshape([k])
        }
        Loss::Value => {
            let [k, b, c] = logits.dims();
            logits.reshape([k, b * c]).mean_dim(1).reshape([k])
        }
    };
    scaled(value, model.loss_scale())
}

/// `y = 2·target − 1`: ±1 for classes 1 / 0.
fn signs(targets: &Tensor<1, Int>) -> Tensor<1> {
    targets.clone().float() * 2.0 - 1.0
}

/// Binary hinge loss `mean(max(0, 1 − y·s))` of scores `[batch, 1]`, `y = ±1` for classes 1 / 0.
pub fn hinge(scores: Tensor<2>, targets: &Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = scores.dims();
    let margin = (scores.reshape([b]) * signs(targets)).neg() + 1.0;
    margin.clamp_min(0.0).mean()
}

/// Mean softmax cross-entropy of `logits` `[batch, classes]` against integer `targets` `[batch]`.
pub fn cross_entropy(logits: Tensor<2>, targets: &Tensor<1, Int>) -> Tensor<1> {
    let logp = burn::tensor::activation::log_softmax(logits, 1);
    let picked: Tensor<2> = logp.gather(1, targets.clone().unsqueeze_dim(1));
    picked.mean().neg()
}

/// Mean softmax cross-entropy of each member's logits `[K, batch, classes]` against `targets`:
/// shared `[batch]`, or member-major `[K·batch]`. Returns `[K]`.
pub fn stacked_cross_entropy(logits: Tensor<3>, targets: &Tensor<1, Int>) -> Tensor<1> {
    let [k, b, _] = logits.dims();
    let logp = burn::tensor::activation::log_softmax(logits, 2);
    let index = if targets.dims()[0] == b {
        targets.clone().reshape([1, b, 1]).repeat_dim(0, k)
    } else {
        targets.clone().reshape([k, b, 1])
    };
    let picked: Tensor<3> = logp.gather(2, index);
    picked.mean_dim(1).reshape([k]).neg()
}

/// A scalar tensor's value on the host.
pub fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}
