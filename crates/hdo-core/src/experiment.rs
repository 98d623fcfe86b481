//! An experiment: build the population from a config, run the rounds, evaluate, write outputs.

use crate::checkpoint::{self, Checkpoint, NodeState, RunState, Totals};
use crate::config::{ExperimentConfig, NodeKind};
use crate::data::{Dataset, ValidationSet};
use crate::error::Error;
use crate::evaluate::{Evaluation, evaluate};
use crate::metrics::{Record, write_atomic, write_outputs};
use crate::node::Node;
use crate::noise::mix;
use crate::optimizer::Optimizer;
use crate::params::Layout;
use crate::population::Population;
use crate::schedule::LrSchedule;
use crate::{device, init};
use burn::module::Module;
use hdo_datasets::{ShardSampler, hdo_split};
use hdo_gossip::Protocol;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress reported while running.
#[derive(Debug)]
pub enum Event<'a> {
    /// A round finished.
    Round {
        /// Rounds completed.
        round: u64,
        /// Rounds in the run.
        total: u64,
        /// Mean minibatch loss of this round's steps.
        train_loss: f64,
    },
    /// An evaluation finished and its record was written.
    Evaluated(&'a Record),
}

/// A ready-to-run experiment.
pub struct Experiment {
    /// The resolved configuration.
    pub config: ExperimentConfig,
    /// The nodes.
    pub population: Population,
    /// Training and validation data.
    pub data: Dataset,
    validation: ValidationSet,
    protocol: Box<dyn Protocol>,
    /// Where [`Experiment::run`] starts: round 0, or after [`Experiment::resume`] the
    /// checkpoint's directory and state.
    start: Option<(PathBuf, RunState)>,
}

impl Experiment {
    /// Load data, pick the device, build and initialise every node.
    pub fn new(config: ExperimentConfig) -> Result<Experiment, Error> {
        let config = config.resolve()?;
        let data = Dataset::load(&config.data)?;
        let plain = device::select(config.device)?;
        let autodiff = plain.clone().autodiff();
        let base = config
            .model
            .init(data.shape(), &plain)
            .map_err(|problem| Error::Config { key: "model.kind".into(), problem })?;
        let layout = Layout::of(&base);
        let base = init::initialize(base, &layout, config.seed);
        let (n_fo, n_zo) = (config.population.fo, config.population.zo);
        for (key, n) in [("population.fo", n_fo), ("population.zo", n_zo)] {
            if n > data.train.len() {
                return Err(Error::Config {
                    key: key.into(),
                    problem: format!(
                        "{n} nodes but only {} training examples to share among them",
                        data.train.len()
                    ),
                });
            }
        }
        let (fo_shards, zo_shards) = hdo_split(data.train.len(), n_fo, n_zo, config.seed);
        let shards = fo_shards
            .into_iter()
            .map(|s| (NodeKind::Fo, s))
            .chain(zo_shards.into_iter().map(|s| (NodeKind::Zo, s)));
        let nodes = shards
            .enumerate()
            .map(|(id, (kind, shard))| {
                let g = config.group(kind);
                let schedule = LrSchedule {
                    lr: g.lr,
                    kind: g.schedule,
                    warmup: g.warmup,
                    total: config.steps,
                };
                let style = g.momentum_style.unwrap_or(crate::config::MomentumStyle::Sgd);
                let needs_ad = g.estimator.is_some_and(|e| e.needs_autodiff());
                // FO replicas: `train()` lifts the parameters onto the autodiff device as tracked
                // leaves (`fork` would keep them plain).
                let (model, device) = if needs_ad {
                    (base.clone().train(), autodiff.clone())
                } else {
                    (base.clone(), plain.clone())
                };
                Node {
                    id,
                    kind,
                    model,
                    sampler: ShardSampler::new(shard, mix(config.seed ^ mix(id as u64 + 1))),
                    optimizer: Optimizer::new(schedule, g.momentum, style, g.sign),
                    batch_size: g.batch_size,
                    stack: g.stack,
                    batched: g.batch_nodes && !needs_ad,
                    steps: 0,
                    device,
                }
            })
            .collect();
        let estimators = [NodeKind::Fo, NodeKind::Zo].map(|k| {
            let g = config.group(k);
            g.estimator.unwrap_or(crate::estimator::EstimatorKind::Backprop).build(g)
        });
        let validation = ValidationSet::new(
            &data.validation,
            config.data.eval_limit,
            config.data.eval_batch,
            &plain,
        );
        let protocol = config.protocol.build();
        Ok(Experiment {
            population: Population { nodes, layout, estimators },
            data,
            validation,
            protocol,
            config,
            start: None,
        })
    }

