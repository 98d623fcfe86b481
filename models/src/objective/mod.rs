//! Objectives that are not data sets: a point `x ∈ R^dim` and a function `f(x)` written with
//! tensor operations, so first-order nodes differentiate it by autodiff and zeroth-order nodes
//! evaluate it at perturbed points, exactly as they do a model on a minibatch.
//!
//! Adding an objective: one file here with its config struct (implementing [`ObjectiveSpec`])
//! and its function (implementing [`Function`]), then **one line** in the `registry!` invocation
//! below: `Variant => file::ConfigStruct,`. The variant's snake_case name is the `[objective]`
//! section's `kind` (tested to equal [`ObjectiveSpec::NAME`]).

use crate::ConfigProblem;
use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `f(x)`: the value `[1]` at the flat point `x` `[dim]` (on `x`'s device, autodiff or not).
pub trait Function: Send + Sync + std::fmt::Debug {
    /// The value `[1]`.
    fn value(&self, x: Tensor<1>) -> Tensor<1>;
}

/// An `[objective]` section's keys.
pub trait ObjectiveSpec {
    /// The `kind` name.
    const NAME: &'static str;
    /// One line on it (`hdo list`).
    const SUMMARY: &'static str;
    /// The dimension of the point.
    fn dim(&self) -> usize;
    /// Checks of its own keys.
    fn validate(&self) -> Result<(), ConfigProblem> {
        Ok(())
    }
    /// The function; a random instance (matrix completion's `M`) is drawn from `seed`.
    fn build(&self, seed: u64) -> Arc<dyn Function>;
    /// Where the nodes start.
    fn start(&self) -> Start<'_>;
}

/// Where the nodes start: `points` (one for every node, or one per node), else each node's own
/// draw from `N(0, std²)`, seeded by the run seed and the node.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    /// `init_points`.
    pub points: &'a [Vec<f64>],
    /// `init_std`.
    pub std: f64,
}

/// Declares every objective: its module and config struct, the `ObjectiveConfig` enum (the
/// `[objective]` section, tagged by `kind`) and its dispatch.
macro_rules! registry {
    ($($variant:ident => $module:ident :: $config:ident,)*) => {
        $(mod $module;)*
        $(pub use $module::*;)*

        /// The `[objective]` section: `kind` names one of the registered objectives; the other
        /// keys are its config struct's.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
        pub enum ObjectiveConfig {
            $(
                #[doc = concat!("See [`", stringify!($config), "`].")]
                $variant($config),
            )*
        }

        impl ObjectiveConfig {
            /// Every `kind` with one line on it (`hdo list`), in registration order.
            pub const KINDS: &'static [(&'static str, &'static str)] =
                &[$((<$config as ObjectiveSpec>::NAME, <$config as ObjectiveSpec>::SUMMARY),)*];

            /// The config name.
            pub fn name(&self) -> &'static str {
                match self { $(ObjectiveConfig::$variant(_) => <$config as ObjectiveSpec>::NAME,)* }
            }

            fn spec(&self) -> &dyn Spec {
                match self { $(ObjectiveConfig::$variant(c) => c,)* }
            }
        }
    };
}

registry! {
    Sinc2d => sinc2d::Sinc2dConfig,
    MatrixCompletion => matrix_completion::MatrixCompletionConfig,
    Quadratic => quadratic::QuadraticConfig,
}

/// [`ObjectiveSpec`] without its constants, so the enum can hand out one trait object.
trait Spec {
    fn dim(&self) -> usize;
    fn validate(&self) -> Result<(), ConfigProblem>;
    fn build(&self, seed: u64) -> Arc<dyn Function>;
    fn start(&self) -> Start<'_>;
}

impl<T: ObjectiveSpec> Spec for T {
    fn dim(&self) -> usize {
        ObjectiveSpec::dim(self)
    }
    fn validate(&self) -> Result<(), ConfigProblem> {
        ObjectiveSpec::validate(self)
    }
    fn build(&self, seed: u64) -> Arc<dyn Function> {
        ObjectiveSpec::build(self, seed)
    }
    fn start(&self) -> Start<'_> {
        ObjectiveSpec::start(self)
    }
}

/// Largest point an objective accepts (matrix completion's `d·r`).
pub const MAX_DIM: usize = 1 << 24;

impl ObjectiveConfig {
    /// The dimension of the point.
    pub fn dim(&self) -> usize {
        self.spec().dim()
    }

