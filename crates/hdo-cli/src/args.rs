//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// hdo — hybrid decentralized optimization: populations of first-order (backprop) and
/// zeroth-order (forward-only) nodes training one model by gossip averaging.
#[derive(Debug, Parser)]
#[command(
    name = "hdo",
    version,
    after_help = "Examples:
  hdo run experiments/quickstart.toml
  hdo run experiments/fig2_logistic.toml --data-dir data/mnist          # all five populations
  hdo run experiments/fig2_logistic.toml --set 'variant=[]' --set population.fo=24 --set population.zo=0
  hdo run experiments/fig1_cnn.toml --steps 200 --out runs/cnn-short --seed 3
  hdo run experiments/quickstart.toml --set protocol.kind=all_reduce --set zo.rv=32
  hdo run experiments/fig2_logistic.toml --data-dir ~/mnist --download
  hdo run experiments/fig1_cnn.toml --device wgpu --set zo.stack=16     # GPU: 16 perturbed copies per pass
  hdo run experiments/fig1_cnn_estimators.toml --data-dir data/mnist --resume  # continue interrupted runs
  hdo bench --out bench.json              # step costs, peak memory, population scaling
  hdo bench --only average --device wgpu  # one part: steps, average, noise or scaling
  hdo compare --out runs/cmp 'FO=runs/fo/s0,runs/fo/s1' 'ZO rv 8=runs/zo8/s0,runs/zo8/s1'
  hdo run experiments/fig2_logistic.toml --dry-run   # config, population, traffic, passes; no training
  hdo run experiments/fig1_cnn.toml --jobs 2 --force # a sweep in 2 processes, replacing old outputs
  hdo eval runs/fig1_cnn_estimators/1_fo/seed0        # a finished run's nodes from its checkpoint.bin
  hdo list                                           # models, estimators, protocols, data sets

Outputs (in --out, default runs/<name>): config.toml (resolved), metrics.jsonl, metrics.csv, metrics.png,\ncheckpoint.bin (with checkpoint_every), nodes.csv (with metrics.per_node), trajectories.png (2-D objectives); sweeps and hdo compare: summary.csv, comparison.png.\nReference: docs/configuration.md, docs/outputs.md."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a population described by an experiment TOML file.
    Run(RunArgs),
    /// Measure step costs, peak memory, the direction floor and population scaling.
    Bench(BenchArgs),
    /// Put finished runs side by side: a table of their last evaluation, summary.csv and
    /// comparison.png (each label's mean over its runs).
    Compare(CompareArgs),
    /// Evaluate a finished run's mean model and nodes from its checkpoint.bin on a validation set.
    Eval(EvalArgs),
    /// What hdo knows: models, estimators, protocols and data sets, one line each.
    List,
}

/// `hdo eval`.
#[derive(Debug, Parser)]
pub struct EvalArgs {
    /// A run's output directory (with config.toml and checkpoint.bin: runs with
    /// `checkpoint_every` > 0 keep one).
    pub run: PathBuf,
    /// Directory with the full data set's files (default: the run's own `data.dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `hdo compare`.
#[derive(Debug, Parser)]
pub struct CompareArgs {
    /// Runs, each `LABEL=DIR[,DIR...]`: the output directories of `hdo run`; the runs of one
    /// label (e.g. its seeds) are averaged.
    #[arg(required = true, value_name = "LABEL=DIRS")]
    pub runs: Vec<String>,
    /// Directory for summary.csv and comparison.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Title of the plot.
    #[arg(long, default_value = "comparison")]
    pub title: String,
    /// Horizontal axis: round, parallel_time, mib (MiB sent by gossip) or log10_mib.
    #[arg(long, default_value = "round")]
    pub x: String,
    /// Left panel: val_loss, train_loss, mean_model_loss, avg_iterate_loss, log10_consensus, …
    #[arg(long, default_value = "val_loss")]
    pub left: String,
    /// Right panel: val_acc, log10_consensus, avg_iterate_acc, …
    #[arg(long, default_value = "val_acc")]
    pub right: String,
}

/// `hdo bench`.
#[derive(Debug, Parser)]
pub struct BenchArgs {
    /// Device to measure.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Repetitions per step measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Rounds per population size (the first is discarded as warm-up).
    #[arg(long, default_value_t = 4)]
    pub rounds: u64,
    /// Fewer population sizes (for a quick look).
    #[arg(long)]
    pub quick: bool,
    /// Run only these parts (repeat the flag for several); all when absent.
    #[arg(long, value_enum)]
    pub only: Vec<BenchPart>,
    /// Step benchmarks of these models only (repeatable): logistic, mlp, cnn, transformer, resnet18.
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Config override for the scaling populations (repeatable), e.g. `--set zo.stack=128 --set
    /// zo.batch_nodes=true` to time the batched execution of the whole population.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The parts of `hdo bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPart {
    /// Per-step costs and peak memory of every model (inference, FO, ZO one-at-a-time and
    /// stacked, central difference, de-biased, forward gradient, pair average).
    Steps,
    /// Pair averaging of two ResNet-18-sized parameter sets against the copy bandwidth.
    Average,
    /// Gaussian direction generation speed.
    Noise,
    /// Rounds per second of logistic populations from 1 to 1024 nodes.
    Scaling,
}

/// `hdo run`.
#[derive(Debug, Parser)]
pub struct RunArgs {
    /// Experiment file (see experiments/ and docs/configuration.md for every key).
    pub config: PathBuf,
    /// Override a config key by its dotted path, e.g. `--set zo.lr=0.05` (repeatable; values are
    /// TOML: numbers, true/false, "strings").
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output directory (default runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run seed (overrides `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Rounds to run (overrides `steps`).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Directory with the full MNIST IDX files (gzip or raw); default: the 10k split bundled in
    /// the binary.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Download missing data files into --data-dir first (checksums verified).
    #[arg(long, requires = "data_dir")]
    pub download: bool,
    /// Compute device (overrides `device`).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Continue each run from its `checkpoint.bin` in the output directory (written every
    /// `checkpoint_every` rounds) with the same config and overrides; runs without one start at
    /// round 0, runs whose checkpoint is at the last round are not trained again.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the resolved config, the population (nodes, parameters, bytes per gossip round)
    /// and the estimated cost per round of every run, then exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Write into a non-empty --out anyway: the previous run's outputs there (metrics, plots,
    /// config.toml, checkpoint.bin) are removed first.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Run a sweep's runs in this many processes at once, the CPU threads split between them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Internal (--jobs): run only the sweep's run with this index; the parent process has
    /// checked and prepared the output directories.
    #[arg(long, hide = true)]
    pub only_run: Option<usize>,
}

/// `--device`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    /// burn-flex on the CPU.
    Cpu,
    /// Burn's wgpu backend (a GPU through Vulkan/Metal/DX12).
    Wgpu,
}

impl DeviceArg {
    /// Config value.
    pub fn name(self) -> &'static str {
        match self {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Wgpu => "wgpu",
        }
    }
}
