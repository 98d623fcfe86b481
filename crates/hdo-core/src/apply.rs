//! The arithmetic of a round's operations ([`hdo_gossip::Op`]) on the population's replicas, in
//! one fixed order, so that every runtime computes the same bits.

use crate::config::{GroupConfig, NodeKind};
use crate::data::Examples;
use crate::error::Error;
use crate::estimator::{EstimatorKind, Gradient};
use crate::node::{Node, Pending, StepReport};
use crate::params::{self, Layout};
use crate::population::{Population, Queued, selection};
use burn::prelude::*;
use hdo_gossip::{Oracle, Pull, Quantity, Row, Slot, Smoothing};
use rayon::prelude::*;

/// Which estimator a node runs for `oracle`, and whether on its plain copy.
fn choose(node: &Node, oracle: Oracle) -> Result<(usize, bool), Error> {
    match (oracle, node.kind) {
        (Oracle::Own, _) if node.in_zeroth_phase() => Ok((1, node.kind == NodeKind::Fo)),
        (Oracle::Own, kind) => Ok((usize::from(kind == NodeKind::Zo), false)),
        (Oracle::First, NodeKind::Fo) => Ok((0, false)),
        (Oracle::First, NodeKind::Zo) => Err(Error::Config {
            key: "population.zo".into(),
            problem: format!(
                "the protocol asks node {} for a first-order gradient, but ZO nodes run forward \
                 passes only; use FO nodes (population.fo) for it",
                node.id
            ),
        }),
        (Oracle::Zeroth, NodeKind::Fo) => Ok((1, true)),
        (Oracle::Zeroth, NodeKind::Zo) => Ok((1, false)),
    }
}

impl Population {
    /// `Op::Estimate` (and `Op::Step` with another oracle than the node's own): each node of
    /// `ids` estimates at its current parameters; the estimates are kept pending. In parallel;
    /// reports in node order.
    pub fn estimate(
        &mut self,
        ids: &[usize],
        oracle: Oracle,
        smoothing: Smoothing,
        train: &Examples,
        seed: u64,
        diagnose: bool,
    ) -> Result<Vec<(usize, StepReport)>, Error> {
        let selected = selection(self.nodes.len(), ids);
        let (layout, estimators, groups) = (&self.layout, &self.estimators, &self.groups);
        let results: Vec<(usize, Pending, StepReport)> = self
            .nodes
            .par_iter_mut()
            .filter(|n| selected[n.id])
            .map(|node| {
                node.enter_phase();
                let (which, plain) = choose(node, oracle)?;
                let own;
                let estimator = match smoothing {
                    Smoothing::Radius { scale } if which == 1 => {
                        let g: &GroupConfig = &groups[1];
                        let nu = scale * node.dog.radius / (layout.dim.max(1) as f64).sqrt();
                        own = g
                            .estimator
                            .unwrap_or(EstimatorKind::ForwardDifference)
                            .build(&GroupConfig { nu, ..g.clone() });
                        own.as_ref()
                    }
                    _ => estimators[which].as_ref(),
                };
                let (pending, report) =
                    node.estimate(estimator, train, layout, seed, diagnose, None, plain)?;
                Ok((node.id, pending, report))
            })
            .collect::<Result<_, Error>>()?;
        let mut reports = Vec::with_capacity(results.len());
        for (id, pending, report) in results {
            self.pending[id] = Some(pending);
            reports.push((id, report));
        }
        Ok(reports)
    }

    /// f32 values of node `id`'s pending estimate as a message (see [`hdo_gossip::Sizes`]).
    pub fn pending_values(&self, id: usize) -> u64 {
        match self.pending.get(id).and_then(Option::as_ref).map(|p| &p.gradient) {
            Some(Gradient::Seeded(s)) => s.coefficients.len() as u64,
            _ => self.layout.dim,
        }
    }

