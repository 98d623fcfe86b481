//! An experiment: build the population from a config, run the rounds, evaluate, write outputs.

use crate::checkpoint::{
    self, Checkpoint, EstimateState, NodeState, QueuedState, RunState, Totals,
};
use crate::config::{DivergencePolicy, ExperimentConfig, NodeKind};
use crate::data::{Dataset, ValidationSet};
use crate::error::Error;
use crate::estimator::Gradient;
use crate::evaluate::{Evaluation, evaluate};
use crate::metrics::{NodeEval, Record, write_atomic, write_outputs};
use crate::node::Node;
use crate::noise::mix;
use crate::optimizer::Optimizer;
use crate::params::{self, Layout};
use crate::population::Population;
use crate::schedule::LrSchedule;
use crate::{apply, device, init};
use burn::module::Module;
use hdo_datasets::{ShardSampler, hdo_split};
use hdo_gossip::{Context, Kind, Op, Oracle, Protocol, Round, Rule, Smoothing};
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
    /// A node diverged and the run goes on without it (`on_divergence = "drop"`) or with it
    /// restarted from its peers' mean (`"reset"`).
    Diverged {
        /// The node.
        node: usize,
        /// `fo` or `zo`.
        kind: &'static str,
        /// The round it diverged in (rounds completed before it).
        round: u64,
        /// Its training loss (NaN when its parameters became non-finite).
        loss: f32,
        /// What was done: `"dropped"` or `"reset"`.
        action: &'static str,
    },
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
    /// Which nodes are still in the population (all, unless `on_divergence = "drop"` removed some).
    active: Vec<bool>,
    /// Fault injection: `(node, round)` whose parameters become NaN before that round's steps.
    fault: Option<(usize, u64)>,
    /// Each node's kind, as protocols see it.
    kinds: Vec<Kind>,
    /// Each node's most recent training losses, oldest first (the protocol's window).
    losses: Vec<Vec<f32>>,
}

