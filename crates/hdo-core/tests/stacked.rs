//! Stacked execution (K perturbed replicas in one batched pass) gives the numbers of evaluating
//! the replicas one at a time, for every model; estimators give the same estimates either way;
//! batching the copies of many nodes together gives each node its own losses.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use burn::prelude::*;
use hdo_core::data::{Batch, batch};
use hdo_core::estimator::{
    CentralDifference, Debiased, Direction, Estimate, Estimator, ForwardDifference,
    ForwardGradient, Gradient, Projection, StepInput, cross_entropy, direction_stack, perturbed,
    perturbed_stack, stacked_cross_entropy,
};
use hdo_core::noise::NoiseStream;
use hdo_core::params::Layout;
use hdo_core::{Experiment, ExperimentConfig};
use hdo_datasets::mnist;
use hdo_models::{
    CnnConfig, DataShape, ForwardCtx, MlpConfig, Model, ModelConfig, ResNetConfig, StackInput,
    Stem, layers,
};

fn stackable() -> Vec<ModelConfig> {
    vec![
        ModelConfig::Logistic {},
        ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
        ModelConfig::Cnn(CnnConfig { channels: [4, 6, 8], hidden: vec![24, 12] }),
        // strided and downsample blocks, BatchNorm everywhere, residual sums, global pooling
        ModelConfig::ResNet18(ResNetConfig { stem: Stem::Imagenet, width: 2 }),
        ModelConfig::ResNet18(ResNetConfig { stem: Stem::Cifar, width: 2 }),
    ]
}

fn setup(config: &ModelConfig, batch_size: usize) -> (Model, Layout, Batch) {
    let device = Device::flex();
    let split = mnist::bundled(2000).unwrap();
    let shape = DataShape::image(split.train.shape, 10);
    let model = config.init(shape, &device).unwrap();
    let layout = Layout::of(&model);
    let mut model = hdo_core::init::initialize(model, &layout, 4);
    let b = batch(&split.train, &(0..batch_size).collect::<Vec<_>>(), &device);
    // non-trivial running statistics, so evaluation mode is tested too
    let mut ctx = ForwardCtx::train();
    model.forward(&b.input, &mut ctx);
    model = hdo_core::optimizer::update_running_stats(model, &ctx.batch_stats).unwrap();
    (model, layout, b)
}

/// ResNet-18's twenty layers of grouped (stacked) against plain convolutions compound summation-
/// order rounding further than the shallow models (measured: forward-gradient coefficients within
/// 9e-7 of the largest where the CNN's are within 1.2e-7), so its estimate tolerances are 10×.
fn depth_factor(config: &ModelConfig) -> f32 {
    if matches!(config, ModelConfig::ResNet18(_)) { 10.0 } else { 1.0 }
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: stacked {x} vs single {y}");
    }
}

#[test]
fn stacked_logits_and_losses_match_one_replica_at_a_time() {
    let noise = NoiseStream::new(3, 1, 7);
    let probes = [(0u32, 1e-2f32), (1, -2e-2), (5, 0.3), (2, 0.0)];
    for config in stackable() {
        let (model, layout, b) = setup(&config, 12);
        let stack = perturbed_stack(&model, &layout, noise, &probes);
        assert_eq!(stack.members, probes.len());
        for train in [true, false] {
            let ctx = if train { ForwardCtx::train() } else { ForwardCtx::eval() };
            let logits = model.forward_stacked(&stack, StackInput::Shared(&b.input), &ctx).unwrap();
            assert_eq!(logits.dims(), [probes.len(), 12, 10]);
            let losses = common::host(stacked_cross_entropy(logits.clone(), &b.targets));
            for (j, &(k, scale)) in probes.iter().enumerate() {
                let single = perturbed(&model, &layout, noise, k, scale);
                let mut ctx = if train { ForwardCtx::train() } else { ForwardCtx::eval() };
                let want = single.forward(&b.input, &mut ctx);
                let loss = cross_entropy(want.clone(), &b.targets).into_scalar::<f32>();
                let got: Tensor<2> = logits.clone().narrow(0, j, 1).reshape([12, 10]);
                let what = format!("{} train={train} member {j}", config.name());
                let (got, want) =
                    (common::host(got.reshape([120])), common::host(want.reshape([120])));
                if matches!(config, ModelConfig::ResNet18(_)) {
                    // a 0.3 perturbation of a 2-channel ResNet without batch statistics (eval
                    // mode) drives its logits to ~700: rounding is relative to that scale
                    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
                    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                        assert!((x - y).abs() <= 1e-5 * scale, "{what}[{i}]: {x} vs {y}");
                    }
                } else {
                    close(&got, &want, 1e-5, &what);
                }
                close(&losses[j..j + 1], &[loss], 1e-6, &format!("{what} loss"));
            }
        }
    }
}