    /// `Op::Share`: in each group, every member's pending estimate becomes the group mean
    /// `(g₁ + g₂ + …)/k`, summed in member order tensor by tensor on the plain device — computed
    /// once and given to every member, so their updates are identical. Members without a
    /// pending estimate are left out.
    pub fn share(&mut self, groups: &[Vec<usize>]) {
        let device = self.plain_device();
        for group in groups {
            let members: Vec<usize> =
                group.iter().copied().filter(|&i| self.pending[i].is_some()).collect();
            if members.len() < 2 {
                continue;
            }
            let k = members.len() as f32;
            let mean: Vec<Tensor<1>> = self
                .layout
                .trainable()
                .map(|info| {
                    let l = info.trainable.unwrap_or(0);
                    let mut sum: Option<Tensor<1>> = None;
                    for &m in &members {
                        if let Some(p) = &self.pending[m] {
                            let g = p.gradient.tensor(l, info, &device);
                            sum = Some(match sum {
                                Some(s) => s + g,
                                None => g,
                            });
                        }
                    }
                    sum.map(|s| s / k).unwrap_or_else(|| Tensor::zeros([info.numel], &device))
                })
                .collect();
            for &m in &members {
                if let Some(p) = self.pending[m].as_mut() {
                    p.gradient = Gradient::Dense(mean.clone());
                }
            }
        }
    }

    /// `Op::Apply`: each node of `ids` applies its pending estimate by `rule` (nodes without one
    /// are skipped).
    pub fn apply_pending(&mut self, ids: &[usize], rule: hdo_gossip::Rule) -> Result<(), Error> {
        let layout = &self.layout;
        let mut work: Vec<(&mut Node, Pending)> = Vec::new();
        let selected = selection(self.nodes.len(), ids);
        for (node, pending) in self.nodes.iter_mut().zip(self.pending.iter_mut()) {
            if selected[node.id]
                && let Some(p) = pending.take()
            {
                work.push((node, p));
            }
        }
        work.into_par_iter()
            .map(|(node, p)| match rule {
                hdo_gossip::Rule::Optimizer => node.apply(p, layout),
                hdo_gossip::Rule::DistanceOverGradients => node.apply_dog(p, layout),
                hdo_gossip::Rule::Discard => node.discard(p),
            })
            .collect()
    }

    /// The flat float tensors of `slot` (plain device).
    pub fn slot(&self, slot: Slot) -> Vec<Tensor<1>> {
        match slot {
            Slot::Node(i) => params::collect(&self.nodes[i].model),
            Slot::Aux(k) => self.aux[k].clone(),
        }
    }

    fn set_slot(&mut self, slot: Slot, values: Vec<Tensor<1>>) {
        match slot {
            Slot::Node(i) => {
                let node = &mut self.nodes[i];
                node.model = params::load(node.model.clone(), &values);
            }
            Slot::Aux(k) => self.aux[k] = values,
        }
    }

    /// `Op::Mix`: `x_t ← Σ_j w_j·x_j` for every row at once — all rows read the values from
    /// before the operation. Each sum is `((w₀x₀ + w₁x₁) + …)` in f32, in the row's order.
    pub fn mix(&mut self, rows: &[Row], quantity: Quantity) {
        match quantity {
            Quantity::Radius => {
                let radius = |s: Slot| match s {
                    Slot::Node(i) => self.nodes[i].dog.radius,
                    Slot::Aux(_) => 0.0,
                };
                let new: Vec<(Slot, f64)> = rows
                    .iter()
                    .map(|r| (r.target, r.weights.iter().map(|&(s, w)| w * radius(s)).sum()))
                    .collect();
                for (slot, r) in new {
                    if let Slot::Node(i) = slot {
                        self.nodes[i].dog.radius = r;
                    }
                }
            }
            Quantity::Parameters | Quantity::Trainable => {
                // every slot read once, however many rows read it (a dense graph's W)
                let mut read: Vec<Slot> =
                    rows.iter().flat_map(|r| r.weights.iter().map(|w| w.0)).collect();
                read.sort_unstable();
                read.dedup();
                let values: Vec<Vec<Tensor<1>>> = read.iter().map(|&s| self.slot(s)).collect();
                let of = |s: Slot| read.binary_search(&s).map(|k| values[k].clone());
                let new: Vec<(Slot, Vec<Tensor<1>>)> = rows
                    .par_iter()
                    .map(|row| {
                        let mut acc: Option<Vec<Tensor<1>>> = None;
                        for &(source, w) in &row.weights {
                            let w = w as f32;
                            let x = of(source).unwrap_or_else(|_| self.slot(source));
                            acc = Some(match acc {
                                None => x.into_iter().map(|t| t * w).collect(),
                                Some(a) => a.into_iter().zip(x).map(|(a, t)| a + t * w).collect(),
                            });
                        }
                        let mixed = acc.unwrap_or_else(|| self.slot(row.target));
                        if quantity == Quantity::Trainable {
                            // running statistics stay the target's own
                            let own = of(row.target).unwrap_or_else(|_| self.slot(row.target));
                            let kept = mixed.into_iter().zip(own).zip(&self.layout.tensors);
                            let kept = kept
                                .map(|((m, o), info)| if info.trainable.is_some() { m } else { o });
                            return (row.target, kept.collect());
                        }
                        (row.target, mixed)
                    })
                    .collect();
                for (slot, values) in new {
                    self.set_slot(slot, values);
                }
            }
        }
    }

