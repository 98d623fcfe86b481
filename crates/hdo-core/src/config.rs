//! Experiment configuration: plain serde structs, TOML files, `--set a.b=v` overrides.
//!
//! Every section rejects unknown keys, and errors name the key by its dotted path. Values with a
//! population-dependent default (`estimator`, `momentum_style`) are `None` until [`resolve`]d; the
//! resolved config is what a run writes to `OUT/config.toml`.

use crate::error::Error;
use crate::estimator::{Direction, EstimatorKind, Projection};
use hdo_gossip::ProtocolConfig;
use hdo_models::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the run (used for the default output directory).
    pub name: String,
    /// Seed of everything random: initial model, data split and order, directions, gossip pairs.
    pub seed: u64,
    /// Rounds to run.
    pub steps: u64,
    /// Evaluate (and write a metrics row) every this many rounds, and after the last.
    pub eval_every: u64,
    /// Write the run's whole state to `OUT/checkpoint.bin` every this many rounds and after the
    /// last (0 = never), so that `hdo run --resume` can continue an interrupted run exactly.
    pub checkpoint_every: u64,
    /// Rounds at the start during which nodes train without communicating (the HDO authors'
    /// `warmup_steps`).
    pub local_rounds: u64,
    /// Stop with an error when a node's training loss exceeds this (or is not finite).
    pub max_loss: f64,
    /// What happens when a node's training loss is not finite or exceeds `max_loss`.
    pub on_divergence: DivergencePolicy,
    /// How many nodes of each kind.
    pub population: PopulationConfig,
    /// First-order nodes' hyper-parameters.
    pub fo: GroupConfig,
    /// Zeroth-order nodes' hyper-parameters.
    pub zo: GroupConfig,
    /// Gossip protocol.
    pub protocol: ProtocolConfig,
    /// Model architecture.
    pub model: ModelConfig,
    /// Data set and evaluation.
    pub data: DataConfig,
    /// An objective that is not a data set (`[objective]`): nodes optimise a point scored by a
    /// function instead of a model on data; `[model]` and `[data]` then stay unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective: Option<hdo_models::ObjectiveConfig>,
    /// Where tensors live: `"cpu"` (burn-flex) or `"wgpu"` (a GPU through wgpu).
    pub device: DeviceChoice,
    /// Opt-in estimator diagnostics.
    pub diagnostics: DiagnosticsConfig,
    /// What the metrics files hold.
    pub metrics: MetricsConfig,
    /// Sweep: one run per variant (each applies its overrides to this config). Empty = one run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variant: Vec<Variant>,
    /// Sweep: repeat every run with each of these seeds. Empty = just `seed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
}

/// `[[variant]]`: a labelled set of overrides, e.g. `label = "24 FO"`,
/// `set = ["population.fo=24", "population.zo=0"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name shown in summaries and plots; also its output sub-directory (slugged).
    pub label: String,
    /// `key=value` overrides, as on the command line.
    #[serde(default)]
    pub set: Vec<String>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            name: "experiment".into(),
            seed: 0,
            steps: 100,
            eval_every: 10,
            checkpoint_every: 0,
            local_rounds: 0,
            max_loss: 1e4,
            on_divergence: DivergencePolicy::Stop,
            population: PopulationConfig::default(),
            fo: GroupConfig::default(),
            zo: GroupConfig::default(),
            protocol: ProtocolConfig::default(),
            model: ModelConfig::Logistic {},
            data: DataConfig::default(),
            objective: None,
            device: DeviceChoice::Cpu,
            diagnostics: DiagnosticsConfig::default(),
            metrics: MetricsConfig::default(),
            variant: Vec::new(),
            seeds: Vec::new(),
        }
    }
}

/// `on_divergence`: what a run does with a node whose training loss is not finite or exceeds
/// `max_loss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DivergencePolicy {
    /// End the run with an error naming the node (the metrics so far are kept).
    #[default]
    Stop,
    /// The node leaves the population for the rest of the run: no more steps, no gossip, not in
    /// the means; a warning, and `active_nodes` in the metrics.
    Drop,
    /// The node restarts from the mean of its healthy peers (parameters and running statistics;
    /// momentum cleared); a warning, and `resets` in the metrics.
    Reset,
}

/// `[metrics]`: what the metrics files hold besides the population's means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Also write `nodes.csv`: every node's validation loss and accuracy at every evaluation.
    pub per_node: bool,
}