#[test]
fn stacked_forward_mode_matches_one_direction_at_a_time() {
    let noise = NoiseStream::new(8, 0, 2);
    let probes = [(0u32, 1.0f32), (3, 0.5), (1, -1.0)];
    let k = probes.len();
    for config in stackable() {
        let (model, layout, b) = setup(&config, 12);
        let dirs = direction_stack(&model, &layout, noise, &probes);
        for train in [true, false] {
            let fresh = || if train { ForwardCtx::train() } else { ForwardCtx::eval() };
            let mut ctx = fresh();
            let duals = model.forward_jvp_stacked(&dirs, &b.input, &mut ctx).unwrap();
            let primal = common::host(duals.primal.clone().reshape([120]));
            let tangents = common::host(duals.tangents.clone().unwrap().reshape([k * 120]));
            let (loss, dloss) = layers::cross_entropy(duals, &b.targets, k);
            let (loss, dloss) = (loss.into_scalar::<f32>(), common::host(dloss));
            for (j, &(d, scale)) in probes.iter().enumerate() {
                let dir = direction_stack(&model, &layout, noise, &[(d, scale)]);
                let mut single_ctx = fresh();
                let one = model.forward_jvp_stacked(&dir, &b.input, &mut single_ctx).unwrap();
                assert_eq!(ctx.batch_stats.len(), single_ctx.batch_stats.len());
                for (a, b) in ctx.batch_stats.iter().zip(&single_ctx.batch_stats) {
                    assert_eq!((a.mean_id, a.var_id), (b.mean_id, b.var_id));
                }
                let what = format!("{} train={train} direction {j}", config.name());
                close(&primal, &common::host(one.primal.clone().reshape([120])), 1e-5, &what);
                let want = common::host(one.tangents.clone().unwrap().reshape([120]));
                let scale_t = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (x, y)) in tangents[j * 120..(j + 1) * 120].iter().zip(&want).enumerate() {
                    assert!((x - y).abs() <= 1e-4 * scale_t, "{what} tangent[{i}]: {x} vs {y}");
                }
                let (l1, dl1) = layers::cross_entropy(one, &b.targets, 1);
                close(&[loss], &[l1.into_scalar::<f32>()], 1e-6, &format!("{what} loss"));
                let dl1 = dl1.into_scalar::<f32>();
                assert!(
                    (dloss[j] - dl1).abs() <= 1e-4 * (1e-3 + dl1.abs()),
                    "{what}: u·∇F stacked {} vs single {dl1}",
                    dloss[j]
                );
            }
        }
    }
}

fn coefficients(e: &Estimate) -> Vec<f32> {
    match &e.gradient {
        Gradient::Seeded(s) => s.coefficients.clone(),
        Gradient::Dense(_) => panic!("seeded estimate expected"),
    }
}