    /// `Op::Pull`: `x ← x − λ(x − y)` for every pull at once (all read the values from before).
    pub fn pull(&mut self, pulls: &[Pull]) {
        let new: Vec<(Slot, Vec<Tensor<1>>)> = pulls
            .par_iter()
            .map(|p| {
                let lambda = p.strength as f32;
                let (x, y) = (self.slot(p.node), self.slot(p.toward));
                let moved = x.into_iter().zip(y).map(|(x, y)| x.clone() - (x - y) * lambda);
                (p.node, moved.collect())
            })
            .collect();
        for (slot, values) in new {
            self.set_slot(slot, values);
        }
    }

    /// `target ← target − step·g` on the trainable tensors, in f32.
    fn step_slot(&mut self, target: Slot, gradient: &Gradient, step: f64) {
        let device = self.plain_device();
        let step = step as f32;
        let values: Vec<Tensor<1>> = self
            .slot(target)
            .into_iter()
            .zip(&self.layout.tensors)
            .map(|(x, info)| match info.trainable {
                Some(l) => x - gradient.tensor(l, info, &device) * step,
                None => x,
            })
            .collect();
        self.set_slot(target, values);
    }

    /// `Op::Push`: queue a copy of each listed node's pending estimate for `target`, due at its
    /// round; the queue stays in (due, node) order.
    pub fn push(&mut self, pushes: &[(usize, u64)], target: Slot) {
        for &(from, due) in pushes {
            if let Some(p) = self.pending.get(from).and_then(Option::as_ref) {
                self.queue.push(Queued { due, from, target, gradient: p.gradient.clone() });
            }
        }
        self.queue.sort_by_key(|q| (q.due, q.from));
    }