/// `[diagnostics]`: estimator quality, measured against the true minibatch gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticsConfig {
    /// Every this many rounds, each ZO step also computes the true minibatch gradient by autodiff
    /// (on a separate copy, for diagnostics only) and reports the cosine similarity and norm ratio
    /// of its estimate; 0 = off.
    pub every: u64,
}

/// `[population]`: how many first-order (`fo`) and zeroth-order (`zo`) nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopulationConfig {
    /// First-order nodes.
    pub fo: usize,
    /// Zeroth-order nodes.
    pub zo: usize,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig { fo: 1, zo: 1 }
    }
}

/// Which order of estimates an FO node uses over training (`[fo] order_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrderSchedule {
    /// First order throughout.
    #[default]
    Fixed,
    /// Zeroth order (the `[zo]` estimator and optimizer) for the first `switch_at` of the steps,
    /// then first order.
    Zofo,
    /// First order for the first `switch_at` of the steps, then zeroth order.
    Fozo,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// `lr` throughout (after the optional linear warm-up).
    Constant,
    /// Linear warm-up over `warmup` steps, multiplied by cosine annealing to 0 over the run
    /// (as the authors' LinearWarmup + CosineAnnealingLR).
    WarmupCosine,
}

/// How momentum accumulates the estimate `G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MomentumStyle {
    /// PyTorch SGD: `v ← m·v + G` (the authors' FO nodes).
    Sgd,
    /// Exponential moving average: `v ← m·v + (1−m)·G` (the authors' ZO nodes, the paper's formula).
    Ema,
}

/// Smallest first radius `debiased` accepts: below it the f32 loss differences of its deeper
/// levels are rounding noise amplified by `1/p_n` (see [`crate::estimator::Debiased`]).
pub const DEBIASED_MIN_NU: f64 = 1e-3;

/// Largest `rv` and `stack`: directions are numbered by a `u32` in the noise's counter.
pub const MAX_DIRECTIONS: usize = u32::MAX as usize;

/// Largest number of nodes of one kind (every replica lives in one process's memory).
pub const MAX_NODES: usize = 1 << 20;

/// Longest generated Brackets string.
pub const MAX_BRACKETS_LEN: usize = 1 << 16;

/// Most generated Brackets examples per split.
pub const MAX_EXAMPLES: usize = 1 << 24;