    /// Check every key: the objective's own, then the start points' count-free checks
    /// (dimension of each point, a finite positive `init_std`).
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        self.spec().validate()?;
        let dim = self.dim();
        if dim == 0 || dim > MAX_DIM {
            return Err(ConfigProblem::new(
                "objective",
                format!("the point has {dim} coordinates; must be in 1..={MAX_DIM}"),
            ));
        }
        let start = self.spec().start();
        if let Some((i, p)) = start.points.iter().enumerate().find(|(_, p)| p.len() != dim) {
            return Err(ConfigProblem::new(
                "objective.init_points",
                format!("point {i} has {} coordinates; {} takes {dim}", p.len(), self.name()),
            ));
        }
        if let Some(i) = start.points.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(ConfigProblem::new(
                "objective.init_points",
                format!("point {i} has a coordinate that is not a finite number"),
            ));
        }
        if !(start.std.is_finite() && start.std >= 0.0) {
            return Err(ConfigProblem::new(
                "objective.init_std",
                format!("must be a finite number ≥ 0, got {}", start.std),
            ));
        }
        Ok(())
    }

    /// The objective as a [`Objective`] model at the origin; `seed` draws its random instance.
    pub fn init(&self, seed: u64, device: &Device) -> Result<Objective, String> {
        self.validate().map_err(|p| format!("{}: {}", p.key, p.problem))?;
        let dim = self.dim();
        let x = Tensor::<1>::zeros([dim], device);
        Ok(Objective {
            x: Param::from_tensor(x),
            function: self.spec().build(seed),
            name: self.name(),
        })
    }

    /// Where node `node` of `n` starts (host values, `dim` of them): its entry of
    /// `init_points` (or the only one), else `N(0, init_std²)` from `(seed, node)`.
    pub fn start(&self, node: usize, n: usize, seed: u64) -> Result<Vec<f32>, String> {
        self.check_start_points(n)?;
        let start = self.spec().start();
        match start.points.len() {
            0 => Ok(gaussians(stream(seed, STARTS, node as u64), self.dim())
                .into_iter()
                .map(|g| (g * start.std) as f32)
                .collect()),
            1 => Ok(start.points[0].iter().map(|&v| v as f32).collect()),
            _ => Ok(start.points[node].iter().map(|&v| v as f32).collect()),
        }
    }

    /// Whether `init_points` fits `n` nodes: none, one for all, or one per node.
    pub fn check_start_points(&self, n: usize) -> Result<(), String> {
        match self.spec().start().points.len() {
            k if k <= 1 || k == n => Ok(()),
            k => Err(format!("{k} points for {n} nodes; give one point for all or one per node")),
        }
    }
}

/// A point and the function it is scored by: the "model" of an objective run. Its forward pass
/// ignores the batch and returns `f(x)` as `[1, 1]`; its loss is that value ([`crate::Loss::Value`]).
#[derive(Module, Debug)]
pub struct Objective {
    /// The point, flat.
    pub x: Param<Tensor<1>>,
    /// `f`.
    #[module(skip)]
    pub function: Arc<dyn Function>,
    /// The objective's `kind`.
    #[module(skip)]
    pub name: &'static str,
}

impl Objective {
    /// `f(x)` as `[1, 1]`.
    pub fn forward(&self) -> Tensor<2> {
        self.function.value(self.x.val()).reshape([1, 1])
    }
}

/// `n` standard Gaussians from `seed` (SplitMix64 and Box–Muller: no global generator, the same
/// values on every run).
pub fn gaussians(seed: u64, n: usize) -> Vec<f64> {
    let uniform = |i: u64| {
        ((crate::context::splitmix(seed ^ crate::context::splitmix(i)) >> 11) as f64 + 0.5)
            / (1u64 << 53) as f64
    };
    (0..n as u64)
        .map(|i| {
            let (u1, u2) = (uniform(2 * i), uniform(2 * i + 1));
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// Where start points come from, and where random instances do: separate streams of one seed.
const STARTS: u64 = 0x5A27;
pub(crate) const INSTANCES: u64 = 0x1257;

/// The seed of item `i` of stream `tag` of the run seed `seed`.
pub(crate) fn stream(seed: u64, tag: u64, i: u64) -> u64 {
    crate::context::splitmix(crate::context::splitmix(seed ^ crate::context::splitmix(tag)) ^ i)
}

/// Host values as a constant tensor on `like`'s device.
pub(crate) fn constant<const D: usize>(
    values: &[f32],
    shape: [usize; D],
    like: &Tensor<1>,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &like.device())
}

fn default_std() -> f64 {
    1.0
}