    /// `Op::ServerApply`: apply every estimate queued for `target` and due by `round`, in queue
    /// order, and drop them from the queue.
    pub fn server_apply(&mut self, target: Slot, round: u64, step: f64) {
        let (due, rest): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| q.target == target && q.due <= round);
        self.queue = rest;
        for q in due {
            self.step_slot(target, &q.gradient, step);
        }
    }

    /// Euclidean norm of the trainable part of `values` (flat float tensors in layout order).
    fn trainable_norm(layout: &Layout, values: &[Tensor<1>]) -> Result<f64, Error> {
        let mut sq = 0f64;
        for (info, t) in layout.tensors.iter().zip(values) {
            if info.trainable.is_some() {
                sq += params::download(t.clone().powi_scalar(2).sum())?[0] as f64;
            }
        }
        Ok(sq.sqrt())
    }

    /// `Op::TrackRadius`: `r_i ← max(r_i, ‖x_i − x_0‖)` over the trainable parameters.
    pub fn track_radius(&mut self, ids: &[usize]) -> Result<(), Error> {
        for &i in ids {
            let x = self.slot(Slot::Node(i));
            let diff: Vec<Tensor<1>> =
                x.into_iter().zip(&self.origin).map(|(x, o)| x - o.clone()).collect();
            let d = Self::trainable_norm(&self.layout, &diff)?;
            let dog = &mut self.nodes[i].dog;
            dog.radius = dog.radius.max(d);
        }
        Ok(())
    }

    /// `Op::Project`: scale the trainable parameters of each node onto `‖x‖ ≤ radius`.
    pub fn project(&mut self, ids: &[usize], radius: f64) -> Result<(), Error> {
        for &i in ids {
            let x = self.slot(Slot::Node(i));
            let norm = Self::trainable_norm(&self.layout, &x)?;
            if norm > radius {
                let scale = (radius / norm) as f32;
                let layout = &self.layout;
                let node = &mut self.nodes[i];
                node.model = params::map(node.model.clone(), |k, t| {
                    if layout.tensors[k].trainable.is_some() { t * scale } else { t }
                });
            }
        }
        Ok(())
    }

    /// `Op::Accumulate`: `x̄_i ← x̄_i + r̄_i·x_i` (every float tensor) and `w_i ← w_i + r̄_i`.
    pub fn accumulate(&mut self, ids: &[usize]) {
        for &i in ids {
            let x = self.slot(Slot::Node(i));
            let dog = &mut self.nodes[i].dog;
            let r = dog.radius as f32;
            dog.iterate_sum = if dog.iterate_sum.is_empty() {
                x.into_iter().map(|t| t * r).collect()
            } else {
                std::mem::take(&mut dog.iterate_sum)
                    .into_iter()
                    .zip(x)
                    .map(|(s, t)| s + t * r)
                    .collect()
            };
            dog.weight += dog.radius;
        }
    }

    /// The protocol's first auxiliary vector as a model (EASGD's centre, DOWNPOUR's server),
    /// what the LSGD paper evaluates for EASGD: its trainable parameters with the running
    /// statistics of the mean of `members` (a server applies gradients only, so it has no
    /// statistics of its own). `None` without auxiliary vectors.
    pub fn centre_model(&self, members: &[usize]) -> Option<hdo_models::Model> {
        let centre = self.aux.first()?;
        let tensors = &self.layout.tensors;
        let values: Vec<Tensor<1>> = if tensors.iter().all(|t| t.trainable.is_some()) {
            centre.clone()
        } else {
            let mean = self.mean_of(members);
            let parts = centre.iter().zip(mean).zip(tensors);
            parts
                .map(|((c, m), info)| if info.trainable.is_some() { c.clone() } else { m })
                .collect()
        };
        Some(params::load(burn::module::Module::valid(&self.nodes[members[0]].model), &values))
    }

    /// The mean over `members` of their radius-weighted average iterates `x̄_i / w_i`, if they
    /// have accumulated any.
    pub fn averaged_iterate(&self, members: &[usize]) -> Option<hdo_models::Model> {
        let parts: Vec<Vec<Tensor<1>>> = members
            .iter()
            .map(|&i| &self.nodes[i].dog)
            .filter(|d| d.weight > 0.0 && !d.iterate_sum.is_empty())
            .map(|d| d.iterate_sum.iter().map(|t| t.clone() / d.weight as f32).collect())
            .collect();
        let k = parts.len() as f32;
        let mut it = parts.into_iter();
        let first = it.next()?;
        let sum = it.fold(first, |a, p| a.into_iter().zip(p).map(|(a, b)| a + b).collect());
        let mean: Vec<Tensor<1>> = sum.into_iter().map(|t| t / k).collect();
        Some(params::load(burn::module::Module::valid(&self.nodes[members[0]].model), &mean))
    }
}

impl hdo_gossip::Sizes for Population {
    fn parameters(&self) -> u64 {
        self.layout.total_numel()
    }
    fn trainable(&self) -> u64 {
        self.layout.dim
    }
    fn estimate(&self, node: usize) -> u64 {
        self.pending_values(node)
    }
}