/// Refuse values that are valid somewhere but mean nothing where they are set: a ZO-only key in
/// `[fo]` (FO nodes backpropagate one gradient per step), or one data set's key with another data
/// set. Judged by value against the default, so that a resolved `config.toml` (which spells every
/// key) runs again as it is.
fn reject_inapplicable(c: &ExperimentConfig) -> Result<(), Error> {
    let (fo, d) = (&c.fo, GroupConfig::default());
    let zo_only = [
        ("rv", fo.rv != d.rv),
        ("nu", fo.nu != d.nu),
        ("direction", fo.direction != d.direction),
        ("projection", fo.projection != d.projection),
        ("debias_ratio", fo.debias_ratio != d.debias_ratio),
        ("stack", fo.stack != d.stack),
        ("batch_nodes", fo.batch_nodes != d.batch_nodes),
    ];
    let (zo, d) = (&c.zo, GroupConfig::default());
    let fo_only = [
        ("order_schedule", zo.order_schedule != d.order_schedule),
        ("switch_at", zo.switch_at != d.switch_at),
    ];
    if let Some((key, _)) = fo_only.iter().find(|(_, set)| *set) {
        return Err(Error::Config {
            key: format!("zo.{key}"),
            problem: format!(
                "applies to first-order nodes only (ZO nodes cannot take backprop steps); set \
                 fo.{key} instead"
            ),
        });
    }
    if !(0.0..=1.0).contains(&c.fo.switch_at) {
        return Err(Error::Config {
            key: "fo.switch_at".into(),
            problem: format!("a fraction of the steps in [0, 1], got {}", c.fo.switch_at),
        });
    }
    if let Some((key, _)) = zo_only.iter().find(|(_, set)| *set) {
        return Err(Error::Config {
            key: format!("fo.{key}"),
            problem: format!(
                "applies to zeroth-order nodes only (FO nodes backpropagate); set zo.{key} instead"
            ),
        });
    }
    if let Some(objective) = &c.objective {
        for (key, set) in [
            ("model", c.model != ModelConfig::Logistic {}),
            ("data", c.data != DataConfig::default()),
        ] {
            if set {
                return Err(Error::Config {
                    key: key.into(),
                    problem: format!(
                        "an [objective] run ({}) optimises a point, not a model on data: remove \
                         the [{key}] section",
                        objective.name()
                    ),
                });
            }
        }
        objective.validate().map_err(|p| Error::Config { key: p.key, problem: p.problem })?;
        objective
            .check_start_points(c.population.fo + c.population.zo)
            .map_err(|problem| Error::Config { key: "objective.init_points".into(), problem })?;
        for (k, g) in [("fo", &c.fo), ("zo", &c.zo)] {
            if g.estimator.is_some_and(|e| e == EstimatorKind::ForwardGradient) {
                return Err(Error::Config {
                    key: format!("{k}.estimator"),
                    problem: "forward_gradient needs a model with a forward-mode rule; an \
                              objective has none yet: use a difference estimator"
                        .into(),
                });
            }
        }
    }
    let (data, d) = (&c.data, DataConfig::default());
    use DatasetKind::{Brackets, Cifar10, Libsvm, Mnist};
    let owned: [(&str, bool, &[DatasetKind]); 12] = [
        ("brackets", data.brackets != d.brackets, &[Brackets]),
        ("seq_len", data.seq_len.is_some(), &[Brackets]),
        ("pad_to", data.pad_to != d.pad_to, &[Brackets]),
        ("train_file", data.train_file.is_some(), &[Brackets, Libsvm]),
        ("validation_file", data.validation_file.is_some(), &[Brackets, Libsvm]),
        ("dir", data.dir.is_some(), &[Mnist, Cifar10]),
        ("normalize", data.normalize != d.normalize, &[Cifar10]),
        ("download", data.download, &[Mnist]),
        ("validation", data.validation != d.validation, &[Mnist]),
        ("binary", data.binary, &[Mnist]),
        ("validation_fraction", data.validation_fraction != d.validation_fraction, &[Libsvm]),
        ("features", data.features.is_some(), &[Libsvm]),
    ];
    if let Some((key, _, owners)) =
        owned.iter().find(|(_, set, owners)| *set && !owners.contains(&data.dataset))
    {
        let names: Vec<String> = owners.iter().map(|o| format!("\"{}\"", o.name())).collect();
        return Err(Error::Config {
            key: format!("data.{key}"),
            problem: format!(
                "applies to data.dataset = {} only, not to \"{}\"",
                names.join(" or "),
                data.dataset.name()
            ),
        });
    }
    if data.dataset == Cifar10 && data.dir.is_none() {
        return Err(Error::Config {
            key: "data.dir".into(),
            problem: "CIFAR-10 is not bundled: point data.dir at the binary version's directory \
                      (data_batch_1..5.bin, test_batch.bin, unpacked from cifar-10-binary.tar.gz)"
                .into(),
        });
    }
    if data.dataset == Libsvm && data.train_file.is_none() {
        return Err(Error::Config {
            key: "data.train_file".into(),
            problem: "data.dataset = \"libsvm\" needs the training file (LIBSVM text format)"
                .into(),
        });
    }
    if !(data.validation_fraction > 0.0 && data.validation_fraction < 1.0) {
        return Err(Error::Config {
            key: "data.validation_fraction".into(),
            problem: format!("must be in (0, 1), got {}", data.validation_fraction),
        });
    }
    Ok(())
}