impl Experiment {
    /// Load data, pick the device, build and initialise every node.
    pub fn new(config: ExperimentConfig) -> Result<Experiment, Error> {
        let config = config.resolve()?;
        let (n_fo, n_zo) = (config.population.fo, config.population.zo);
        let data = match &config.objective {
            Some(_) => Dataset::placeholder(n_fo + n_zo),
            None => Dataset::load(&config.data)?,
        };
        let plain = device::select(config.device)?;
        let autodiff = plain.clone().autodiff();
        let base = match &config.objective {
            Some(objective) => objective
                .init(config.seed, &plain)
                .map(hdo_models::Model::Objective)
                .map_err(|problem| Error::Config { key: "objective".into(), problem })?,
            None => config
                .model
                .init(data.shape(), &plain)
                .map_err(|problem| Error::Config { key: "model.kind".into(), problem })?,
        };
        let layout = Layout::of(&base);
        let base = init::initialize(base, &layout, config.seed);
        // an objective's nodes start at points of their own; the initial model (the origin of
        // auxiliary vectors: EASGD's centre, a server) is their mean
        let starts = objective_starts(&config, n_fo + n_zo, &plain)?;
        let base = match &starts {
            Some(points) => params::load(base, &[mean_point(points)]),
            None => base,
        };
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
                let phases = phases(&config, kind);
                // a ZOFO node's first optimizer is the [zo] section's
                let first = if phases.as_ref().is_some_and(|p| p.zeroth_first) {
                    NodeKind::Zo
                } else {
                    kind
                };
                let needs_ad = g.estimator.is_some_and(|e| e.needs_autodiff());
                let own = match &starts {
                    Some(points) => params::load(base.clone(), &points[id..=id]),
                    None => base.clone(),
                };
                // FO replicas: `train()` lifts the parameters onto the autodiff device as tracked
                // leaves (`fork` would keep them plain).
                let (model, device) =
                    if needs_ad { (own.train(), autodiff.clone()) } else { (own, plain.clone()) };
                Node {
                    id,
                    kind,
                    model,
                    sampler: ShardSampler::new(shard, mix(config.seed ^ mix(id as u64 + 1))),
                    optimizer: optimizer(&config, first),
                    batch_size: g.batch_size,
                    stack: g.stack,
                    batched: g.batch_nodes && !needs_ad,
                    steps: 0,
                    device,
                    dog: Default::default(),
                    phases,
                }
            })
            .collect::<Vec<Node>>();
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
        let n = n_fo + n_zo;
        let protocol = config.protocol.build(n, gossip_seed(config.seed)).map_err(gossip_error)?;
        let origin = params::collect(&base);
        let mut nodes = nodes;
        if let Some(r_epsilon) = config.protocol.initial_radius() {
            // DoG's start r_ε = α(1 + ‖x_0‖)
            let mut sq = 0f64;
            for (info, t) in layout.tensors.iter().zip(&origin) {
                if info.trainable.is_some() {
                    sq += params::download(t.clone().powi_scalar(2).sum())?[0] as f64;
                }
            }
            for node in &mut nodes {
                node.dog.radius = r_epsilon * (1.0 + sq.sqrt());
            }
        }
        let kinds = nodes
            .iter()
            .map(|node| match node.kind {
                NodeKind::Fo => Kind::First,
                NodeKind::Zo => Kind::Zeroth,
            })
            .collect();
        let aux = vec![origin.clone(); protocol.aux_vectors()];
        let groups = [config.fo.clone(), config.zo.clone()];
        Ok(Experiment {
            active: vec![true; n],
            fault: None,
            kinds,
            losses: vec![Vec::new(); n],
            population: Population {
                nodes,
                layout,
                estimators,
                groups,
                pending: vec![None; n],
                aux,
                origin,
                queue: Vec::new(),
            },
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
        self.restore(dir, true)
    }

    /// Load the nodes of `dir`'s checkpoint to evaluate them (`hdo eval`): as
    /// [`Experiment::resume`], but the data may differ from the run's (another validation set);
    /// the population and model must still match. Returns the checkpoint's round.
    pub fn restore_for_evaluation(&mut self, dir: &Path) -> Result<Option<u64>, Error> {
        let round = self.restore(dir, false)?;
        self.start = None;
        Ok(round)
    }

    fn restore(&mut self, dir: &Path, same_data: bool) -> Result<Option<u64>, Error> {
        let path = dir.join(checkpoint::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let saved = Checkpoint::read(&path)?;
        let bad = |problem: String| Error::Checkpoint { path: path.clone(), problem };
        let mut theirs = ExperimentConfig::from_toml(&saved.config, &[]).map_err(|e| {
            bad(format!("its configuration cannot be read by this version of hdo: {e}"))
        })?;
        let mut ours = self.config.clone();
        if !same_data {
            (ours.data, theirs.data) = (Default::default(), Default::default());
        }
        if let Some((here, there)) =
            checkpoint::first_difference(&comparable(&ours), &comparable(&theirs))
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
        if let Some(&bad_id) = saved.run.dropped.iter().find(|&&i| i >= self.population.len()) {
            return Err(bad(format!(
                "it drops node {bad_id}, which this population does not have"
            )));
        }
        let layout = &self.population.layout;
        for (node, state) in self.population.nodes.iter().zip(&saved.nodes) {
            state.check(node, layout).map_err(bad)?;
        }
        if saved.aux.len() != self.population.aux.len()
            || saved.aux.iter().any(|a| {
                a.len() != layout.tensors.len()
                    || a.iter().zip(&layout.tensors).any(|(v, t)| v.len() != t.numel)
            })
        {
            return Err(bad("its protocol's auxiliary vectors do not fit this run".into()));
        }
        let queue = self.restore_queue(&saved.queue).map_err(bad)?;
        for (node, state) in self.population.nodes.iter_mut().zip(saved.nodes) {
            state.restore(node).map_err(bad)?;
        }
        self.population.queue = queue;
        let device = self.population.plain_device();
        self.population.aux = saved
            .aux
            .into_iter()
            .map(|a| a.into_iter().map(|v| params::upload(v, &device)).collect())
            .collect();
        if saved.run.losses.len() == self.losses.len() {
            self.losses = saved.run.losses.clone();
        }
        self.active = (0..self.population.len()).map(|i| !saved.run.dropped.contains(&i)).collect();
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
        if let Some(graph) = self.graph() {
            let text = toml::to_string(&graph)
                .map_err(|e| Error::Run { path: out.join("graph.toml"), problem: e.to_string() })?;
            write_atomic(&out.join("graph.toml"), text.as_bytes())?;
        }
        let cfg = self.config.clone();
        let n = self.population.len();
        let title = format!(
            "{} — {} FO + {} ZO, {}",
            cfg.name,
            cfg.population.fo,
            cfg.population.zo,
            self.protocol.name()
        );
        let start = Instant::now();
        let RunState {
            round: first, mut totals, loss, elapsed_s, mut records, mut dropped, ..
        } = resumed.unwrap_or_default();
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
            if let Some((node, at)) = self.fault
                && at == round
            {
                let model = self.population.nodes[node].model.clone();
                self.population.nodes[node].model = params::map(model, |_, t| t * f32::NAN);
            }
            let plan = self.plan(round)?;
            let (mut round_sum, mut round_count) = (0.0f64, 0u64);
            let diagnose = cfg.diagnostics.every > 0 && (round + 1) % cfg.diagnostics.every == 0;
            for op in &plan.ops {
                if op.communicates() && round < cfg.local_rounds {
                    continue;
                }
                let op = apply::restrict(op, &self.active);
                // (step reports, nodes whose parameters a local update changed)
                let (reports, updated) = match &op {
                    Op::Step { nodes, oracle: Oracle::Own } => {
                        let r =
                            self.population.step(nodes, &self.data.train, cfg.seed, diagnose)?;
                        (r, nodes.clone())
                    }
                    Op::Step { nodes, oracle } => {
                        let train = &self.data.train;
                        let r = self.population.estimate(
                            nodes,
                            *oracle,
                            Smoothing::Configured,
                            train,
                            cfg.seed,
                            diagnose,
                        )?;
                        self.population.apply_pending(nodes, Rule::Optimizer)?;
                        (r, nodes.clone())
                    }
                    Op::Estimate { nodes, oracle, smoothing } => {
                        let train = &self.data.train;
                        let r = self
                            .population
                            .estimate(nodes, *oracle, *smoothing, train, cfg.seed, diagnose)?;
                        (r, Vec::new())
                    }
                    Op::Apply { nodes, rule } => {
                        self.population.apply_pending(nodes, *rule)?;
                        (Vec::new(), nodes.clone())
                    }
                    other => {
                        totals.bytes += 4 * other.values_sent(&self.population);
                        self.population.execute(other)?;
                        continue;
                    }
                };
                let mut diverged: Vec<(usize, f32)> = Vec::new();
                for (id, r) in reports {
                    let (history, window) = (&mut self.losses[id], self.protocol.loss_window());
                    history.push(r.loss);
                    if history.len() > window.max(1) {
                        history.remove(0);
                    }
                    if !r.loss.is_finite() || r.loss as f64 > cfg.max_loss {
                        diverged.push((id, r.loss));
                        continue;
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
                if cfg.on_divergence != DivergencePolicy::Stop {
                    // a step can leave non-finite parameters behind a finite loss: they must not
                    // reach a peer by gossip either
                    for &id in &updated {
                        if !diverged.iter().any(|&(d, _)| d == id) && !self.population.is_finite(id)
                        {
                            diverged.push((id, f32::NAN));
                        }
                    }
                }
                if let Some(&(id, loss)) = diverged.first()
                    && cfg.on_divergence == DivergencePolicy::Stop
                {
                    // the round may have just been evaluated: never the same round twice
                    if records.last().is_none_or(|r| r.round != round) {
                        records.push(self.record(
                            round,
                            &totals,
                            mean_loss(loss_sum, loss_count),
                            &elapsed,
                        ));
                    }
                    write_outputs(out, &title, &records)?;
                    return Err(self.diverged(id, round, loss));
                }
                for &(id, loss) in &diverged {
                    // a diverged estimate must not be shared or applied
                    self.population.pending[id] = None;
                    let kind = self.population.nodes[id].kind.name();
                    let action = match cfg.on_divergence {
                        DivergencePolicy::Reset => {
                            let healthy: Vec<usize> = (0..n)
                                .filter(|&i| self.active[i] && !diverged.iter().any(|d| d.0 == i))
                                .collect();
                            if healthy.is_empty() {
                                return Err(self.diverged(id, round, loss));
                            }
                            self.population.reset_from(id, &healthy);
                            totals.resets += 1;
                            "reset"
                        }
                        _ => {
                            self.active[id] = false;
                            dropped.push(id);
                            "dropped"
                        }
                    };
                    tracing::warn!(node = id, round, loss, action, "node diverged");
                    on_event(Event::Diverged { node: id, kind, round, loss, action });
                }
                if !self.active.iter().any(|&a| a) {
                    let (id, loss) = diverged.last().copied().unwrap_or((0, f32::NAN));
                    write_outputs(out, &title, &records)?;
                    return Err(self.diverged(id, round, loss));
                }
            }
            totals.interactions += plan.interactions;
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
                    dropped: dropped.clone(),
                    losses: self.losses.clone(),
                };
                self.checkpoint(state, &checkpoint_path)?.write(&checkpoint_path)?;
            }
            if evaluate && let Some(last) = records.last() {
                on_event(Event::Evaluated(last));
            }
        }
        Ok(records)
    }

    /// The plan of round `round`.
    fn plan(&self, round: u64) -> Result<Round, Error> {
        let ctx = Context {
            round,
            seed: gossip_seed(self.config.seed),
            kinds: &self.kinds,
            losses: &self.losses,
        };
        self.protocol.plan(&ctx).map_err(gossip_error)
    }

    /// The communication graph of a graph protocol (`dpsgd`, `dpoem`), if any.
    pub fn graph(&self) -> Option<GraphInfo> {
        let spec = self.config.protocol.graph()?;
        let w = self.protocol.mixing()?;
        let edges = w.rows.iter().map(|r| r.len() - 1).sum::<usize>() / 2;
        let lambda2 = w.second_eigenvalue();
        Some(GraphInfo {
            topology: spec.kind.name(),
            nodes: w.len(),
            edges,
            weights: match spec.weights {
                hdo_gossip::topology::Weights::Metropolis => "metropolis",
                hdo_gossip::topology::Weights::MaxDegree => "max_degree",
            },
            redraw: spec.redraw,
            lambda2,
            spectral_gap: lambda2.map(|l| 1.0 - l),
        })
    }

    /// What the run will do, before it runs (`hdo run --dry-run`): its population, parameters,
    /// traffic of one gossip round and expected passes per round, from the round-0 plan.
    pub fn describe(&self) -> Result<Description, Error> {
        let n = self.population.len();
        let layout = &self.population.layout;
        let plan = self.plan(0)?;
        let steps = plan.steps_per_node(n);
        let (mut forward, mut backward) = (0.0, 0.0);
        let mut estimate_values = vec![layout.dim; n];
        for op in &plan.ops {
            let oracle = match op {
                Op::Step { oracle, .. } | Op::Estimate { oracle, .. } => *oracle,
                _ => continue,
            };
            for &i in op.estimating() {
                let node = &self.population.nodes[i];
                let kind = match (oracle, node.kind) {
                    (Oracle::Own, _) if node.in_zeroth_phase() => NodeKind::Zo,
                    (Oracle::Own, k) => k,
                    (Oracle::First, _) => NodeKind::Fo,
                    (Oracle::Zeroth, _) => NodeKind::Zo,
                };
                let g = self.config.group(kind);
                let estimator = g.estimator.unwrap_or(crate::estimator::EstimatorKind::Backprop);
                let (f, b) = estimator.passes_per_step(g, layout.num_trainable());
                forward += f;
                backward += b;
                estimate_values[i] = estimator.message_values(g, layout);
            }
        }
        let sizes = DescribeSizes { parameters: layout.total_numel(), estimates: estimate_values };
        Ok(Description {
            fo: self.config.population.fo,
            zo: self.config.population.zo,
            model: self.config.model_name(),
            parameters: layout.dim,
            floats_per_model: layout.total_numel(),
            protocol: self.protocol.name(),
            bytes_per_round: 4 * plan.values_sent(&sizes),
            steps_per_round: steps.iter().map(|&k| k as u64).sum(),
            forward_per_round: forward,
            backward_per_round: backward,
            rounds: self.config.steps,
            train_examples: self.data.train.len(),
            validation_examples: self.validation.len,
            graph: self.graph(),
        })
    }

    /// Evaluate every node still in the population and the mean model now (`hdo eval`): each
    /// node's `(id, kind, evaluation)`, then the mean model's.
    pub fn evaluate_all(&self) -> (Vec<(usize, NodeKind, Evaluation)>, Evaluation) {
        let pop = &self.population;
        let active = self.active_ids();
        let nodes = active
            .par_iter()
            .map(|&i| (i, pop.nodes[i].kind, evaluate(&pop.nodes[i].model, &self.validation)))
            .collect();
        (nodes, evaluate(&pop.mean_model_of(&active), &self.validation))
    }

    /// Fault injection, for tests and drills of `on_divergence`: before round `round`'s steps,
    /// every parameter of `node` becomes NaN, so its next training loss is NaN.
    pub fn inject_divergence(&mut self, node: usize, round: u64) {
        self.fault = Some((node, round));
    }

    /// Whether each node is still in the population (see `on_divergence`).
    pub fn active(&self) -> &[bool] {
        &self.active
    }

    /// The nodes still in the population, in order.
    fn active_ids(&self) -> Vec<usize> {
        (0..self.active.len()).filter(|&i| self.active[i]).collect()
    }

    /// The error for node `id` diverging at `round` with `loss`.
    fn diverged(&self, id: usize, round: u64, loss: f32) -> Error {
        Error::Diverged {
            node: id,
            kind: self.population.nodes[id].kind.name(),
            round,
            loss,
            limit: self.config.max_loss,
        }
    }

    /// A checkpoint's queued estimates, checked against this population.
    fn restore_queue(
        &self,
        saved: &[QueuedState],
    ) -> Result<Vec<crate::population::Queued>, String> {
        let pop = &self.population;
        let device = pop.plain_device();
        let trainable: Vec<&crate::params::TensorInfo> = pop.layout.trainable().collect();
        saved
            .iter()
            .map(|q| {
                let target = match q.aux {
                    Some(k) if k < pop.aux.len() => hdo_gossip::Slot::Aux(k),
                    None if q.node < pop.len() => hdo_gossip::Slot::Node(q.node),
                    _ => return Err("a queued estimate names a server this run does not have".into()),
                };
                if q.from >= pop.len() {
                    return Err(format!("a queued estimate comes from node {}, which does not exist", q.from));
                }
                let gradient = match &q.estimate {
                    EstimateState::Dense(ts) => {
                        if ts.len() != trainable.len() || ts.iter().zip(&trainable).any(|(t, i)| t.len() != i.numel) {
                            return Err("a queued estimate does not fit the model".into());
                        }
                        Gradient::Dense(ts.iter().map(|t| params::upload(t.clone(), &device)).collect())
                    }
                    EstimateState::Seeded { key, step, directions, blocks, coefficients } => {
                        let blocks_ok = *blocks == 1 || *blocks == trainable.len();
                        if !blocks_ok || coefficients.len() != *directions as usize * blocks {
                            return Err("a queued seeded estimate has the wrong number of coefficients".into());
                        }
                        Gradient::Seeded(crate::estimator::SeededGradient {
                            noise: crate::noise::NoiseStream::from_parts(*key, *step),
                            directions: *directions,
                            blocks: *blocks,
                            coefficients: coefficients.clone(),
                        })
                    }
                };
                Ok(crate::population::Queued { due: q.due, from: q.from, target, gradient })
            })
            .collect()
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
        let aux = self
            .population
            .aux
            .iter()
            .map(|a| a.iter().cloned().map(params::download).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        let queue = self
            .population
            .queue
            .iter()
            .map(|q| {
                let estimate = match &q.gradient {
                    Gradient::Dense(ts) => EstimateState::Dense(
                        ts.iter().cloned().map(params::download).collect::<Result<_, _>>()?,
                    ),
                    Gradient::Seeded(s) => {
                        let (key, step) = s.noise.parts();
                        EstimateState::Seeded {
                            key,
                            step,
                            directions: s.directions,
                            blocks: s.blocks,
                            coefficients: s.coefficients.clone(),
                        }
                    }
                };
                let (aux, node) = match q.target {
                    hdo_gossip::Slot::Aux(k) => (Some(k), 0),
                    hdo_gossip::Slot::Node(i) => (None, i),
                };
                Ok(QueuedState { due: q.due, from: q.from, aux, node, estimate })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Checkpoint { config: self.config.to_toml(), run, nodes, aux, queue })
    }

    /// Node `i`'s coordinates, for an objective of at most [`POINT_COLUMNS`] of them (the
    /// per-node trajectories of `nodes.csv` and `trajectories.png`).
    fn point(&self, i: usize) -> Vec<f64> {
        let objective = self.config.objective.as_ref();
        if objective.is_none_or(|o| o.dim() > POINT_COLUMNS) {
            return Vec::new();
        }
        params::collect(&self.population.nodes[i].model)
            .first()
            .and_then(|x| params::download(x.clone()).ok())
            .map(|v| v.into_iter().map(f64::from).collect())
            .unwrap_or_default()
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
        let (evaluated, mean_model) = self.evaluate_all();
        let averaged = self
            .population
            .averaged_iterate(&self.active_ids())
            .map(|m| evaluate(&m, &self.validation));
        let centre = self
            .population
            .centre_model(&self.active_ids())
            .map(|m| evaluate(&m, &self.validation));
        let nodes = if self.config.metrics.per_node {
            let mut at = evaluated.iter();
            (0..pop.len())
                .map(|i| {
                    let e = if self.active[i] { at.next().map(|(_, _, e)| e) } else { None };
                    NodeEval {
                        node: i,
                        kind: pop.nodes[i].kind.name().into(),
                        active: self.active[i],
                        val_loss: e.map(|e| e.loss),
                        val_acc: e.map(|e| e.accuracy),
                        point: self.point(i),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let evals: Vec<(NodeKind, Evaluation)> =
            evaluated.iter().map(|&(_, kind, e)| (kind, e)).collect();
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
            consensus: pop.consensus_of(&self.active_ids()),
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
            active_nodes: evaluated.len() as u64,
            resets: totals.resets,
            centre_val_loss: centre.map(|e| e.loss),
            centre_val_acc: centre.map(|e| e.accuracy),
            objective: self.config.objective.as_ref().map(|_| mean_loss),
            best_objective: self
                .config
                .objective
                .as_ref()
                .map(|_| evals.iter().map(|(_, e)| e.loss).fold(f64::INFINITY, f64::min)),
            avg_iterate_val_loss: averaged.map(|e| e.loss),
            avg_iterate_val_acc: averaged.map(|e| e.accuracy),
            nodes,
        }
    }
}

/// What a run will do (see [`Experiment::describe`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// First-order nodes.
    pub fo: usize,
    /// Zeroth-order nodes.
    pub zo: usize,
    /// Model kind.
    pub model: &'static str,
    /// Trainable parameters per model `d`.
    pub parameters: u64,
    /// Floats per model (parameters and running statistics): what a gossip message carries.
    pub floats_per_model: u64,
    /// Protocol name.
    pub protocol: &'static str,
    /// Bytes of parameters sent by one gossip round.
    pub bytes_per_round: u64,
    /// Local steps per round (all nodes).
    pub steps_per_round: u64,
    /// Expected forward passes per round (all nodes; forward-mode passes count as one).
    pub forward_per_round: f64,
    /// Expected backward passes per round.
    pub backward_per_round: f64,
    /// Rounds.
    pub rounds: u64,
    /// Training examples.
    pub train_examples: usize,
    /// Validation examples evaluated.
    pub validation_examples: usize,
    /// The communication graph of a graph protocol.
    pub graph: Option<GraphInfo>,
}

/// A graph protocol's communication graph, as printed at start and written to `OUT/graph.toml`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GraphInfo {
    /// Topology name.
    pub topology: &'static str,
    /// Nodes.
    pub nodes: usize,
    /// Undirected edges.
    pub edges: usize,
    /// Weight rule.
    pub weights: &'static str,
    /// Whether the graph is redrawn every round (then these are round 0's).
    pub redraw: bool,
    /// `|λ₂(W)|` (absent above the size whose spectrum is computed).
    pub lambda2: Option<f64>,
    /// `1 − |λ₂(W)|`.
    pub spectral_gap: Option<f64>,
}

impl std::fmt::Display for GraphInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "graph: {} of {} nodes, {} edges, {} weights{}, spectral gap 1 − |λ₂(W)| = {}",
            self.topology,
            self.nodes,
            self.edges,
            self.weights,
            if self.redraw { " (redrawn every round; round 0's)" } else { "" },
            self.spectral_gap.map_or("not computed (too many nodes)".into(), |g| format!("{g:.6}"))
        )
    }
}