#[test]
fn estimators_give_the_same_estimate_stacked_or_not() {
    let g = Direction::Gaussian;
    // Each with the largest difference between stacked and one-at-a-time coefficients it may
    // show, relative to the largest coefficient. Stacked losses agree with single ones to float
    // summation order (~1e-7 relative, `stacked_logits_and_losses_match_one_replica_at_a_time`);
    // a coefficient amplifies that by |L|/(|ΔL|): measured (logistic, MLP, CNN) ≤ 1e-5 for the
    // forward difference (ΔL ≈ ν·|∇L·u|); ≤ 7.5e-4 for the central difference with sphere
    // directions, whose unit-norm u moves the loss √d times less than a Gaussian u; ≤ 7e-5 for
    // debiased (radii down to ν·c^{n−1}, weighed by 1/p_n); ≤ 1.2e-7 for forward gradients (no
    // loss difference at all: one shared primal, tangents by forward mode). Tolerances: about 3×.
    let estimators: Vec<(Box<dyn Estimator>, f32)> = vec![
        (Box::new(ForwardDifference { rv: 5, nu: 1e-2, direction: g }), 3e-5),
        (Box::new(CentralDifference { rv: 3, nu: 1e-2, direction: Direction::Sphere }), 2e-3),
        (Box::new(Debiased { rv: 4, nu: 0.2, ratio: 0.5, direction: g }), 2e-4),
        (Box::new(ForwardGradient { rv: 5, projection: Projection::Global, direction: g }), 4e-7),
    ];
    for config in stackable() {
        let (model, layout, b) = setup(&config, 8);
        for (est, tol) in &estimators {
            let run = |stack: usize| {
                let noise = NoiseStream::new(1, 2, 3);
                est.estimate(StepInput {
                    model: &model,
                    batch: &b,
                    layout: &layout,
                    noise,
                    stack,
                    batcher: None,
                })
                .unwrap()
            };
            let single = run(1);
            // 2 does not divide the probe count: the last stack is partial
            for stack in [2, 64] {
                let stacked = run(stack);
                assert_eq!(stacked.forward_passes, single.forward_passes);
                assert_eq!(stacked.loss, single.loss);
                let (a, b) = (coefficients(&stacked), coefficients(&single));
                let scale = b.iter().fold(0f32, |m, c| m.max(c.abs()));
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= depth_factor(&config) * tol * scale,
                        "{} stack {stack}: coefficient {x} vs {y}",
                        config.name()
                    );
                }
            }
        }
    }
}

/// An experiment from `keys` plus `zo.stack = stack`.
fn experiment(keys: &[&str], stack: usize) -> Experiment {
    let mut sets: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sets.push(format!("zo.stack={stack}"));
    Experiment::new(ExperimentConfig::from_toml("", &sets).unwrap()).unwrap()
}

/// Brackets keys of a tiny Transformer population (1 ZO node unless overridden).
const BRACKETS: [&str; 8] = [
    "data.dataset=\"brackets\"",
    "data.brackets.train=64",
    "data.brackets.validation=16",
    "data.brackets.max_len=8",
    "model.kind=\"transformer\"",
    "population.fo=0",
    "zo.batch_size=8",
    "steps=2",
];

/// Every node's parameters after two rounds of the tiny Brackets population with `extra` keys.
fn brackets_params(extra: &[&str], stack: usize) -> Vec<f32> {
    let keys: Vec<&str> = BRACKETS.iter().chain(extra).copied().collect();
    let mut exp = experiment(&keys, stack);
    let train = exp.data.train.clone();
    let all: Vec<usize> = (0..exp.population.len()).collect();
    exp.population.step(&all, &train, 0, false).unwrap();
    exp.population.step(&all, &train, 0, false).unwrap();
    common::all_params(&exp)
}