/// `[fo]` / `[zo]`: one population's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Momentum `m` in `[0, 1)`.
    pub momentum: f64,
    /// Momentum rule; default `sgd` for FO, `ema` for ZO.
    pub momentum_style: Option<MomentumStyle>,
    /// Gradient estimator; default `backprop` for FO, `forward_difference` for ZO.
    pub estimator: Option<EstimatorKind>,
    /// Random directions averaged per step (ZO).
    pub rv: usize,
    /// Smoothing radius ν of finite differences (ZO); the first radius μ₁ of `debiased`.
    pub nu: f64,
    /// Distribution of random directions: `gaussian` or `sphere` (ZO).
    pub direction: Direction,
    /// Forward gradients: `global` or `per_tensor` projection.
    pub projection: Projection,
    /// `debiased`: ratio c of consecutive radii (and of the level distribution), in (0, 1).
    pub debias_ratio: f64,
    /// Sign step (ZO-signSGD / signum): `x ← x − lr·sign(v)`.
    pub sign: bool,
    /// FO nodes: change the order of estimates once during training (`zofo`, `fozo`).
    pub order_schedule: OrderSchedule,
    /// With `order_schedule`: the fraction of the run's steps before the switch, in [0, 1].
    pub switch_at: f64,
    /// Learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Linear warm-up steps of the schedule.
    pub warmup: u64,
    /// Perturbed copies a ZO node evaluates together in one stacked (batched) pass; 1 evaluates
    /// them one at a time (least memory). Models without a stacked forward ignore it.
    pub stack: usize,
    /// Evaluate the perturbed copies of all this group's nodes that step in a round together, as
    /// one stacked pass per request (each node's `stack` copies on its own minibatch), instead of
    /// node by node. For GPUs: fewer, larger launches. Models without a stacked forward ignore it.
    pub batch_nodes: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            lr: 0.01,
            batch_size: 32,
            momentum: 0.0,
            momentum_style: None,
            estimator: None,
            rv: 8,
            nu: 1e-4,
            direction: Direction::Gaussian,
            projection: Projection::Global,
            debias_ratio: 0.5,
            sign: false,
            order_schedule: OrderSchedule::Fixed,
            switch_at: 0.5,
            schedule: ScheduleKind::Constant,
            warmup: 0,
            stack: 1,
            batch_nodes: false,
        }
    }
}

/// Data sets hdo knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// MNIST digits.
    Mnist,
    /// Brackets: is a `(`/`)` string correctly bracketed?
    Brackets,
    /// A LIBSVM / svmlight text file (a9a, w8a, mushrooms, …).
    Libsvm,
    /// CIFAR-10, binary version, from `data.dir`.
    Cifar10,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Which data set.
    pub dataset: DatasetKind,
    /// Directory with the full data set's files; unset = the split bundled in the binary.
    pub dir: Option<PathBuf>,
    /// Download the files into `dir` first (checksums verified) if they are missing.
    pub download: bool,
    /// Validation images carved out of the bundled split (ignored with `dir`).
    pub validation: usize,
    /// Evaluate on at most this many validation examples (all when unset).
    pub eval_limit: Option<usize>,
    /// Examples per forward pass during evaluation.
    pub eval_batch: usize,
    /// Brackets generator settings (`[data.brackets]`).
    pub brackets: hdo_datasets::BracketsConfig,
    /// Brackets: training examples from this JSON-lines file instead of the generator. LIBSVM:
    /// the training file (required).
    pub train_file: Option<PathBuf>,
    /// Brackets: validation examples from this JSON-lines file instead of the generator. LIBSVM:
    /// the validation file (else `validation_fraction` of the training file is held out).
    pub validation_file: Option<PathBuf>,
    /// MNIST: the binary task digits 0–4 (class 0) against 5–9 (class 1).
    pub binary: bool,
    /// LIBSVM without `validation_file`: the fraction of training rows held out (seeded).
    pub validation_fraction: f64,
    /// LIBSVM: feature count (default: the largest index in the files).
    pub features: Option<usize>,
    /// Brackets: tokens per sequence (default `2·max_len + 2`, the authors' 514).
    pub seq_len: Option<usize>,
    /// Brackets: pad every sequence to `seq_len` (`fixed`), or each batch to its longest string
    /// (`batch`; for a transformer with `mean` or `last` pooling, whose output ignores padding).
    pub pad_to: PadTo,
    /// CIFAR-10: per-channel normalisation, `cifar` (its own statistics) or `imagenet` (for
    /// pretrained weights); applied once.
    pub normalize: hdo_datasets::cifar10::Normalize,
}

/// How token sequences are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PadTo {
    /// Every sequence to `seq_len`.
    #[default]
    Fixed,
    /// Each batch to its longest sequence.
    Batch,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetKind::Mnist,
            dir: None,
            download: false,
            validation: 2000,
            eval_limit: None,
            eval_batch: 1000,
            brackets: hdo_datasets::BracketsConfig::default(),
            train_file: None,
            validation_file: None,
            binary: false,
            validation_fraction: 0.2,
            features: None,
            seq_len: None,
            pad_to: PadTo::Fixed,
            normalize: hdo_datasets::cifar10::Normalize::Cifar,
        }
    }
}

/// Compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// burn-flex on the CPU (threads + SIMD).
    #[default]
    Cpu,
    /// Burn's wgpu backend (Vulkan / Metal / DX12), the first adapter wgpu picks.
    Wgpu,
}