/// Payload sizes of a round-0 plan before any estimate exists.
struct DescribeSizes {
    parameters: u64,
    estimates: Vec<u64>,
}

impl hdo_gossip::Sizes for DescribeSizes {
    fn parameters(&self) -> u64 {
        self.parameters
    }
    fn estimate(&self, node: usize) -> u64 {
        self.estimates.get(node).copied().unwrap_or(self.parameters)
    }
}

/// Objectives of at most this many coordinates have each node's point written with its
/// evaluation.
pub const POINT_COLUMNS: usize = 16;

/// Each node's start point of an objective run (`None` for a model on data).
fn objective_starts(
    config: &ExperimentConfig,
    n: usize,
    device: &burn::prelude::Device,
) -> Result<Option<Vec<burn::prelude::Tensor<1>>>, Error> {
    let Some(objective) = &config.objective else { return Ok(None) };
    (0..n)
        .map(|i| {
            objective
                .start(i, n, config.seed)
                .map(|v| params::upload(v, device))
                .map_err(|problem| Error::Config { key: "objective.init_points".into(), problem })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The mean of the start points (summed in node order).
fn mean_point(points: &[burn::prelude::Tensor<1>]) -> burn::prelude::Tensor<1> {
    let sum = points[1..].iter().fold(points[0].clone(), |acc, p| acc + p.clone());
    sum / points.len() as f32
}

/// The phases of an FO node with `[fo] order_schedule`: the first phase's optimizer is built by
/// the caller from its group; this returns the switch step and the second phase's optimizer.
fn phases(config: &ExperimentConfig, kind: NodeKind) -> Option<crate::node::Phases> {
    use crate::config::OrderSchedule;
    let zeroth_first = match (kind, config.fo.order_schedule) {
        (NodeKind::Fo, OrderSchedule::Zofo) => true,
        (NodeKind::Fo, OrderSchedule::Fozo) => false,
        _ => return None,
    };
    let second = if zeroth_first { NodeKind::Fo } else { NodeKind::Zo };
    let switch = (config.fo.switch_at * config.steps as f64).round() as u64;
    Some(crate::node::Phases { zeroth_first, switch, next: Some(optimizer(config, second)) })
}

/// A fresh optimizer with `kind`'s group settings over the run's steps.
fn optimizer(config: &ExperimentConfig, kind: NodeKind) -> Optimizer {
    let g = config.group(kind);
    let schedule = LrSchedule { lr: g.lr, kind: g.schedule, warmup: g.warmup, total: config.steps };
    let style = g.momentum_style.unwrap_or(crate::config::MomentumStyle::Sgd);
    Optimizer::new(schedule, g.momentum, style, g.sign)
}

/// A protocol that cannot be built, as the library's error.
fn gossip_error(e: hdo_gossip::GossipError) -> Error {
    match e {
        hdo_gossip::GossipError::Config { key, problem } => Error::Config { key, problem },
        other => Error::Config { key: "protocol".into(), problem: other.to_string() },
    }
}

impl std::fmt::Display for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "population: {} FO + {} ZO nodes, protocol {}",
            self.fo, self.zo, self.protocol
        )?;
        writeln!(
            f,
            "model: {} with {} trainable parameters ({} floats with running statistics, {:.2} MiB per replica)",
            self.model,
            self.parameters,
            self.floats_per_model,
            self.floats_per_model as f64 * 4.0 / (1 << 20) as f64
        )?;
        writeln!(
            f,
            "per round: {} local steps, ≈ {:.1} forward + {:.1} backward passes, {} bytes of gossip ({:.2} MiB)",
            self.steps_per_round,
            self.forward_per_round,
            self.backward_per_round,
            self.bytes_per_round,
            self.bytes_per_round as f64 / (1 << 20) as f64
        )?;
        writeln!(
            f,
            "whole run: {} rounds, ≈ {:.3e} forward + {:.3e} backward passes, {:.2} MiB of gossip",
            self.rounds,
            self.forward_per_round * self.rounds as f64,
            self.backward_per_round * self.rounds as f64,
            self.bytes_per_round as f64 * self.rounds as f64 / (1 << 20) as f64
        )?;
        write!(
            f,
            "data: {} training examples, {} validation examples per evaluation",
            self.train_examples, self.validation_examples
        )?;
        if let Some(g) = &self.graph {
            write!(f, "\n{g}")?;
        }
        Ok(())
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

/// The seed a run's protocol plans its rounds from (pairs, matchings), derived from the run seed.
pub fn gossip_seed(seed: u64) -> u64 {
    mix(seed ^ 0x6055_1900)
}

/// Mean of `count` losses summing to `sum`, if any.
fn mean_loss(sum: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}
