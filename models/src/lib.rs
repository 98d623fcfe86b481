//! Models for hdo, as Burn modules written once against an execution abstraction.
//!
//! Each model lives in one file, implements [`exec::Architecture`] (its forward pass, once, as a
//! composition of the layer rules of [`layers`]), and is registered by one variant of [`Model`]
//! and of [`ModelConfig`]. The same definition runs plain (on an autodiff device or not), stacked
//! over `K` replicas, and in forward mode along `K` directions ([`exec`]). Every model maps an
//! [`Input`] batch to class logits `[batch, classes]`.

pub mod cnn;
pub mod context;
pub mod exec;
pub mod input;
pub mod layers;
pub mod logistic;
pub mod loss;
pub mod mlp;
pub mod objective;
pub mod resnet;
pub mod transformer;

pub use cnn::{Cnn, CnnConfig};
pub use context::ForwardCtx;
pub use exec::{Architecture, BatchStats, Duals, Exec, LazyStack, Stack, StackInput};
pub use input::{DataShape, Input, InputShape};
pub use layers::BatchNorm;
pub use logistic::Logistic;
pub use loss::Loss;
pub use mlp::{Mlp, MlpConfig};
pub use objective::{Objective, ObjectiveConfig};
pub use resnet::{ResNet, ResNetConfig, Stem};
pub use transformer::{Pooling, Transformer, TransformerConfig};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Every model hdo can train.
// One per node replica, moved by value: the inline ResNet's size costs nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    /// Multinomial logistic regression.
    Logistic(Logistic),
    /// Multi-layer perceptron.
    Mlp(Mlp),
    /// The HDO paper's CNN.
    Cnn(Cnn),
    /// The HDO paper's Brackets Transformer.
    Transformer(Transformer),
    /// ResNet-18 (torchvision's).
    ResNet(ResNet),
    /// A point scored by a function ([`objective`]), not a model of data.
    Objective(Objective),
}

impl Model {
    /// The loss it is trained and evaluated on.
    pub fn loss(&self) -> Loss {
        match self {
            Model::Logistic(m) => m.loss,
            Model::Objective(_) => Loss::Value,
            _ => Loss::CrossEntropy,
        }
    }

    /// The constant factor on its loss (1 but for `linear` with `scale`).
    pub fn loss_scale(&self) -> f32 {
        match self {
            Model::Logistic(m) => m.loss_scale,
            _ => 1.0,
        }
    }

    /// The model's definition run by `exec`; `None` for an objective (a point scored by a
    /// function, not a composition of layers).
    pub fn run<E: Exec>(&self, exec: &mut E, input: &Input) -> Option<E::T<2>> {
        match self {
            Model::Logistic(m) => Some(m.run(exec, input)),
            Model::Mlp(m) => Some(m.run(exec, input)),
            Model::Cnn(m) => Some(m.run(exec, input)),
            Model::Transformer(m) => Some(m.run(exec, input)),
            Model::ResNet(m) => Some(m.run(exec, input)),
            Model::Objective(_) => None,
        }
    }

    /// Class logits `[batch, classes]` (an objective: its value `[1, 1]`).
    pub fn forward(&self, input: &Input, ctx: &mut ForwardCtx) -> Tensor<2> {
        match self {
            Model::Objective(m) => m.forward(),
            _ => match self.run(&mut exec::Plain { ctx }, input) {
                Some(logits) => logits,
                None => unreachable!("every model but an objective has a definition"),
            },
        }
    }

    /// Logits `[K, batch, classes]` of the `K` replicas whose parameters `stack` holds, on one
    /// shared batch or one batch each, in one batched pass ([`exec::Stacked`]). Dropout masks
    /// come from `ctx` and are shared by all members. An error when the stack does not fit the
    /// architecture (naming the parameter) or the model has no stacked forward (an objective:
    /// see [`Model::can_stack`]).
    pub fn forward_stacked(
        &self,
        stack: &Stack,
        input: StackInput<'_>,
        ctx: &ForwardCtx,
    ) -> Result<Tensor<3>, String> {
        if !self.can_stack() {
            return Err(NO_STACK.into());
        }
        let mut exec = exec::Stacked::new(exec::Params::of(self, stack)?, input, ctx);
        let logits = self.run(&mut exec, input.input()).ok_or(NO_STACK)?;
        exec.finish(logits)
    }