/// Which population a node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// First-order: gradients by backpropagation.
    Fo,
    /// Zeroth-order: forward passes only.
    Zo,
}

impl DatasetKind {
    /// Every `dataset` with one line on it (`hdo list`).
    pub const KINDS: [(&'static str, &'static str); 4] = [
        ("mnist", "MNIST digits: a 10k split bundled in the binary, or the full set from data.dir"),
        ("brackets", "is a ( ) string correctly bracketed? generated from a seed, or JSON lines"),
        ("libsvm", "LIBSVM text files (train_file, validation_file or validation_fraction)"),
        ("cifar10", "CIFAR-10, binary version (data_batch_1..5.bin, test_batch.bin) from data.dir"),
    ];

    /// Config name.
    pub fn name(self) -> &'static str {
        Self::KINDS[self as usize].0
    }
}

impl NodeKind {
    /// `"fo"` or `"zo"`.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Fo => "fo",
            NodeKind::Zo => "zo",
        }
    }
}

impl ExperimentConfig {
    /// Parse a TOML document, apply `key=value` overrides (dotted paths), and validate.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self, Error> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| Error::Config { key: String::new(), problem: e.to_string() })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let config: ExperimentConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                Error::Config { key: e.path().to_string(), problem: e.into_inner().to_string() }
            })?;
        config.resolve()
    }

    /// Whether a config file sets its own `name` (else the CLI names the run after the file).
    /// A file that is not TOML answers `false`; parsing it reports the error.
    pub fn names_itself(text: &str) -> bool {
        toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("name"))
    }

    /// Fill population-dependent defaults and check every value.
    pub fn resolve(mut self) -> Result<Self, Error> {
        self.fo.estimator.get_or_insert(EstimatorKind::Backprop);
        self.fo.momentum_style.get_or_insert(MomentumStyle::Sgd);
        self.zo.estimator.get_or_insert(EstimatorKind::ForwardDifference);
        self.zo.momentum_style.get_or_insert(MomentumStyle::Ema);
        self.validate()?;
        Ok(self)
    }

    /// What the nodes train: the model's `kind`, or the objective's.
    pub fn model_name(&self) -> &'static str {
        match &self.objective {
            Some(objective) => objective.name(),
            None => self.model.name(),
        }
    }

    /// The group config of a population.
    pub fn group(&self, kind: NodeKind) -> &GroupConfig {
        match kind {
            NodeKind::Fo => &self.fo,
            NodeKind::Zo => &self.zo,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, problem: String| Err(Error::Config { key: key.into(), problem });
        reject_inapplicable(self)?;
        if self.population.fo + self.population.zo == 0 {
            return bad("population", "needs at least one node (fo + zo ≥ 1)".into());
        }
        if self.eval_every == 0 {
            return bad("eval_every", "must be at least 1".into());
        }
        if self.max_loss.is_nan() || self.max_loss <= 0.0 {
            return bad("max_loss", format!("must be positive, got {}", self.max_loss));
        }
        for kind in [NodeKind::Fo, NodeKind::Zo] {
            let g = self.group(kind);
            let k = kind.name();
            if !(g.lr.is_finite() && g.lr > 0.0) {
                return bad(&format!("{k}.lr"), format!("must be a positive number, got {}", g.lr));
            }
            if g.batch_size == 0 {
                return bad(&format!("{k}.batch_size"), "must be at least 1".into());
            }
            if !(0.0..1.0).contains(&g.momentum) {
                return bad(
                    &format!("{k}.momentum"),
                    format!("must be in [0, 1), got {}", g.momentum),
                );
            }
            if g.rv == 0 || g.rv > MAX_DIRECTIONS {
                return bad(
                    &format!("{k}.rv"),
                    format!("is {}; must be in 1..={MAX_DIRECTIONS}", g.rv),
                );
            }
            if g.stack == 0 || g.stack > MAX_DIRECTIONS {
                return bad(
                    &format!("{k}.stack"),
                    format!("is {}; must be in 1..={MAX_DIRECTIONS}", g.stack),
                );
            }
            if !(g.nu.is_finite() && g.nu > 0.0) {
                return bad(&format!("{k}.nu"), format!("must be a positive number, got {}", g.nu));
            }
            if !(g.debias_ratio > 0.0 && g.debias_ratio < 1.0) {
                return bad(
                    &format!("{k}.debias_ratio"),
                    format!("must be in (0, 1), got {}", g.debias_ratio),
                );
            }
            if g.schedule == ScheduleKind::WarmupCosine && g.warmup >= self.steps {
                return bad(
                    &format!("{k}.warmup"),
                    format!("{} must be below steps = {}", g.warmup, self.steps),
                );
            }
            let est = g.estimator.unwrap_or(EstimatorKind::Backprop);
            if kind == NodeKind::Fo && est.is_zeroth_order() {
                return bad(
                    "fo.estimator",
                    format!("{} is a zeroth-order estimator; FO nodes use backprop", est.name()),
                );
            }
            if kind == NodeKind::Zo && !est.is_zeroth_order() {
                return bad(
                    "zo.estimator",
                    format!("{} needs a backward pass; ZO nodes are forward-only", est.name()),
                );
            }
            if est == EstimatorKind::Debiased && g.nu < DEBIASED_MIN_NU {
                return bad(
                    &format!("{k}.nu"),
                    format!(
                        "debiased uses ν as its first radius μ₁ and divides f32 loss differences \
                         by radii down to ν·c^{{n−1}}: it needs ν ≥ {DEBIASED_MIN_NU}, got {} \
                         (try {k}.nu = 1e-2)",
                        g.nu
                    ),
                );
            }
        }
        self.model.validate().map_err(|p| Error::Config { key: p.key, problem: p.problem })?;
        if self.protocol.first_order_workers() && self.population.zo > 0 {
            return bad(
                "population.zo",
                format!(
                    "{} workers compute first-order gradients (HO-SGD: every τ iterations), \
                         which ZO nodes cannot: put all {} workers in population.fo (their ZO \
                         iterations use the [zo] estimator)",
                    self.protocol.name(),
                    self.population.fo + self.population.zo
                ),
            );
        }
        if self.protocol.initial_radius().is_some() {
            let est = self.zo.estimator.unwrap_or(EstimatorKind::ForwardDifference);
            if self.population.zo > 0
                && !matches!(
                    est,
                    EstimatorKind::CentralDifference
                        | EstimatorKind::ForwardDifference
                        | EstimatorKind::Debiased
                )
            {
                return bad(
                    "zo.estimator",
                    format!(
                        "{} sets each node's smoothing radius from its radius proxy, so it \
                             needs a difference estimator (central_difference, as the paper), \
                             not {}",
                        self.protocol.name(),
                        est.name()
                    ),
                );
            }
        }
        self.protocol.validate().map_err(|e| match e {
            hdo_gossip::GossipError::Config { key, problem } => Error::Config { key, problem },
            other => Error::Config { key: "protocol".into(), problem: other.to_string() },
        })?;
        if self.population.fo > MAX_NODES || self.population.zo > MAX_NODES {
            return bad(
                "population",
                format!(
                    "{} FO + {} ZO nodes; each kind must be at most {MAX_NODES}",
                    self.population.fo, self.population.zo
                ),
            );
        }
        let b = &self.data.brackets;
        if self.data.dataset == DatasetKind::Brackets {
            if b.max_len < 2 || !b.max_len.is_multiple_of(2) || b.max_len > MAX_BRACKETS_LEN {
                return bad(
                    "data.brackets.max_len",
                    format!("is {}; must be even and in 2..={MAX_BRACKETS_LEN}", b.max_len),
                );
            }
            if !(0.0..=1.0).contains(&b.hard_fraction) {
                return bad(
                    "data.brackets.hard_fraction",
                    format!("must be in [0, 1], got {}", b.hard_fraction),
                );
            }
            for (key, n) in
                [("data.brackets.train", b.train), ("data.brackets.validation", b.validation)]
            {
                if n == 0 || n > MAX_EXAMPLES {
                    return bad(key, format!("is {n}; must be in 1..={MAX_EXAMPLES}"));
                }
            }
            if self.data.seq_len.is_some_and(|l| !(2..=2 * MAX_BRACKETS_LEN + 2).contains(&l)) {
                return bad(
                    "data.seq_len",
                    format!("must be in 2..={} when set", 2 * MAX_BRACKETS_LEN + 2),
                );
            }
        }
        if self.data.eval_batch == 0 {
            return bad("data.eval_batch", "must be at least 1".into());
        }
        if self.data.eval_limit == Some(0) {
            return bad("data.eval_limit", "must be at least 1 when set".into());
        }
        if self.data.pad_to == PadTo::Batch {
            let ok = matches!(&self.model, ModelConfig::Transformer(t) if t.pooling != hdo_models::Pooling::Flatten);
            if !ok {
                return bad(
                    "data.pad_to",
                    "\"batch\" needs model.kind = \"transformer\" with pooling \"mean\" or \"last\" (flatten depends on the sequence length)".into(),
                );
            }
        }
        if self.data.download && self.data.dir.is_none() {
            return bad("data.download", "needs data.dir (or --data-dir) to download into".into());
        }
        Ok(())
    }

    /// The resolved config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
    }
}

