//! The population: nodes, their shared layout and estimators, and the operations of a round.

use crate::config::NodeKind;
use crate::data::Examples;
use crate::error::Error;
use crate::estimator::Estimator;
use crate::node::{Node, StepReport};
use crate::params::{self, Layout};
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

    /// One local step on each node in `ids` (distinct), in parallel. Results are in node order.
    pub fn step(
        &mut self,
        ids: &[usize],
        train: &Examples,
        seed: u64,
        diagnose: bool,
    ) -> Result<Vec<(usize, StepReport)>, Error> {
        let mut selected = vec![false; self.nodes.len()];
        for &i in ids {
            selected[i] = true;
        }
        let (layout, estimators) = (&self.layout, &self.estimators);
        self.nodes
            .par_iter_mut()
            .filter(|n| selected[n.id])
            .map(|node| {
                let est = &estimators[usize::from(node.kind == NodeKind::Zo)];
                node.step(est.as_ref(), train, layout, seed, diagnose).map(|r| (node.id, r))
            })
            .collect()
    }

    /// Replace each group's members' parameters (all float tensors, running statistics
    /// included) by the group mean.
    pub fn average(&mut self, groups: &[Vec<usize>]) {
        for group in groups.iter().filter(|g| g.len() > 1) {
            let mean = self.mean_of(group);
            for &i in group {
                let node = &mut self.nodes[i];
                node.model = params::load(node.model.clone(), &mean);
            }
        }
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

    /// The model whose every float tensor is the population mean (on the plain device).
    pub fn mean_model(&self) -> hdo_models::Model {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let mean = self.mean_of(&all);
        params::load(burn::module::Module::valid(&self.nodes[0].model), &mean)
    }

    /// Γ = (1/n) Σ_i ‖x_i − μ‖² over the trainable parameters.
    pub fn consensus(&self) -> f64 {
        let n = self.nodes.len();
        if n < 2 {
            return 0.0;
        }
        let per_node: Vec<Vec<Tensor<1>>> =
            self.nodes.iter().map(|nd| params::collect(&nd.model)).collect();
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