    /// Continue from `dir`'s checkpoint (`checkpoint.bin`, see [`checkpoint`]) if it has one:
    /// returns the round it reached, or `None` (the run will start at round 0). The checkpoint
    /// must come from the same config, up to where the data directory lives; another one is
    /// refused with the first line that differs. The run must then write to `dir`. On an error
    /// nothing has changed.
    pub fn resume(&mut self, dir: &Path) -> Result<Option<u64>, Error> {
        let path = dir.join(checkpoint::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let saved = Checkpoint::read(&path)?;
        let bad = |problem: String| Error::Checkpoint { path: path.clone(), problem };
        let theirs = ExperimentConfig::from_toml(&saved.config, &[]).map_err(|e| {
            bad(format!("its configuration cannot be read by this version of hdo: {e}"))
        })?;
        if let Some((here, there)) =
            checkpoint::first_difference(&comparable(&self.config), &comparable(&theirs))
        {
            return Err(bad(format!(
                "it belongs to a different configuration (`{here}` now, `{there}` in the \
                 checkpoint); resume with the same config and overrides, or write to another --out"
            )));
        }
        let last = saved.run.records.last().map(|r| r.round);
        if saved.nodes.len() != self.population.len()
            || saved.run.round > self.config.steps
            || last.is_none_or(|l| l > saved.run.round)
        {
            return Err(bad(format!(
                "{} nodes at round {}, but this run has {} nodes and {} rounds",
                saved.nodes.len(),
                saved.run.round,
                self.population.len(),
                self.config.steps
            )));
        }
        let layout = &self.population.layout;
        for (node, state) in self.population.nodes.iter().zip(&saved.nodes) {
            state.check(node, layout).map_err(bad)?;
        }
        for (node, state) in self.population.nodes.iter_mut().zip(saved.nodes) {
            state.restore(node).map_err(bad)?;
        }
        let round = saved.run.round;
        self.start = Some((dir.to_path_buf(), saved.run));
        Ok(Some(round))
    }

    /// Run every round, evaluating every `eval_every` rounds (and at round 0 and the end), and
    /// (re)write `config.toml`, `metrics.jsonl`, `metrics.csv` and `metrics.png` in `out`; with
    /// `checkpoint_every`, also `checkpoint.bin`. After [`Experiment::resume`] it continues from
    /// the checkpoint's round; a fresh run refuses to start over a checkpoint already in `out`.
    /// On divergence the records so far are kept on disk and the error names the node.
    pub fn run(
        &mut self,
        out: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<Record>, Error> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let checkpoint_path = out.join(checkpoint::FILE);
        let resumed = match self.start.take() {
            Some((dir, _)) if dir != out => {
                return Err(Error::Checkpoint {
                    path: dir.join(checkpoint::FILE),
                    problem: format!(
                        "resumed from here, so it must go on there, not in {}",
                        out.display()
                    ),
                });
            }
            Some((_, state)) => Some(state),
            None if checkpoint_path.exists() => {
                return Err(Error::Checkpoint {
                    path: checkpoint_path,
                    problem: "a run's checkpoint is already there: continue it with --resume, \
                              or write to another output directory"
                        .into(),
                });
            }
            None => None,
        };
        write_atomic(&out.join("config.toml"), self.config.to_toml().as_bytes())?;
        let cfg = self.config.clone();
        let n = self.population.len();
        let message_bytes = self.population.layout.total_numel() * 4;
        let gossip_seed = mix(cfg.seed ^ 0x6055_1900);
        let title = format!(
            "{} — {} FO + {} ZO, {}",
            cfg.name,
            cfg.population.fo,
            cfg.population.zo,
            self.protocol.name()
        );
        let start = Instant::now();
        let RunState { round: first, mut totals, loss, elapsed_s, mut records } =
            resumed.unwrap_or_default();
        let elapsed = || elapsed_s + start.elapsed().as_secs_f64();
        if records.is_empty() {
            records.push(self.record(0, &totals, None, &elapsed));
        }
        write_outputs(out, &title, &records)?;
        if let Some(last) = records.last() {
            on_event(Event::Evaluated(last));
        }
        let (mut loss_sum, mut loss_count) = loss;
        for round in first..cfg.steps {
            let round_start = Instant::now();
            let schedule = self.protocol.plan(round, n, gossip_seed);
            let (mut round_sum, mut round_count) = (0.0f64, 0u64);
            for phase in &schedule.phases {
                let diagnose =
                    cfg.diagnostics.every > 0 && (round + 1) % cfg.diagnostics.every == 0;
                let reports =
                    self.population.step(&phase.steps, &self.data.train, cfg.seed, diagnose)?;
                for (id, r) in reports {
                    if !r.loss.is_finite() || r.loss as f64 > cfg.max_loss {
                        records.push(self.record(
                            round,
                            &totals,
                            mean_loss(loss_sum, loss_count),
                            &elapsed,
                        ));
                        write_outputs(out, &title, &records)?;
                        return Err(Error::Diverged {
                            node: id,
                            kind: self.population.nodes[id].kind.name(),
                            round,
                            loss: r.loss,
                            limit: cfg.max_loss,
                        });
                    }
                    round_sum += r.loss as f64;
                    round_count += 1;
                    if let Some((cos, ratio)) = r.diagnostic {
                        totals.diag =
                            (totals.diag.0 + cos, totals.diag.1 + ratio, totals.diag.2 + 1);
                    }
                    totals.forward += r.forward_passes;
                    totals.backward += r.backward_passes;
                }
                if round >= cfg.local_rounds {
                    self.population.average(&phase.groups);
                    totals.bytes += (phase.vectors_sent() * message_bytes as f64) as u64;
                }
            }
            totals.interactions += schedule.interactions;
            totals.train_s += round_start.elapsed().as_secs_f64();
            loss_sum += round_sum;
            loss_count += round_count;
            let done = round + 1;
            on_event(Event::Round {
                round: done,
                total: cfg.steps,
                train_loss: round_sum / round_count.max(1) as f64,
            });
            let evaluate = done % cfg.eval_every == 0 || done == cfg.steps;
            if evaluate {
                let r = self.record(done, &totals, mean_loss(loss_sum, loss_count), &elapsed);
                records.push(r);
                (loss_sum, loss_count) = (0.0, 0);
                totals.diag = (0.0, 0.0, 0);
                write_outputs(out, &title, &records)?;
            }
            let every = cfg.checkpoint_every;
            if every > 0 && (done % every == 0 || done == cfg.steps) {
                let state = RunState {
                    round: done,
                    totals: totals.clone(),
                    loss: (loss_sum, loss_count),
                    elapsed_s: elapsed(),
                    records: records.clone(),
                };
                self.checkpoint(state, &checkpoint_path)?.write(&checkpoint_path)?;
            }
            if evaluate && let Some(last) = records.last() {
                on_event(Event::Evaluated(last));
            }
        }
        Ok(records)
    }

    /// The run's whole state, given where the run stands (`path`: where it goes, for errors).
    fn checkpoint(&self, run: RunState, path: &Path) -> Result<Checkpoint, Error> {
        let layout = &self.population.layout;
        let nodes = self
            .population
            .nodes
            .par_iter()
            .map(|n| NodeState::capture(n, layout))
            .collect::<Result<_, _>>()
            .map_err(|problem| Error::Checkpoint { path: path.to_path_buf(), problem })?;
        Ok(Checkpoint { config: self.config.to_toml(), run, nodes })
    }

    /// Evaluate every node and the mean model.
    fn record(
        &self,
        round: u64,
        totals: &Totals,
        train_loss: Option<f64>,
        elapsed_s: &dyn Fn() -> f64,
    ) -> Record {
        let pop = &self.population;
        let evals: Vec<(NodeKind, Evaluation)> = pop
            .nodes
            .par_iter()
            .map(|node| (node.kind, evaluate(&node.model, &self.validation)))
            .collect();
        let mean = |kind: Option<NodeKind>, f: fn(&Evaluation) -> f64| -> Option<f64> {
            let v: Vec<f64> = evals
                .iter()
                .filter(|(k, _)| kind.is_none_or(|x| x == *k))
                .map(|(_, e)| f(e))
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let loss = |e: &Evaluation| e.loss;
        let acc = |e: &Evaluation| e.accuracy;
        let mean_loss = mean(None, loss).unwrap_or(f64::NAN);
        let std = (evals.iter().map(|(_, e)| (e.loss - mean_loss).powi(2)).sum::<f64>()
            / evals.len().max(1) as f64)
            .sqrt();
        let mean_model = evaluate(&pop.mean_model(), &self.validation);
        Record {
            round,
            parallel_time: totals.interactions / pop.len() as f64,
            mean_val_loss: mean_loss,
            mean_val_acc: mean(None, acc).unwrap_or(f64::NAN),
            mean_val_acc_hard: {
                let v: Vec<f64> = evals.iter().filter_map(|(_, e)| e.hard_accuracy).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            },
            std_val_loss: std,
            mean_model_val_loss: mean_model.loss,
            mean_model_val_acc: mean_model.accuracy,
            consensus: pop.consensus(),
            fo_val_loss: mean(Some(NodeKind::Fo), loss),
            fo_val_acc: mean(Some(NodeKind::Fo), acc),
            zo_val_loss: mean(Some(NodeKind::Zo), loss),
            zo_val_acc: mean(Some(NodeKind::Zo), acc),
            mean_train_loss: train_loss,
            forward_passes: totals.forward,
            backward_passes: totals.backward,
            bytes_sent: totals.bytes,
            // read last, so that it counts this evaluation
            elapsed_s: elapsed_s(),
            train_s: totals.train_s,
            zo_grad_cosine: (totals.diag.2 > 0).then(|| totals.diag.0 / totals.diag.2 as f64),
            zo_grad_norm_ratio: (totals.diag.2 > 0).then(|| totals.diag.1 / totals.diag.2 as f64),
        }
    }
}

/// A config as TOML for comparing a checkpoint's with a run's: where the data directory lives
/// (and whether it was downloaded into) does not change the run, only whether there is one.
fn comparable(config: &ExperimentConfig) -> String {
    let mut c = config.clone();
    c.data.dir = c.data.dir.map(|_| PathBuf::from("(a directory)"));
    c.data.download = false;
    c.to_toml()
}

/// Mean of `count` losses summing to `sum`, if any.
fn mean_loss(sum: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}