/// Apply one `a.b.c=value` override to a raw TOML table. The value is read as a TOML value
/// (`0.1`, `true`, `"x"`, `[1, 2]`); anything that is not valid TOML is taken as a string.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), Error> {
    let (path, raw) = assignment.split_once('=').ok_or_else(|| Error::Config {
        key: assignment.into(),
        problem: "an override must look like key=value (e.g. fo.lr=0.05)".into(),
    })?;
    let path = path.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(Error::Config { key: path.into(), problem: "empty key in dotted path".into() });
    }
    let mut cursor = table;
    for (i, key) in keys[..keys.len() - 1].iter().enumerate() {
        let entry =
            cursor.entry(key.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = entry.as_table_mut().ok_or_else(|| Error::Config {
            key: keys[..=i].join("."),
            problem: "is a value, not a section".into(),
        })?;
    }
    cursor.insert(keys[keys.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_fail_with_their_path() {
        for (text, sets, want) in [
            ("[fo]\nlrr = 0.1", vec![], "fo"),
            ("", vec!["zo.nuu=1".to_string()], "nuu"),
            ("colour = 1", vec![], "colour"),
            ("[protocol]\nkind = \"matching\"\nextra = 2", vec![], "extra"),
            ("[model]\nkind = \"cnn\"\nchanels = [1,2,3]", vec![], "chanels"),
        ] {
            let e = ExperimentConfig::from_toml(text, &sets).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should name {want}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        for (set, key) in [
            ("fo.lr=-1", "fo.lr"),
            ("zo.nu=0", "zo.nu"),
            ("fo.momentum=1.0", "fo.momentum"),
            ("zo.batch_size=0", "zo.batch_size"),
            ("zo.stack=0", "zo.stack"),
            ("zo.stack=-2", "zo.stack"),
            ("zo.batch_nodes=2", "zo.batch_nodes"),
            ("fo.estimator=\"forward_difference\"", "fo.estimator"),
            ("zo.estimator=\"backprop\"", "zo.estimator"),
            ("zo.estimator=\"debiased\"", "zo.nu"),
            ("zo.schedule=\"linear\"", "zo.schedule"),
            ("fo.lr=\"fast\"", "fo.lr"),
            ("device=\"tpu\"", "device"),
        ] {
            let e = ExperimentConfig::from_toml("", &[set.to_string()]).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
    }

    /// The values a new user tried that panicked or were silently accepted: each is an error
    /// naming its key (and its range where it has one).
    #[test]
    fn out_of_range_and_inapplicable_values_name_their_key() {
        let brackets = "data.dataset=\"brackets\"";
        let transformer = "model.kind=\"transformer\"";
        for (sets, key, says) in [
            (vec!["model.kind=\"cnn\"", "model.channels=[0,0,0]"], "model.channels", "1..="),
            (vec!["model.kind=\"mlp\"", "model.hidden=[0]"], "model.hidden", "entry 0"),
            (vec!["model.kind=\"cnn\"", "model.hidden=[16, 0]"], "model.hidden", "entry 1"),
            (vec![transformer, brackets, "model.width=0"], "model.width", "1..="),
            (vec![transformer, brackets, "model.heads=0"], "model.heads", "1..="),
            (vec![transformer, brackets, "model.depth=0"], "model.depth", "1..="),
            (vec![transformer, brackets, "model.heads=3"], "model.heads", "divide"),
            (vec![transformer, brackets, "model.dropout=1.5"], "model.dropout", "[0, 1)"),
            (vec![transformer, brackets, "model.dropout=-0.1"], "model.dropout", "[0, 1)"),
            (vec!["zo.rv=4294967296"], "zo.rv", "4294967295"),
            (vec!["zo.stack=4294967296"], "zo.stack", "4294967295"),
            (
                vec!["protocol.kind=\"random_pair\"", "protocol.interactions_per_round=0"],
                "protocol.interactions_per_round",
                "at least 1",
            ),
            (vec!["fo.stack=2"], "fo.stack", "zeroth-order"),
            (vec!["fo.direction=\"sphere\""], "fo.direction", "zeroth-order"),
            (vec!["fo.rv=16"], "fo.rv", "zeroth-order"),
            (vec!["data.seq_len=20"], "data.seq_len", "brackets"),
            (vec![brackets, "data.dir=\"/tmp\""], "data.dir", "mnist"),
            (vec![brackets, "data.brackets.max_len=3"], "data.brackets.max_len", "even"),
            (
                vec![brackets, "data.brackets.hard_fraction=2"],
                "data.brackets.hard_fraction",
                "[0, 1]",
            ),
            (vec!["population.zo=2000000"], "population", "at most"),
            (vec!["on_divergence=\"retry\""], "on_divergence", "retry"),
            (vec!["metrics.per_nodes=true"], "per_nodes", "unknown"),
        ] {
            let sets: Vec<String> = sets.into_iter().map(String::from).collect();
            let e = ExperimentConfig::from_toml("", &sets).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{sets:?}: {e}");
        }
        // the defaults of inapplicable keys are fine: a resolved config.toml spells them all
        for kind in ["mnist", "brackets"] {
            let mut sets =
                vec![format!("data.dataset=\"{kind}\""), "on_divergence=\"drop\"".into()];
            if kind == "brackets" {
                sets.push(transformer.into());
            }
            let c = ExperimentConfig::from_toml("", &sets).unwrap();
            assert_eq!(ExperimentConfig::from_toml(&c.to_toml(), &[]).unwrap(), c);
        }
    }

    #[test]
    fn a_file_names_itself_only_with_a_top_level_name_key() {
        assert!(ExperimentConfig::names_itself("name = \"mine\"\nsteps = 3\n"));
        for text in [
            "steps = 3\n",
            "# name = \"commented out\"\n",
            "[[variant]]\nlabel = \"\"\"\nname in a multi-line string\n\"\"\"\n",
            "namespace = 3\n",
            "not toml at all = = =",
        ] {
            assert!(!ExperimentConfig::names_itself(text), "{text}");
        }
    }

    #[test]
    fn every_estimator_option_parses_from_toml() {
        let text = "[population]\nzo = 1\n[zo]\nestimator = \"central_difference\"\n\
                    direction = \"sphere\"\nprojection = \"per_tensor\"\nsign = true\n";
        let c = ExperimentConfig::from_toml(text, &[]).unwrap();
        assert_eq!(c.zo.estimator, Some(EstimatorKind::CentralDifference));
        assert_eq!(c.zo.direction, Direction::Sphere);
        assert_eq!(c.zo.projection, Projection::PerTensor);
        assert!(c.zo.sign);
        for kind in EstimatorKind::ALL.into_iter().filter(|k| k.is_zeroth_order()) {
            let set = vec![format!("zo.estimator=\"{}\"", kind.name()), "zo.nu=1e-2".into()];
            let c = ExperimentConfig::from_toml("[population]\nzo = 1\n", &set).unwrap();
            assert_eq!(c.zo.estimator, Some(kind));
        }
        let e = ExperimentConfig::from_toml("", &["zo.direction=\"ball\"".into()]).unwrap_err();
        assert!(e.to_string().contains("zo.direction"), "{e}");
    }

    #[test]
    fn overrides_reach_any_key_and_defaults_resolve() {
        let c = ExperimentConfig::from_toml(
            "[population]\nfo = 2\n",
            &[
                "population.zo=3".into(),
                "zo.rv=64".into(),
                "data.dir=/tmp/mnist".into(),
                "protocol.kind=\"all_reduce\"".into(),
            ],
        )
        .unwrap();
        assert_eq!((c.population.fo, c.population.zo, c.zo.rv), (2, 3, 64));
        assert_eq!(c.data.dir, Some(PathBuf::from("/tmp/mnist")));
        assert_eq!(c.protocol, ProtocolConfig::AllReduce(Default::default()));
        assert_eq!(c.fo.estimator, Some(EstimatorKind::Backprop));
        assert_eq!(c.zo.momentum_style, Some(MomentumStyle::Ema));
        // the resolved config round-trips through TOML
        assert_eq!(ExperimentConfig::from_toml(&c.to_toml(), &[]).unwrap(), c);
        assert!(apply_override(&mut toml::Table::new(), "nonsense").is_err());
    }
}