    /// Logits and their derivatives along the `K` directions held by `directions` (member `k`
    /// holds direction `k`), by forward mode with one shared primal pass ([`exec::Tangents`]).
    /// Batch statistics of the primal are reported in training mode, as [`Model::forward`]
    /// reports them.
    pub fn forward_jvp_stacked(
        &self,
        directions: &Stack,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Result<Duals<2>, String> {
        self.tangent_pass(exec::Params::of(self, directions)?, input, ctx)
    }

    /// [`Model::forward_jvp_stacked`] with the directions made tensor by tensor as the pass
    /// reaches them and dropped after: beyond the pass itself, one layer's direction tensors are
    /// alive at a time.
    pub fn forward_jvp_lazy(
        &self,
        directions: LazyStack<'_>,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Result<Duals<2>, String> {
        self.tangent_pass(exec::Params::lazy(self, directions)?, input, ctx)
    }

    fn tangent_pass(
        &self,
        directions: exec::Params<'_>,
        input: &Input,
        ctx: &mut ForwardCtx,
    ) -> Result<Duals<2>, String> {
        if !self.can_stack() {
            return Err(NO_STACK.into());
        }
        let mut exec = exec::Tangents::new(directions, ctx);
        let logits = self.run(&mut exec, input).ok_or(NO_STACK)?;
        exec.finish(logits)
    }

    /// Whether [`Model::forward_stacked`] and forward mode are available for this architecture
    /// (every model but an objective, whose perturbed points are evaluated one at a time).
    pub fn can_stack(&self) -> bool {
        !matches!(self, Model::Objective(_))
    }

    /// Whether [`Model::forward_jvp_stacked`] is available.
    pub fn can_stack_jvp(&self) -> bool {
        self.can_stack()
    }

    /// Whether training-mode passes apply dropout. Members of a stacked pass share the masks of
    /// one context, so copies of different nodes (different dropout seeds) are not batched
    /// together when this holds.
    pub fn has_dropout(&self) -> bool {
        matches!(self, Model::Transformer(m) if m.dropout > 0.0)
    }
}

const NO_STACK: &str = "an objective has no stacked or forward-mode pass";

/// The `[model]` section: `kind = "logistic" | "mlp" | "cnn" | "transformer"` and that model's
/// options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Logistic regression: flatten, one linear layer.
    Logistic {},
    /// A linear model on the `loss` of choice: one score and the hinge loss (binary), or one
    /// score per class and cross-entropy (the same as `logistic`).
    Linear {
        /// `hinge` or `cross_entropy`.
        #[serde(default)]
        loss: Loss,
        /// A constant factor on the loss (default 1): scale-free methods (D-POEM) must not
        /// notice it, tuned learning rates do.
        #[serde(default = "one")]
        scale: f64,
    },
    /// MLP: flatten, hidden linear layers with ReLU.
    Mlp(MlpConfig),
    /// The HDO CNN.
    Cnn(CnnConfig),
    /// The HDO Brackets Transformer.
    Transformer(TransformerConfig),
    /// ResNet-18 (torchvision's architecture and parameter names).
    #[serde(rename = "resnet18")]
    ResNet18(ResNetConfig),
}

impl ModelConfig {
    /// Every `kind` with one line on it (`hdo list`).
    pub const KINDS: [(&'static str, &'static str); 6] = [
        ("logistic", "multinomial logistic regression: flatten, one linear layer"),
        ("linear", "flatten, one linear layer, `loss = \"hinge\"` (binary) or \"cross_entropy\""),
        ("mlp", "flatten, hidden linear layers with ReLU (`hidden`)"),
        ("cnn", "the HDO CNN: three 3×3 conv + BatchNorm + ReLU, two max-pools, dense layers"),
        (
            "transformer",
            "the HDO Brackets Transformer (`width`, `heads`, `depth`, `mlp`, `pooling`)",
        ),
        ("resnet18", "ResNet-18, torchvision's (`stem = \"imagenet\"` or \"cifar\", `width`)"),
    ];