#[test]
fn the_transformer_stacks_with_the_dropout_masks_of_one_replica() {
    // stacked logits equal each copy's own pass — with the step's dropout masks in training
    // mode — for every pooling
    let noise = NoiseStream::new(2, 0, 1);
    let probes = [(0u32, 1e-2f32), (1, -2e-2), (4, 0.3)];
    for pooling in ["flatten", "mean", "last"] {
        let pool = format!("model.pooling=\"{pooling}\"");
        let keys: Vec<&str> = BRACKETS.iter().copied().chain([pool.as_str()]).collect();
        let exp = experiment(&keys, 1);
        let (model, layout) = (&exp.population.nodes[0].model, &exp.population.layout);
        let model = hdo_core::init::initialize(model.clone(), layout, 9);
        let b = exp.data.train.batch(&(0..8).collect::<Vec<_>>(), &Device::flex());
        let stack = perturbed_stack(&model, layout, noise, &probes);
        for train in [true, false] {
            let fresh = || if train { ForwardCtx::train_seeded(77) } else { ForwardCtx::eval() };
            let logits =
                model.forward_stacked(&stack, StackInput::Shared(&b.input), &fresh()).unwrap();
            assert_eq!(logits.dims(), [3, 8, 2]);
            for (j, &(k, scale)) in probes.iter().enumerate() {
                let want =
                    perturbed(&model, layout, noise, k, scale).forward(&b.input, &mut fresh());
                let got: Tensor<2> = logits.clone().narrow(0, j, 1).reshape([8, 2]);
                close(
                    &common::host(got.reshape([16])),
                    &common::host(want.reshape([16])),
                    1e-5,
                    &format!("transformer {pooling} train={train} member {j}"),
                );
            }
        }
    }
}

#[test]
fn transformer_populations_train_alike_stacked_batched_or_not() {
    // forward differences stack (dropout masks shared by a node's copies); with dropout, nodes
    // are not batched across (their masks differ), so `batch_nodes` falls back to per-node
    // stacks exactly; without dropout they are batched
    let zo3 = ["population.zo=3", "zo.rv=3", "zo.nu=1e-2"];
    let one_at_a_time = brackets_params(&zo3, 1);
    close(&brackets_params(&zo3, 4), &one_at_a_time, 1e-4, "stacked");
    let batched: Vec<&str> = zo3.iter().copied().chain(["zo.batch_nodes=true"]).collect();
    assert_eq!(brackets_params(&batched, 4), brackets_params(&zo3, 4), "dropout: no batching");
    let no_dropout: Vec<&str> = zo3.iter().copied().chain(["model.dropout=0.0"]).collect();
    let batched: Vec<&str> = no_dropout.iter().copied().chain(["zo.batch_nodes=true"]).collect();
    close(&brackets_params(&batched, 4), &brackets_params(&no_dropout, 1), 1e-4, "batched");
}

