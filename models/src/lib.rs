//! Models for hdo, as Burn modules with an explicit forward context.
//!
//! Each model lives in one file and is registered by one variant of [`Model`] and of
//! [`ModelConfig`]. Every model maps an [`Input`] batch to class logits `[batch, classes]`.
//!
//! Why a custom [`BatchNorm`]: Burn's keeps running statistics in shared mutable state, so clones
//! of a module (our node replicas) would silently share them, and it uses batch statistics only on
//! autodiff devices, so forward-only (zeroth-order) nodes would never see them. Ours keeps running
//! statistics as ordinary (non-trainable) parameters that gossip averages like any other, and
//! reports batch statistics through [`ForwardCtx`] so the caller decides when to fold them in.

pub mod batch_norm;
pub mod cnn;
pub mod jvp;
pub mod logistic;
pub mod mlp;

pub use batch_norm::BatchNorm;
pub use cnn::{Cnn, CnnConfig};
pub use jvp::Dual;
pub use logistic::Logistic;
pub use mlp::{Mlp, MlpConfig};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// One batch of model inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// Images `[batch, channels, height, width]`.
    Images(Tensor<4>),
}

impl Input {
    /// Number of examples in the batch.
    pub fn batch_size(&self) -> usize {
        match self {
            Input::Images(x) => x.dims()[0],
        }
    }
}

/// What a forward pass needs besides its input, and what it reports back.
#[derive(Debug, Default)]
pub struct ForwardCtx {
    /// Training mode: normalisation layers use (and report) batch statistics.
    pub train: bool,
    /// Batch statistics `(mean, unbiased variance)` of each normalisation layer, in visiting order,
    /// filled in training mode.
    pub batch_stats: Vec<(Tensor<1>, Tensor<1>)>,
}

impl ForwardCtx {
    /// A training-mode context.
    pub fn train() -> Self {
        ForwardCtx { train: true, batch_stats: Vec::new() }
    }

    /// An evaluation-mode context (running statistics, nothing reported).
    pub fn eval() -> Self {
        ForwardCtx { train: false, batch_stats: Vec::new() }
    }
}

/// Shape of the data a model is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataShape {
    /// `[channels, height, width]` of one image.
    pub image: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

/// Every model hdo can train.
#[derive(Module, Debug)]
pub enum Model {
    /// Multinomial logistic regression.
    Logistic(Logistic),
    /// Multi-layer perceptron.
    Mlp(Mlp),
    /// The HDO paper's CNN.
    Cnn(Cnn),
}

impl Model {
    /// Class logits `[batch, classes]`.
    pub fn forward(&self, input: &Input, ctx: &mut ForwardCtx) -> Tensor<2> {
        match self {
            Model::Logistic(m) => m.forward(input),
            Model::Mlp(m) => m.forward(input, ctx),
            Model::Cnn(m) => m.forward(input, ctx),
        }
    }

    /// Logits and their directional derivative along the parameter direction held by
    /// `direction` (a model of the same architecture), by forward-mode differentiation.
    /// Returns `None` when `direction` is a different architecture.
    pub fn forward_jvp(
        &self,
        direction: &Model,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Option<Dual<2>> {
        match (self, direction) {
            (Model::Logistic(m), Model::Logistic(d)) => Some(m.forward_jvp(d, input)),
            (Model::Mlp(m), Model::Mlp(d)) => Some(m.forward_jvp(d, input)),
            (Model::Cnn(m), Model::Cnn(d)) => Some(m.forward_jvp(d, input, ctx)),
            _ => None,
        }
    }
}

/// The `[model]` section: `kind = "logistic" | "mlp" | "cnn"` and that model's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Logistic regression: flatten, one linear layer.
    Logistic {},
    /// MLP: flatten, hidden linear layers with ReLU.
    Mlp(MlpConfig),
    /// The HDO CNN.
    Cnn(CnnConfig),
}

impl ModelConfig {
    /// Build the model on `device` (parameters are initialised lazily by Burn; callers
    /// re-initialise them from an explicit seed).
    pub fn init(&self, shape: DataShape, device: &Device) -> Model {
        match self {
            ModelConfig::Logistic {} => Model::Logistic(Logistic::new(shape, device)),
            ModelConfig::Mlp(c) => Model::Mlp(c.init(shape, device)),
            ModelConfig::Cnn(c) => Model::Cnn(c.init(shape, device)),
        }
    }

    /// The config's `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Logistic {} => "logistic",
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Cnn(_) => "cnn",
        }
    }
}

/// Flatten images to `[batch, features]`.
pub(crate) fn flatten(input: &Input) -> Tensor<2> {
    match input {
        Input::Images(x) => x.clone().flatten(1, 3),
    }
}

/// Flattened images as a constant dual (inputs do not depend on the parameters).
pub(crate) fn flatten_dual(input: &Input) -> Dual<2> {
    Dual::constant(flatten(input))
}