    /// Build the model on `device` (parameters are initialised lazily by Burn; callers
    /// re-initialise them from an explicit seed). Fails when the data does not suit the model.
    pub fn init(&self, shape: DataShape, device: &Device) -> Result<Model, String> {
        self.validate().map_err(|p| format!("{}: {}", p.key, p.problem))?;
        if shape.classes == 0 {
            return Err("the data has no classes".into());
        }
        let image =
            || shape.image_dims().ok_or_else(|| format!("model {} needs image data", self.name()));
        Ok(match self {
            ModelConfig::Logistic {} => {
                Model::Logistic(Logistic::new(image()?, shape.classes, device))
            }
            ModelConfig::Linear { loss, scale } => {
                let outputs = if *loss == Loss::Hinge { 1 } else { shape.classes };
                if *loss == Loss::Hinge && shape.classes != 2 {
                    return Err(format!(
                        "the hinge loss is binary, but the data has {} classes; use \
                         loss = \"cross_entropy\" or a binary task",
                        shape.classes
                    ));
                }
                let mut m = Logistic::with_loss(image()?, outputs, *loss, device);
                m.loss_scale = *scale as f32;
                Model::Logistic(m)
            }
            ModelConfig::Mlp(c) => Model::Mlp(c.init(image()?, shape.classes, device)),
            ModelConfig::Cnn(c) => {
                let [_, h, w] = image()?;
                if h < 4 || w < 4 {
                    return Err(format!(
                        "the CNN pools twice by 2, so it needs images of at least 4×4; the data's are {h}×{w}"
                    ));
                }
                Model::Cnn(c.init(image()?, shape.classes, device))
            }
            ModelConfig::Transformer(c) => Model::Transformer(c.init(shape, device)?),
            ModelConfig::ResNet18(c) => Model::ResNet(c.init(image()?, shape.classes, device)),
        })
    }

    /// Check every option on its own (before any data is seen): zero widths, channels, heads or
    /// layers, sizes past [`MAX_WIDTH`] and dropout outside `[0, 1)` are errors naming the key by
    /// its dotted path (`model.channels`, …).
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        match self {
            ModelConfig::Logistic {} => Ok(()),
            ModelConfig::Linear { loss: Loss::Value, .. } => Err(ConfigProblem::new(
                "model.loss",
                "\"value\" is an objective's loss; a linear model takes \"hinge\" or \"cross_entropy\"",
            )),
            ModelConfig::Linear { scale, .. } => {
                if scale.is_finite() && *scale > 0.0 {
                    Ok(())
                } else {
                    Err(ConfigProblem::new(
                        "model.scale",
                        format!("must be positive and finite, got {scale}"),
                    ))
                }
            }
            ModelConfig::Mlp(c) => widths("model.hidden", &c.hidden),
            ModelConfig::Cnn(c) => {
                widths("model.channels", &c.channels)?;
                widths("model.hidden", &c.hidden)
            }
            ModelConfig::Transformer(c) => c.validate(),
            ModelConfig::ResNet18(c) => c.validate(),
        }
    }

    /// The config's `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Logistic {} => "logistic",
            ModelConfig::Linear { .. } => "linear",
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::Transformer(_) => "transformer",
            ModelConfig::ResNet18(_) => "resnet18",
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Largest width, channel count or layer count a model option accepts: far above any model hdo
/// trains, low enough that a typo cannot ask Burn for an impossible allocation.
pub const MAX_WIDTH: usize = 1 << 16;

/// A model option that cannot work: its dotted key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path, e.g. `model.channels`.
    pub key: String,
    /// What is wrong, with the accepted range.
    pub problem: String,
}

impl ConfigProblem {
    pub(crate) fn new(key: &str, problem: impl Into<String>) -> Self {
        ConfigProblem { key: key.into(), problem: problem.into() }
    }
}

/// Every entry of a list of layer sizes in `1..=MAX_WIDTH`.
pub(crate) fn widths(key: &str, values: &[usize]) -> Result<(), ConfigProblem> {
    match values.iter().position(|&w| w == 0 || w > MAX_WIDTH) {
        Some(i) => Err(ConfigProblem::new(
            key,
            format!("entry {i} is {}; every size must be in 1..={MAX_WIDTH}", values[i]),
        )),
        None => Ok(()),
    }
}

/// One size in `1..=MAX_WIDTH`.
pub(crate) fn width(key: &str, value: usize) -> Result<(), ConfigProblem> {
    if value == 0 || value > MAX_WIDTH {
        return Err(ConfigProblem::new(key, format!("is {value}; must be in 1..={MAX_WIDTH}")));
    }
    Ok(())
}