#[test]
fn the_transformers_stacked_forward_mode_matches_one_direction_at_a_time() {
    let noise = NoiseStream::new(6, 1, 3);
    let probes = [(0u32, 1.0f32), (2, 0.5), (5, -1.0)];
    let k = probes.len();
    for pooling in ["flatten", "mean", "last"] {
        let pool = format!("model.pooling=\"{pooling}\"");
        let keys: Vec<&str> = BRACKETS.iter().copied().chain([pool.as_str()]).collect();
        let exp = experiment(&keys, 1);
        let layout = &exp.population.layout;
        let model = hdo_core::init::initialize(exp.population.nodes[0].model.clone(), layout, 3);
        let b = exp.data.train.batch(&(0..8).collect::<Vec<_>>(), &Device::flex());
        let dirs = direction_stack(&model, layout, noise, &probes);
        for train in [true, false] {
            let fresh = || if train { ForwardCtx::train_seeded(5) } else { ForwardCtx::eval() };
            let duals = model.forward_jvp_stacked(&dirs, &b.input, &mut fresh()).unwrap();
            let tangents = common::host(duals.tangents.clone().unwrap().reshape([k * 16]));
            let primal = common::host(duals.primal.clone().reshape([16]));
            let (_, dloss) = layers::cross_entropy(duals, &b.targets, k);
            let dloss = common::host(dloss);
            for (j, &(d, scale)) in probes.iter().enumerate() {
                let dir = direction_stack(&model, layout, noise, &[(d, scale)]);
                let one = model.forward_jvp_stacked(&dir, &b.input, &mut fresh()).unwrap();
                let what = format!("transformer {pooling} train={train} direction {j}");
                close(&primal, &common::host(one.primal.clone().reshape([16])), 1e-5, &what);
                let want = common::host(one.tangents.clone().unwrap().reshape([16]));
                let scale_t = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (x, y)) in tangents[j * 16..(j + 1) * 16].iter().zip(&want).enumerate() {
                    assert!((x - y).abs() <= 1e-4 * scale_t, "{what} tangent[{i}]: {x} vs {y}");
                }
                let dl1 = layers::cross_entropy(one, &b.targets, 1).1.into_scalar::<f32>();
                assert!(
                    (dloss[j] - dl1).abs() <= 1e-4 * (1e-3 + dl1.abs()),
                    "{what}: u·∇F stacked {} vs single {dl1}",
                    dloss[j]
                );
            }
        }
    }
    // and a population's forward-gradient steps: stacked as one at a time
    let fg = ["population.zo=2", "zo.rv=3", "zo.estimator=\"forward_gradient\""];
    close(&brackets_params(&fg, 4), &brackets_params(&fg, 1), 1e-4, "forward-gradient steps");
}

#[test]
fn a_stacked_population_trains_like_the_one_at_a_time_population() {
    // the whole path: config key, nodes, estimator, optimizer — on the CNN with BatchNorm
    let run = |stack: usize| {
        let mut exp = experiment(
            &[
                "model.kind=\"cnn\"",
                "model.channels=[2,3,4]",
                "model.hidden=[8]",
                "population.fo=1",
                "population.zo=2",
                "zo.batch_size=8",
                "fo.batch_size=8",
                "zo.rv=6",
                "zo.nu=1e-2",
                "steps=3",
                "eval_every=3",
                "data.eval_limit=100",
            ],
            stack,
        );
        let dir = tempfile::tempdir().unwrap();
        let rows = exp.run(dir.path(), &mut |_| {}).unwrap();
        (rows, common::all_params(&exp))
    };
    let ((one, p1), (stacked, p4)) = (run(1), run(4));
    let (a, b) = (one.last().unwrap(), stacked.last().unwrap());
    assert_eq!(a.forward_passes, b.forward_passes);
    // every parameter and running statistic of every node: the stacked pass groups the CNN's
    // convolutions and sums in another order (≈ 1e-7 relative per loss), and a ZO coefficient
    // divides a loss difference by ν = 1e-2, so three steps leave differences near 1e-6
    close(&p4, &p1, 1e-5, "parameters after 3 rounds");
    assert!(
        (a.mean_val_loss - b.mean_val_loss).abs() < 1e-5,
        "{} vs {}",
        a.mean_val_loss,
        b.mean_val_loss
    );
}

