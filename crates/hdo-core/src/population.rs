//! The population: nodes, their shared layout and estimators, and the operations of a round.

use crate::batcher::Batcher;
use crate::config::{GroupConfig, NodeKind};
use crate::data::Examples;
use crate::error::Error;
use crate::estimator::Estimator;
use crate::node::{Node, Pending, StepReport};
use crate::params::{self, Layout};
use crate::{average, device};
use burn::prelude::*;
use rayon::prelude::*;

/// All nodes of a run. FO nodes come first (`0..n_fo`), then ZO nodes.
pub struct Population {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Tensor layout shared by every replica.
    pub layout: Layout,
    /// Estimator of the FO and of the ZO population.
    pub estimators: [Box<dyn Estimator>; 2],
    /// The FO and ZO groups' settings (estimators rebuilt with a per-node ν, for D-POEM).
    pub groups: [GroupConfig; 2],
    /// Estimates computed and not yet applied, by node (`Op::Estimate` … `Op::Apply`).
    pub pending: Vec<Option<Pending>>,
    /// Auxiliary parameter vectors of the protocol (`Slot::Aux`), flat, on the plain device.
    pub aux: Vec<Vec<Tensor<1>>>,
    /// The initial model's float tensors `x_0` (flat, plain device): D-POEM's radius origin.
    pub origin: Vec<Tensor<1>>,
    /// Estimates pushed to a server and not applied yet (`Op::Push`), in (due, node) order.
    pub queue: Vec<Queued>,
}

/// An estimate on its way to a server.
#[derive(Clone)]
pub struct Queued {
    /// The round it is applied in.
    pub due: u64,
    /// Who sent it.
    pub from: usize,
    /// The server.
    pub target: hdo_gossip::Slot,
    /// The estimate.
    pub gradient: crate::estimator::Gradient,
}

impl Population {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The plain (non-autodiff) device of the replicas.
    pub fn plain_device(&self) -> Device {
        self.nodes.first().map(|n| n.device.clone().inner()).unwrap_or_default()
    }

    /// One local step on each node in `ids` (distinct), in parallel. Results are in node order.
    /// Nodes with `batched` set step on threads of their own and evaluate their perturbed copies
    /// together through one [`Batcher`]; the others step on the thread pool meanwhile.
    pub fn step(
        &mut self,
        ids: &[usize],
        train: &Examples,
        seed: u64,
        diagnose: bool,
    ) -> Result<Vec<(usize, StepReport)>, Error> {
        let selected = selection(self.nodes.len(), ids);
        let (layout, estimators) = (&self.layout, &self.estimators);
        let estimator = |node: &Node| {
            &estimators[usize::from(node.kind == NodeKind::Zo || node.in_zeroth_phase())]
        };
        let (batched, solo): (Vec<&mut Node>, Vec<&mut Node>) =
            self.nodes.iter_mut().filter(|n| selected[n.id]).partition(|n| n.batched);
        let batcher = Batcher::new();
        let mut reports: Vec<(usize, StepReport)> = std::thread::scope(|scope| {
            // every member joins before any can submit, so each flush holds all of them
            let memberships: Vec<_> = batched.iter().map(|_| batcher.join()).collect();
            let threads: Vec<_> = batched
                .into_iter()
                .zip(memberships)
                .map(|(node, membership)| {
                    let (est, batcher) = (estimator(node), &batcher);
                    scope.spawn(move || {
                        let _membership = membership;
                        let report =
                            node.step(est.as_ref(), train, layout, seed, diagnose, Some(batcher));
                        report.map(|r| (node.id, r))
                    })
                })
                .collect();
            let mut reports: Vec<(usize, StepReport)> = solo
                .into_par_iter()
                .map(|node| {
                    let est = estimator(node);
                    node.step(est.as_ref(), train, layout, seed, diagnose, None)
                        .map(|r| (node.id, r))
                })
                .collect::<Result<_, Error>>()?;
            for thread in threads {
                let report = thread.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                reports.push(report?);
            }
            Ok::<_, Error>(reports)
        })?;
        reports.sort_by_key(|(id, _)| *id);
        Ok(reports)
    }

    /// Replace each group's members' parameters (all float tensors, running statistics
    /// included) by the group mean. Disjoint groups (a matching, an all-reduce) are averaged
    /// together; on the CPU as one parallel operation whose members' tensors are moved out and
    /// back so each mean is computed in place ([`average::mean`]), on a GPU as fused device
    /// operations. Overlapping groups are averaged one after another.
    pub fn average(&mut self, groups: &[Vec<usize>]) {
        let groups: Vec<&[usize]> =
            groups.iter().filter(|g| g.len() > 1).map(Vec::as_slice).collect();
        let mut seen = vec![false; self.nodes.len()];
        let disjoint =
            groups.iter().flat_map(|g| g.iter()).all(|&i| !std::mem::replace(&mut seen[i], true));
        if !disjoint {
            for group in groups {
                self.average_disjoint(&[group]);
            }
            return;
        }
        self.average_disjoint(&groups);
    }

