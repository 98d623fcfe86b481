//! Gossip on real replicas: averaging preserves the mean, never increases Γ, and covers BN stats.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use hdo_core::Experiment;
use hdo_core::params;
use hdo_gossip::{Context, Kind, Op, ProtocolConfig};

fn flat_mean(exp: &Experiment) -> Vec<f32> {
    let all: Vec<usize> = (0..exp.population.len()).collect();
    exp.population.mean_of(&all).into_iter().flat_map(common::host).collect()
}

#[test]
fn averaging_preserves_the_mean_and_does_not_increase_consensus() {
    // Independent training spreads the nodes apart; then matchings and an all-reduce pull them in.
    let mut exp = Experiment::new(common::tiny(
        3,
        3,
        &[
            "protocol.kind=\"none\"",
            "model.kind=\"cnn\"",
            "model.hidden=[16]",
            "model.channels=[2,2,2]",
        ],
    ))
    .unwrap();
    let train = exp.data.train.clone();
    for _ in 0..2 {
        exp.population.step(&(0..6).collect::<Vec<_>>(), &train, 1, false).unwrap();
    }
    let mut gamma = exp.population.consensus();
    assert!(gamma > 0.0);
    let mean0 = flat_mean(&exp);
    for round in 0..5 {
        let kinds = [Kind::First; 6];
        let losses = vec![Vec::new(); 6];
        let ctx = Context { round, seed: 9, kinds: &kinds, losses: &losses };
        let plan = ProtocolConfig::default().build(6, 9).unwrap().plan(&ctx).unwrap();
        let Op::Average { groups } = &plan.ops[1] else { panic!("{plan:?}") };
        exp.population.average(groups);
        let g = exp.population.consensus();
        assert!(g <= gamma * (1.0 + 1e-5), "Γ grew from {gamma} to {g}");
        gamma = g;
        for (a, b) in flat_mean(&exp).iter().zip(&mean0) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "mean moved: {a} vs {b}");
        }
    }
    exp.population.average(&[(0..6).collect()]);
    assert!(exp.population.consensus() < 1e-9);
    // running statistics were averaged too: every node holds the same running_mean values
    let running: Vec<usize> = exp
        .population
        .layout
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.path.ends_with("running_mean"))
        .map(|(i, _)| i)
        .collect();
    assert!(!running.is_empty());
    let first = params::collect(&exp.population.nodes[0].model);
    for node in &exp.population.nodes[1..] {
        let other = params::collect(&node.model);
        for &i in &running {
            assert_eq!(common::host(first[i].clone()), common::host(other[i].clone()));
        }
    }
}

#[test]
fn fo_replicas_stay_trainable_after_averaging_with_zo_replicas() {
    let mut exp = Experiment::new(common::tiny(1, 1, &[])).unwrap();
    let train = exp.data.train.clone();
    exp.population.average(&[vec![0, 1]]);
    // the FO node can still take a backprop step, and its loss is finite
    let reports = exp.population.step(&[0, 1], &train, 0, false).unwrap();
    assert!(reports.iter().all(|(_, r)| r.loss.is_finite()));
    assert_eq!(reports[0].1.backward_passes, 1);
    assert_eq!(reports[1].1.backward_passes, 0);
}

/// Every float tensor of every node, on the host.
fn all_params(exp: &Experiment) -> Vec<Vec<f32>> {
    exp.population
        .nodes
        .iter()
        .map(|n| params::collect(&n.model).into_iter().flat_map(common::host).collect())
        .collect()
}

#[test]
fn a_batched_average_gives_each_group_exactly_its_mean() {
    // spread 2 FO + 3 ZO CNN replicas apart, then average disjoint groups in one operation and
    // overlapping groups in sequence; compare with means computed group by group beforehand
    let mut exp = Experiment::new(common::tiny(
        2,
        3,
        &["model.kind=\"cnn\"", "model.hidden=[8]", "model.channels=[2,2,2]"],
    ))
    .unwrap();
    let train = exp.data.train.clone();
    exp.population.step(&[0, 1, 2, 3, 4], &train, 3, false).unwrap();
    let mean_of = |exp: &Experiment, g: &[usize]| -> Vec<f32> {
        exp.population.mean_of(g).into_iter().flat_map(common::host).collect()
    };
    let before = all_params(&exp);
    let (g1, g2) = (vec![0, 3], vec![1, 2, 4]);
    let (m1, m2) = (mean_of(&exp, &g1), mean_of(&exp, &g2));
    exp.population.average(&[g1.clone(), g2.clone()]);
    let after = all_params(&exp);
    for &i in &g1 {
        assert_eq!(after[i], m1, "node {i}");
    }
    for &i in &g2 {
        assert_eq!(after[i], m2, "node {i}");
    }
    assert_ne!(after[0], before[0]);
    // overlapping groups: one after the other
    let m01 = mean_of(&exp, &[0, 1]);
    exp.population.average(&[vec![0, 1], vec![1, 2]]);
    let after = all_params(&exp);
    assert_eq!(after[0], m01);
    let m12: Vec<f32> = m01.iter().zip(&m2).map(|(a, b)| (a + b) / 2.0).collect();
    assert_eq!(after[2], m12);
    // FO replicas still train
    let reports = exp.population.step(&[0, 1], &train, 4, false).unwrap();
    assert!(reports.iter().all(|(_, r)| r.loss.is_finite() && r.backward_passes == 1));
}