#[test]
fn nodes_batched_together_get_the_losses_of_their_own_copies_on_their_own_batches() {
    // three nodes with different parameters, batches and numbers of copies, one of them with no
    // request at all: each must get exactly what evaluating its copies alone gives
    use hdo_core::batcher::Batcher;
    let split = mnist::bundled(2000).unwrap();
    for config in stackable() {
        let (_, layout, _) = setup(&config, 6);
        type Node = (Model, Batch, NoiseStream, Vec<(u32, f32)>);
        let nodes: Vec<Node> = (0..4usize)
            .map(|i| {
                let (mut model, _, _) = setup(&config, 6);
                model = hdo_core::init::initialize(model, &layout, 10 + i as u64);
                let rows: Vec<usize> = (i * 6..i * 6 + 6).collect();
                let b = batch(&split.train, &rows, &Device::flex());
                let probes: Vec<(u32, f32)> =
                    (0..[2, 3, 1, 0][i]).map(|k| (k as u32, 0.05 * (k as f32 + 1.0))).collect();
                (model, b, NoiseStream::new(5, i as u64, 1), probes)
            })
            .collect();
        // one joint pass, and one pass per node (a limit below any request)
        for batcher in [Batcher::new(), Batcher::with_limit(1)] {
            let memberships: Vec<_> = nodes.iter().map(|_| batcher.join()).collect();
            let got: Vec<Vec<f32>> = std::thread::scope(|s| {
                let threads: Vec<_> = nodes
                    .iter()
                    .zip(memberships)
                    .enumerate()
                    .map(|(i, ((model, b, noise, probes), membership))| {
                        let (batcher, layout) = (&batcher, &layout);
                        s.spawn(move || {
                            let _membership = membership;
                            if probes.is_empty() {
                                return Vec::new();
                            }
                            let stack = perturbed_stack(model, layout, *noise, probes);
                            batcher.losses(i, model, stack, b).unwrap()
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            for (i, (model, b, noise, probes)) in nodes.iter().enumerate() {
                let want: Vec<f32> = probes
                    .iter()
                    .map(|&(k, scale)| {
                        let copy = perturbed(model, &layout, *noise, k, scale);
                        let logits = copy.forward(&b.input, &mut ForwardCtx::train());
                        cross_entropy(logits, &b.targets).into_scalar::<f32>()
                    })
                    .collect();
                close(&got[i], &want, 1e-5, &format!("{} node {i}", config.name()));
            }
        }
    }
}

#[test]
fn a_population_batched_across_nodes_trains_like_node_by_node() {
    // debiased draws a different number of copies per node and step, so nodes make different
    // numbers of requests: the rendezvous must still hand each its own losses. The logistic
    // model's batched pass is bit-identical; the CNN's grouped first convolution sums in another
    // order, and debiased divides loss differences by radii down to ν·c^j, which amplifies that
    // rounding (as in `estimators_give_the_same_estimate_stacked_or_not`).
    let cnn = &["model.kind=\"cnn\"", "model.channels=[2,3,4]", "model.hidden=[8]"][..];
    let logistic = &["model.kind=\"logistic\""][..];
    for (model, estimator, nu, tol) in [
        (logistic, "debiased", 1e-2, 0.0),
        (cnn, "forward_difference", 1e-2, 1e-5),
        // measured 7.7e-3 on an AVX2 machine: a level-n direction weighs its loss difference
        // by 1/(μ_n·p_n), ≈ 600 at n = 4, so rounding of 1e-7 in a loss moves a coefficient by
        // ~1e-4 and three steps of it through momentum and gossip compound (see the comment above)
        (cnn, "debiased", 0.2, 2e-2),
    ] {
        let run = |batch_nodes: bool| {
            let mut keys: Vec<String> = model.iter().map(|k| k.to_string()).collect();
            keys.extend([
                format!("zo.estimator=\"{estimator}\""),
                format!("zo.batch_nodes={batch_nodes}"),
                format!("zo.nu={nu}"),
            ]);
            keys.extend(
                [
                    "population.fo=1",
                    "population.zo=3",
                    "zo.batch_size=8",
                    "fo.batch_size=8",
                    "zo.rv=5",
                    "steps=3",
                    "eval_every=3",
                    "data.eval_limit=100",
                ]
                .map(String::from),
            );
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut exp = experiment(&keys, 2);
            let dir = tempfile::tempdir().unwrap();
            let rows = exp.run(dir.path(), &mut |_| {}).unwrap();
            (rows.last().unwrap().forward_passes, common::all_params(&exp))
        };
        let (node_by_node, batched) = (run(false), run(true));
        let what = format!("{} {estimator}", model[0]);
        assert_eq!(node_by_node.0, batched.0, "{what}: forward passes");
        close(&batched.1, &node_by_node.1, tol, &format!("{what}: parameters"));
    }
}