    /// [`Population::average`] of pairwise disjoint groups.
    fn average_disjoint(&mut self, groups: &[&[usize]]) {
        if groups.is_empty() {
            return;
        }
        let host = device::is_host(&self.nodes[groups[0][0]].device);
        let mut slots: Vec<Option<Node>> =
            std::mem::take(&mut self.nodes).into_iter().map(Some).collect();
        let jobs: Vec<Vec<Node>> =
            groups.iter().map(|g| g.iter().filter_map(|&i| slots[i].take()).collect()).collect();
        let done: Vec<Vec<Node>> = if host {
            jobs.into_par_iter().map(|members| average_members(members, host)).collect()
        } else {
            jobs.into_iter().map(|members| average_members(members, host)).collect()
        };
        for node in done.into_iter().flatten() {
            let id = node.id;
            slots[id] = Some(node);
        }
        self.nodes = slots.into_iter().flatten().collect();
    }

    /// Mean of the float tensors of `members`, flat, on the first member's plain device.
    pub fn mean_of(&self, members: &[usize]) -> Vec<Tensor<1>> {
        let k = members.len() as f32;
        let mut sum: Vec<Tensor<1>> = params::collect(&self.nodes[members[0]].model);
        for &i in &members[1..] {
            for (s, t) in sum.iter_mut().zip(params::collect(&self.nodes[i].model)) {
                *s = s.clone() + t;
            }
        }
        sum.into_iter().map(|s| s / k).collect()
    }

    /// The model whose every float tensor is the mean over `members` (at least one; on the
    /// plain device).
    pub fn mean_model_of(&self, members: &[usize]) -> hdo_models::Model {
        let mean = self.mean_of(members);
        params::load(burn::module::Module::valid(&self.nodes[members[0]].model), &mean)
    }

    /// Whether every float tensor of node `id` is finite (one reduction per tensor: `0·x` is 0
    /// for every finite `x` and NaN otherwise, so the sum cannot overflow).
    pub fn is_finite(&self, id: usize) -> bool {
        params::collect(&self.nodes[id].model)
            .into_iter()
            .all(|t| (t * 0.0).sum().into_scalar::<f32>().is_finite())
    }

    /// Restart node `id` from the mean of `peers` (every float tensor, running statistics
    /// included); its momentum is cleared, its step counter and data position are kept.
    pub fn reset_from(&mut self, id: usize, peers: &[usize]) {
        let mean = self.mean_of(peers);
        let node = &mut self.nodes[id];
        node.model = params::load(node.model.clone(), &mean);
        node.optimizer.set_velocity(Vec::new());
    }

    /// Γ = (1/n) Σ_i ‖x_i − μ‖² over the trainable parameters.
    pub fn consensus(&self) -> f64 {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.consensus_of(&all)
    }

    /// Γ of `members` only.
    pub fn consensus_of(&self, members: &[usize]) -> f64 {
        let n = members.len();
        if n < 2 {
            return 0.0;
        }
        let per_node: Vec<Vec<Tensor<1>>> =
            members.iter().map(|&i| params::collect(&self.nodes[i].model)).collect();
        let mut total = 0.0f64;
        for (i, _) in self.layout.tensors.iter().enumerate().filter(|(_, t)| t.trainable.is_some())
        {
            let rows: Vec<Tensor<2>> =
                per_node.iter().map(|p| p[i].clone().unsqueeze_dim(0)).collect();
            let stacked = Tensor::cat(rows, 0); // [n, numel]
            let mu = stacked.clone().mean_dim(0); // [1, numel]
            let sq = (stacked - mu).powi_scalar(2).sum();
            total += sq.into_scalar::<f32>() as f64;
        }
        total / n as f64
    }
}

/// `selected[i]` for each of `n` nodes: whether `i` is in `ids`.
pub(crate) fn selection(n: usize, ids: &[usize]) -> Vec<bool> {
    let mut selected = vec![false; n];
    for &i in ids {
        selected[i] = true;
    }
    selected
}

/// Give every member the mean of the members' float tensors.
fn average_members(members: Vec<Node>, host: bool) -> Vec<Node> {
    let mut columns: Vec<Vec<Tensor<1>>> = Vec::new();
    let members: Vec<Node> = members
        .into_iter()
        .map(|mut node| {
            let tensors = if host {
                let (skeleton, tensors) = params::take(node.model);
                node.model = skeleton;
                tensors
            } else {
                params::collect(&node.model)
            };
            columns.resize_with(tensors.len(), Vec::new);
            for (column, t) in columns.iter_mut().zip(tensors) {
                column.push(t);
            }
            node
        })
        .collect();
    let means: Vec<Tensor<1>> = columns.into_iter().map(|c| average::mean(c, host)).collect();
    members
        .into_iter()
        .map(|mut node| {
            node.model = params::load(node.model, &means);
            node
        })
        .collect()
}