impl Population {
    /// Execute a communication or bookkeeping operation (steps, estimates and applies are the
    /// experiment's, which checks their losses).
    pub fn execute(&mut self, op: &hdo_gossip::Op) -> Result<(), Error> {
        use hdo_gossip::Op;
        match op {
            Op::Average { groups } => self.average(groups),
            Op::Mix { rows, quantity } => self.mix(rows, *quantity),
            Op::Share { groups } => self.share(groups),
            Op::Pull { pulls } => self.pull(pulls),
            Op::TrackRadius { nodes } => self.track_radius(nodes)?,
            Op::Project { nodes, radius } => self.project(nodes, *radius)?,
            Op::Accumulate { nodes } => self.accumulate(nodes),
            Op::Push { pushes, target } => self.push(pushes, *target),
            Op::ServerApply { target, round, step } => self.server_apply(*target, *round, *step),
            Op::Apply { nodes, rule } => self.apply_pending(nodes, *rule)?,
            Op::Step { .. } | Op::Estimate { .. } => {
                return Err(Error::Device(
                    "a step reached Population::execute; the experiment runs steps".into(),
                ));
            }
        }
        Ok(())
    }
}

/// `op` restricted to the nodes still in the population (`active[i]`): inactive nodes take no
/// step and leave every group; a mixing row of an inactive node is dropped, and an inactive
/// source's weight goes to the row's own target, so each row still sums to what it summed to.
pub fn restrict(op: &hdo_gossip::Op, active: &[bool]) -> hdo_gossip::Op {
    use hdo_gossip::Op;
    if active.iter().all(|&a| a) {
        return op.clone();
    }
    let on = |s: Slot| match s {
        Slot::Node(i) => active.get(i).copied().unwrap_or(false),
        Slot::Aux(_) => true,
    };
    let nodes = |v: &[usize]| -> Vec<usize> { v.iter().copied().filter(|&i| active[i]).collect() };
    let groups = |g: &[Vec<usize>]| -> Vec<Vec<usize>> { g.iter().map(|g| nodes(g)).collect() };
    match op {
        Op::Step { nodes: v, oracle } => Op::Step { nodes: nodes(v), oracle: *oracle },
        Op::Estimate { nodes: v, oracle, smoothing } => {
            Op::Estimate { nodes: nodes(v), oracle: *oracle, smoothing: *smoothing }
        }
        Op::Apply { nodes: v, rule } => Op::Apply { nodes: nodes(v), rule: *rule },
        Op::Share { groups: g } => Op::Share { groups: groups(g) },
        Op::Average { groups: g } => Op::Average { groups: groups(g) },
        Op::TrackRadius { nodes: v } => Op::TrackRadius { nodes: nodes(v) },
        Op::Project { nodes: v, radius } => Op::Project { nodes: nodes(v), radius: *radius },
        Op::Accumulate { nodes: v } => Op::Accumulate { nodes: nodes(v) },
        Op::Push { pushes, target } => Op::Push {
            pushes: pushes.iter().copied().filter(|&(i, _)| active[i]).collect(),
            target: *target,
        },
        Op::ServerApply { .. } => op.clone(),
        Op::Pull { pulls } => Op::Pull {
            pulls: pulls.iter().filter(|p| on(p.node) && on(p.toward)).copied().collect(),
        },
        Op::Mix { rows, quantity } => Op::Mix {
            rows: rows
                .iter()
                .filter(|r| on(r.target))
                .map(|r| {
                    let lost: f64 = r.weights.iter().filter(|(s, _)| !on(*s)).map(|w| w.1).sum();
                    let mut weights: Vec<(Slot, f64)> =
                        r.weights.iter().filter(|(s, _)| on(*s)).copied().collect();
                    if lost != 0.0 {
                        match weights.iter_mut().find(|(s, _)| *s == r.target) {
                            Some(own) => own.1 += lost,
                            None => {
                                weights.push((r.target, lost));
                                weights.sort_by_key(|w| w.0);
                            }
                        }
                    }
                    Row { target: r.target, weights }
                })
                .collect(),
            quantity: *quantity,
        },
    }
}
