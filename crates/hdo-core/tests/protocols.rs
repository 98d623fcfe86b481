//! Rounds as operations: simultaneous mixing, pulls, graph protocols (D-PSGD, D-POEM), HO-SGD,
//! their byte counts, and the linear model on LIBSVM and binary MNIST data.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use common::{all_params, resumes_exactly, tiny};
use hdo_core::checkpoint::Checkpoint;
use hdo_core::{Experiment, params};
use hdo_gossip::{Op, Pull, Quantity, Row, Slot};

/// An experiment after two local steps on every node, so that replicas differ.
fn stepped(nodes: usize) -> Experiment {
    let mut exp = Experiment::new(tiny(0, nodes, &[])).unwrap();
    let train = exp.data.train.clone();
    let all: Vec<usize> = (0..nodes).collect();
    for _ in 0..2 {
        exp.population.step(&all, &train, 3, false).unwrap();
    }
    exp
}

fn node_params(exp: &Experiment, i: usize) -> Vec<f32> {
    params::collect(&exp.population.nodes[i].model).into_iter().flat_map(common::host).collect()
}

fn pair_row(target: usize, a: usize, b: usize) -> Row {
    Row { target: Slot::Node(target), weights: vec![(Slot::Node(a), 0.5), (Slot::Node(b), 0.5)] }
}

#[test]
fn simultaneous_mixing_equals_pair_averaging_on_disjoint_rows_only() {
    // disjoint rows: the same bits as the pair mean ((a + b)/2 = a/2 + b/2 exactly in f32)
    let (mut mixed, mut averaged) = (stepped(4), stepped(4));
    assert_eq!(all_params(&mixed), all_params(&averaged), "deterministic set-up");
    let rows = vec![pair_row(0, 0, 1), pair_row(1, 0, 1), pair_row(2, 2, 3), pair_row(3, 2, 3)];
    mixed.population.execute(&Op::Mix { rows, quantity: Quantity::Parameters }).unwrap();
    averaged.population.execute(&Op::Average { groups: vec![vec![0, 1], vec![2, 3]] }).unwrap();
    assert_eq!(all_params(&mixed), all_params(&averaged));

    // overlapping rows: node 1 mixes with node 2's value from before the operation, where
    // sequential averaging would feed it node 0 and 1's fresh mean
    let (mut simultaneous, mut sequential) = (stepped(3), stepped(3));
    let before: Vec<Vec<f32>> = (0..3).map(|i| node_params(&simultaneous, i)).collect();
    let rows = vec![pair_row(0, 0, 1), pair_row(1, 1, 2), pair_row(2, 1, 2)];
    simultaneous.population.execute(&Op::Mix { rows, quantity: Quantity::Parameters }).unwrap();
    for g in [vec![0, 1], vec![1, 2]] {
        sequential.population.execute(&Op::Average { groups: vec![g] }).unwrap();
    }
    let expected: Vec<f32> = before[1].iter().zip(&before[2]).map(|(a, b)| (a + b) / 2.0).collect();
    assert_eq!(node_params(&simultaneous, 1), expected);
    assert_eq!(node_params(&simultaneous, 0), node_params(&sequential, 0));
    assert_ne!(node_params(&simultaneous, 1), node_params(&sequential, 1));
}

#[test]
fn mixing_keeps_the_mean_and_pulls_move_toward_their_target() {
    let mut exp = stepped(5);
    let mean = |exp: &Experiment| -> Vec<f64> {
        let per: Vec<Vec<f32>> = (0..5).map(|i| node_params(exp, i)).collect();
        (0..per[0].len()).map(|k| per.iter().map(|p| p[k] as f64).sum::<f64>() / 5.0).collect()
    };
    let before = mean(&exp);
    let spec = hdo_gossip::topology::GraphSpec {
        kind: hdo_gossip::topology::TopologyKind::Ring,
        p: 0.0,
        edges_file: None,
        weights: hdo_gossip::topology::Weights::Metropolis,
        redraw: false,
    };
    let graph = hdo_gossip::topology::Graph::build(&spec, 5, 0).unwrap();
    let w = hdo_gossip::topology::Mixing::new(&graph, spec.weights);
    let gamma = exp.population.consensus();
    exp.population.execute(&w.op(Quantity::Parameters)).unwrap();
    for (a, b) in mean(&exp).iter().zip(&before) {
        assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "mean moved: {a} vs {b}");
    }
    assert!(exp.population.consensus() < gamma);

    // an auxiliary vector (the initial model) and a pull of strength 1/4 toward it
    exp.population.aux.push(exp.population.origin.clone());
    let x0: Vec<f32> = exp.population.origin.iter().cloned().flat_map(common::host).collect();
    let x = node_params(&exp, 2);
    let pull = Pull { node: Slot::Node(2), toward: Slot::Aux(0), strength: 0.25 };
    let op = Op::Pull { pulls: vec![pull] };
    assert_eq!(op.values_sent(&exp.population), x.len() as u64);
    exp.population.execute(&op).unwrap();
    for ((after, x), y) in node_params(&exp, 2).iter().zip(&x).zip(&x0) {
        let want = x - 0.25 * (x - y);
        assert!((after - want).abs() <= 1e-6 * (1.0 + want.abs()), "{after} vs {want}");
    }
}

#[test]
fn dpsgd_mixes_hybrid_populations_with_exact_traffic() {
    let dir = tempfile::tempdir().unwrap();
    // 2 FO + 3 ZO on a ring: 5 edges, 10 parameter vectors of 7850 floats per round
    let cfg = tiny(2, 3, &["protocol.kind=\"dpsgd\"", "protocol.topology=\"ring\"", "steps=4"]);
    let mut exp = Experiment::new(cfg).unwrap();
    let d = exp.describe().unwrap();
    let graph = d.graph.clone().expect("a graph protocol describes its graph");
    assert_eq!((graph.topology, graph.nodes, graph.edges), ("ring", 5, 5));
    let gap = graph.spectral_gap.unwrap();
    // ring of 5 with Metropolis weights 1/3: λ₂ = 1/3 + 2/3·cos(2π/5)
    let want = 1.0 - (1.0 / 3.0 + 2.0 / 3.0 * (2.0 * std::f64::consts::PI / 5.0).cos());
    assert!((gap - want).abs() < 1e-9, "{gap} vs {want}");
    assert_eq!(d.bytes_per_round, 10 * 7850 * 4);
    assert!(d.to_string().contains("spectral gap"));
    let records = exp.run(dir.path(), &mut |_| {}).unwrap();
    let last = records.last().unwrap();
    assert_eq!(last.bytes_sent, 4 * 10 * 7850 * 4);
    assert_eq!(last.backward_passes, 4 * 2);
    assert!(last.consensus > 0.0 && last.consensus.is_finite());
    let meta = std::fs::read_to_string(dir.path().join("graph.toml")).unwrap();
    assert!(meta.contains("topology = \"ring\"") && meta.contains("spectral_gap"), "{meta}");

    // a redrawn Erdős–Rényi graph: same seed, same run
    let er = || {
        tiny(
            0,
            6,
            &[
                "protocol.kind=\"dpsgd\"",
                "protocol.topology=\"erdos_renyi\"",
                "protocol.p=0.5",
                "protocol.redraw=true",
                "steps=3",
            ],
        )
    };
    let run = |dir: &std::path::Path| Experiment::new(er()).unwrap().run(dir, &mut |_| {}).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ra, rb) = (run(a.path()), run(b.path()));
    assert_eq!(ra.last().unwrap().mean_val_loss, rb.last().unwrap().mean_val_loss);
    assert_eq!(ra.last().unwrap().bytes_sent, rb.last().unwrap().bytes_sent);
}

#[test]
fn graph_settings_that_cannot_work_are_named_errors() {
    for (sets, key) in [
        (
            vec!["protocol.kind=\"dpsgd\"", "protocol.topology=\"erdos_renyi\"", "protocol.p=0"],
            "protocol.p",
        ),
        (vec!["protocol.kind=\"dpsgd\"", "protocol.topology=\"file\""], "protocol.edges_file"),
        (vec!["protocol.kind=\"dpoem\"", "protocol.radius=0"], "protocol.radius"),
        (vec!["protocol.kind=\"hosgd\""], "population.zo"),
        (vec!["protocol.kind=\"dpoem\"", "zo.estimator=\"forward_gradient\""], "zo.estimator"),
    ] {
        let e = match hdo_core::ExperimentConfig::from_toml(
            "",
            &["population.zo=4".to_string()]
                .into_iter()
                .chain(sets.iter().map(|s| s.to_string()))
                .collect::<Vec<_>>(),
        ) {
            Ok(cfg) => Experiment::new(cfg).err().expect("must fail").to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(key), "{sets:?}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let edges = dir.path().join("edges.txt");
    std::fs::write(&edges, "0 1\n1 2\n2 x\n").unwrap();
    let set = format!("protocol.edges_file=\"{}\"", edges.display());
    let cfg = tiny(0, 3, &["protocol.kind=\"dpsgd\"", "protocol.topology=\"file\"", &set]);
    let e = Experiment::new(cfg).err().expect("bad edge list").to_string();
    assert!(e.contains("edges.txt") && e.contains("line 3"), "{e}");
    std::fs::write(&edges, "0 1\n1 2\n").unwrap();
    let cfg = tiny(0, 3, &["protocol.kind=\"dpsgd\"", "protocol.topology=\"file\"", &set]);
    let d = Experiment::new(cfg).unwrap().describe().unwrap();
    assert_eq!(d.graph.unwrap().edges, 2);
}

/// HO-SGD with 4 workers, τ = 3, one sphere direction per ZO iteration.
fn hosgd(extra: &[&str]) -> hdo_core::ExperimentConfig {
    let mut sets = vec![
        "protocol.kind=\"hosgd\"",
        "protocol.period=3",
        "zo.rv=1",
        "zo.direction=\"sphere\"",
        "fo.lr=0.001",
        "steps=6",
    ];
    sets.extend_from_slice(extra);
    tiny(4, 0, &sets)
}

#[test]
fn hosgd_replicas_stay_bit_identical_and_send_d_plus_tau_minus_one_scalars() {
    let dir = tempfile::tempdir().unwrap();
    let mut exp = Experiment::new(hosgd(&[])).unwrap();
    let records = exp.run(dir.path(), &mut |_| {}).unwrap();
    let first = node_params(&exp, 0);
    assert_ne!(
        first,
        exp.population.origin.iter().cloned().flat_map(common::host).collect::<Vec<_>>()
    );
    for i in 1..4 {
        assert_eq!(node_params(&exp, i), first, "replica {i} drifted");
    }
    let last = records.last().unwrap();
    // rounds 0..6, τ = 3: first-order at 0 and 3 (d = 7850 values each), ZO at 1, 2, 4, 5
    let per_worker = 2 * (7850 + 3 - 1);
    assert_eq!(last.bytes_sent, 4 * per_worker * 4);
    assert_eq!(last.backward_passes, 2 * 4);
    assert_eq!(last.forward_passes, 2 * 4 + 4 * 4 * 2);
    assert!(last.consensus < 1e-12);

    // τ = 1 is synchronous SGD: all rounds first order; τ = 0 never
    let sync = Experiment::new(hosgd(&["protocol.period=1"])).unwrap();
    let d = sync.describe().unwrap();
    assert_eq!(d.bytes_per_round, 4 * 7850 * 4);
    let zo_only = tempfile::tempdir().unwrap();
    let r =
        Experiment::new(hosgd(&["protocol.period=0"])).unwrap().run(zo_only.path(), &mut |_| {});
    let r = r.unwrap();
    assert_eq!(r.last().unwrap().backward_passes, 0);
    assert_eq!(r.last().unwrap().bytes_sent, 6 * 4 * 4);
}

/// D-POEM on a binary task with the hinge loss: 4 ZO agents on a ring.
fn dpoem(extra: &[&str]) -> hdo_core::ExperimentConfig {
    let mut sets = vec![
        "protocol.kind=\"dpoem\"",
        "model.kind=\"linear\"",
        "model.loss=\"hinge\"",
        "data.binary=true",
        "zo.estimator=\"central_difference\"",
        "zo.direction=\"sphere\"",
        "zo.rv=2",
        "steps=8",
        "eval_every=4",
    ];
    sets.extend_from_slice(extra);
    tiny(0, 4, &sets)
}

#[test]
fn dpoem_has_no_learning_rate_and_is_scale_free() {
    let run = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut exp = Experiment::new(dpoem(extra)).unwrap();
        let records = exp.run(dir.path(), &mut |_| {}).unwrap();
        (all_params(&exp), records)
    };
    let (base, records) = run(&[]);
    let last = records.last().unwrap();
    assert!(last.avg_iterate_val_loss.is_some_and(f64::is_finite));
    assert!(last.avg_iterate_val_acc.is_some());
    assert!(records[0].avg_iterate_val_loss.is_none(), "nothing averaged at round 0");
    // 4 ring edges: 8 parameter vectors (785 floats) and 8 radii per round
    assert_eq!(last.bytes_sent, 8 * 8 * (785 + 1) * 4);
    // the learning rate is not used at all
    assert_eq!(run(&["zo.lr=0.5"]).0, base);
    // 16 times the loss: a power of two scales every loss, difference, coefficient and ‖g‖
    // exactly, and η = r̄/√G by exactly 1/16, so the iterates are the same bits
    let (sixteen, _) = run(&["model.scale=16"]);
    assert_eq!(sixteen, base);
    // 10 times: the same up to the rounding of 10·F, which f32 loss differences magnify; a
    // larger starting radius (r_ε) keeps the differences well above it
    let wide = ["protocol.r_epsilon=0.5"];
    let (base, _) = run(&wide);
    let (scaled, _) = run(&[wide[0], "model.scale=10"]);
    let exp = Experiment::new(dpoem(&wide)).unwrap();
    let x0: Vec<f32> = exp.population.origin.iter().cloned().flat_map(common::host).collect();
    let x0: Vec<f32> = (0..4).flat_map(|_| x0.iter().copied()).collect();
    let dist = |a: &[f32], b: &[f32]| -> f64 {
        a.iter().zip(b).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>().sqrt()
    };
    let (moved, diff) = (dist(&base, &x0), dist(&base, &scaled));
    assert!(moved > 0.0);
    assert!(diff <= 1e-2 * moved, "‖Δx‖ = {diff} against a distance travelled of {moved}");
    assert_ne!(scaled, base, "the scale did reach the loss");
}

#[test]
fn dpoem_and_hosgd_resume_exactly() {
    for cfg in [dpoem(&["checkpoint_every=2", "eval_every=3"]), hosgd(&["checkpoint_every=2"])] {
        let (end, _) = resumes_exactly(&cfg);
        if cfg.protocol.name() == "dpoem" {
            assert!(
                end.nodes.iter().all(|n| n.dog.0 > 0.0 && n.dog.1 > 0.0 && !n.iterate.is_empty())
            );
        }
    }
}

#[test]
fn a_dropped_node_leaves_the_graph_and_its_weight_stays_with_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(0, 5, &["protocol.kind=\"dpsgd\"", "on_divergence=\"drop\"", "steps=4"]);
    let mut exp = Experiment::new(cfg).unwrap();
    exp.inject_divergence(2, 1);
    let records = exp.run(dir.path(), &mut |_| {}).unwrap();
    assert_eq!(exp.active(), &[true, true, false, true, true]);
    for i in [0, 1, 3, 4] {
        assert!(node_params(&exp, i).iter().all(|v| v.is_finite()), "node {i} poisoned");
    }
    let last = records.last().unwrap();
    assert_eq!(last.active_nodes, 4);
    // round 0: 5 edges; after node 2 left, the path 3–4–0–1: 3 edges
    assert_eq!(last.bytes_sent, (2 * 5 + 3 * 2 * 3) * 7850 * 4);
}

/// A LIBSVM file of a linearly separable binary task: `y = sign(x₁ − x₂)` over 8 sparse features.
fn separable(path: &std::path::Path, n: usize, seed: u64) {
    use std::fmt::Write;
    let mut text = String::new();
    let mut z = seed;
    let mut next = || {
        z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((z >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    for _ in 0..n {
        let x: Vec<f64> = (0..8).map(|_| next()).collect();
        let y = if x[0] > x[1] { "+1" } else { "-1" };
        let _ = write!(text, "{y}");
        for (i, v) in x.iter().enumerate() {
            if i < 2 || v.abs() > 0.5 {
                let _ = write!(text, " {}:{v:.4}", i + 1);
            }
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_linear_model_learns_libsvm_data_with_either_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (dir.path().join("train.svm"), dir.path().join("val.svm"));
    separable(&train, 400, 1);
    separable(&val, 200, 2);
    for loss in ["hinge", "cross_entropy"] {
        let cfg = hdo_core::ExperimentConfig::from_toml(
            "",
            &[
                "data.dataset=\"libsvm\"".to_string(),
                format!("data.train_file=\"{}\"", train.display()),
                format!("data.validation_file=\"{}\"", val.display()),
                "model.kind=\"linear\"".into(),
                format!("model.loss=\"{loss}\""),
                "population.fo=4".into(),
                "population.zo=0".into(),
                "protocol.kind=\"dpsgd\"".into(),
                "fo.lr=0.5".into(),
                "steps=60".into(),
                "eval_every=60".into(),
            ],
        )
        .unwrap();
        let out = dir.path().join(loss);
        let records = Experiment::new(cfg).unwrap().run(&out, &mut |_| {}).unwrap();
        let (first, last) = (&records[0], records.last().unwrap());
        assert!(last.mean_val_acc > 0.9, "{loss}: accuracy {}", last.mean_val_acc);
        assert!(last.mean_val_loss < first.mean_val_loss, "{loss}");
    }
    // held out from the training file instead; a bad line names file and line
    let cfg = hdo_core::ExperimentConfig::from_toml(
        "",
        &[
            "data.dataset=\"libsvm\"".to_string(),
            format!("data.train_file=\"{}\"", train.display()),
            "data.validation_fraction=0.25".into(),
            "population.fo=1".into(),
            "population.zo=0".into(),
            "model.kind=\"linear\"".into(),
        ],
    )
    .unwrap();
    let exp = Experiment::new(cfg.clone()).unwrap();
    assert_eq!((exp.data.train.len(), exp.data.validation.len()), (300, 100));
    std::fs::write(&train, "+1 1:0.5\n-1 2:x\n").unwrap();
    let e = Experiment::new(cfg).err().expect("bad value").to_string();
    assert!(e.contains("train.svm") && e.contains("line 2") && e.contains("`x`"), "{e}");
}

#[test]
fn binary_mnist_and_the_hinge_loss_fit_together_only() {
    // the hinge loss on 10 classes is refused by name
    let e = Experiment::new(tiny(1, 0, &["model.kind=\"linear\"", "model.loss=\"hinge\""]));
    let e = e.err().expect("multiclass hinge").to_string();
    assert!(e.contains("hinge") && e.contains("10 classes"), "{e}");
    let exp = Experiment::new(tiny(
        1,
        0,
        &["model.kind=\"linear\"", "model.loss=\"hinge\"", "data.binary=true"],
    ))
    .unwrap();
    assert_eq!(exp.population.layout.dim, 785);
    let e = hdo_core::ExperimentConfig::from_toml(
        "",
        &["data.binary=true".into(), "data.dataset=\"brackets\"".into()],
    );
    assert!(e.is_err_and(|e| e.to_string().contains("data.binary")));
}

#[test]
fn easgd_elastic_step_matches_its_formula_for_two_workers() {
    let mut exp = stepped(2);
    exp.population.aux.push(exp.population.origin.clone());
    let (x0, x1) = (node_params(&exp, 0), node_params(&exp, 1));
    let c: Vec<f32> = exp.population.origin.iter().cloned().flat_map(common::host).collect();
    let easgd = hdo_gossip::protocol::Easgd { beta: 0.5, period: 1 };
    let op = easgd.elastic(2);
    // each worker to the centre and back
    assert_eq!(op.values_sent(&exp.population), 4 * c.len() as u64);
    exp.population.execute(&op).unwrap();
    let alpha = 0.25f32;
    for k in 0..c.len() {
        let want0 = (1.0 - alpha) * x0[k] + alpha * c[k];
        let want_c = x0[k] * alpha + x1[k] * alpha + c[k] * (1.0 - 2.0 * alpha);
        let got0 = node_params(&exp, 0)[k];
        assert!((got0 - want0).abs() <= 1e-6 * (1.0 + want0.abs()), "{got0} vs {want0}");
        let centre: Vec<f32> =
            exp.population.aux[0].iter().cloned().flat_map(common::host).collect();
        assert!(
            (centre[k] - want_c).abs() <= 1e-6 * (1.0 + want_c.abs()),
            "{} vs {want_c}",
            centre[k]
        );
        if k > 20 {
            break;
        }
    }
}

#[test]
fn lsgd_without_pull_is_independent_sgd_and_easgd_and_lsgd_train_and_resume() {
    let run = |sets: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut exp = Experiment::new(tiny(2, 2, sets)).unwrap();
        exp.run(dir.path(), &mut |_| {}).unwrap();
        all_params(&exp)
    };
    let none = run(&["protocol.kind=\"none\""]);
    let lsgd0 = run(&["protocol={kind=\"lsgd\", lambda=0.0, lambda_global=0.0}"]);
    assert_eq!(lsgd0, none, "λ = λ_G = 0 is independent SGD, bit for bit");
    let lsgd = run(&["protocol={kind=\"lsgd\", groups=2, k=3, tau=2, tau_global=3}"]);
    assert_ne!(lsgd, none);
    for cfg in [
        tiny(2, 2, &["protocol={kind=\"lsgd\", groups=2, k=3, tau=2}", "checkpoint_every=2"]),
        tiny(2, 2, &["protocol={kind=\"easgd\", beta=0.5, period=2}", "checkpoint_every=2"]),
    ] {
        let (end_a, _) = resumes_exactly(&cfg);
        let dir = tempfile::tempdir().unwrap();
        let records = Experiment::new(cfg.clone()).unwrap().run(dir.path(), &mut |_| {}).unwrap();
        let centre = records.last().unwrap().centre_val_loss;
        match cfg.protocol.name() {
            "easgd" => {
                assert_eq!(end_a.aux.len(), 1, "the centre is checkpointed");
                // the centre is its own point: neither the initial model nor the workers' mean
                let last = records.last().unwrap();
                assert!(centre.is_some_and(
                    |c| c != last.mean_model_val_loss && c != records[0].mean_val_loss
                ));
            }
            _ => assert_eq!(centre, None, "LSGD has no centre"),
        }
        match cfg.protocol.name() {
            "easgd" => {}
            _ => assert!(end_a.run.losses.iter().all(|l| l.len() == 3), "k = 3 losses kept"),
        }
    }
}

#[test]
fn sign_sgd_works_for_first_order_nodes() {
    // signSGD: an FO node with `sign` moves every trainable parameter by exactly lr (or not at
    // all where the gradient is 0), through autodiff replicas
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(1, 0, &["fo.sign=true", "fo.lr=0.01", "steps=1", "protocol.kind=\"none\""]);
    let mut exp = Experiment::new(cfg).unwrap();
    let before = node_params(&exp, 0);
    exp.run(dir.path(), &mut |_| {}).unwrap();
    let after = node_params(&exp, 0);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(moved > before.len() / 2, "{moved} of {} moved", before.len());
    for (a, b) in before.iter().zip(&after) {
        let d = (a - b).abs();
        assert!(d == 0.0 || (d - 0.01).abs() < 1e-6, "moved by {d}");
    }
}

#[test]
fn zofo_and_fozo_switch_at_the_configured_step_and_count_passes() {
    // one FO node, 6 steps, switch at 3; the ZO phase: forward differences with rv 4 (5 passes)
    for (schedule, zo_rounds) in [("zofo", 0..3), ("fozo", 3..6)] {
        let dir = tempfile::tempdir().unwrap();
        let set = format!("fo.order_schedule=\"{schedule}\"");
        let cfg = tiny(1, 0, &[&set, "fo.switch_at=0.5", "eval_every=1", "protocol.kind=\"none\""]);
        let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
        for w in records.windows(2) {
            let round = w[0].round;
            let (df, db) = (
                w[1].forward_passes - w[0].forward_passes,
                w[1].backward_passes - w[0].backward_passes,
            );
            let zo = zo_rounds.contains(&round);
            assert_eq!((df, db), if zo { (5, 0) } else { (1, 1) }, "{schedule} round {round}");
        }
    }
    // each phase has its own optimizer (lr, momentum): zofo switches at step 2 (the checkpoint's
    // step, so the restored momentum is the FO optimizer's), fozo at 3 (after it)
    let phases =
        ["fo.lr=0.05", "fo.momentum=0.9", "zo.lr=0.01", "zo.momentum=0.5", "checkpoint_every=2"];
    for (schedule, at) in [("zofo", "fo.switch_at=0.25"), ("fozo", "fo.switch_at=0.5")] {
        let set = format!("fo.order_schedule=\"{schedule}\"");
        let mut sets = vec![set.as_str(), at];
        sets.extend_from_slice(&phases);
        let (end, _) = resumes_exactly(&tiny(1, 0, &sets));
        assert!(end.nodes[0].velocity.iter().all(Option::is_some), "{schedule}");
    }
    let e = hdo_core::ExperimentConfig::from_toml("", &["zo.order_schedule=\"zofo\"".into()]);
    assert!(e.is_err_and(|e| e.to_string().contains("zo.order_schedule")));
    let e = hdo_core::ExperimentConfig::from_toml("", &["fo.switch_at=1.5".into()]);
    assert!(e.is_err_and(|e| e.to_string().contains("fo.switch_at")));
}

#[test]
fn downpour_without_delay_is_synchronous_sgd_on_the_server_and_staleness_resumes_exactly() {
    // round 0, no delay: the server takes every worker's gradient at x_0, one after another
    let cfg = |extra: &[&str]| {
        let mut sets = vec!["protocol={kind=\"downpour\", server_lr=0.05}", "steps=1"];
        sets.extend_from_slice(extra);
        tiny(3, 0, &sets)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut exp = Experiment::new(cfg(&[])).unwrap();
    let records = exp.run(dir.path(), &mut |_| {}).unwrap();
    let mut probe = Experiment::new(cfg(&[])).unwrap();
    let train = probe.data.train.clone();
    let (oracle, smoothing) = (hdo_gossip::Oracle::Own, hdo_gossip::Smoothing::Configured);
    probe.population.estimate(&[0, 1, 2], oracle, smoothing, &train, 0, false).unwrap();
    let layout = probe.population.layout.clone();
    let device = probe.population.plain_device();
    let mut server: Vec<Vec<f32>> =
        probe.population.origin.iter().cloned().map(common::host).collect();
    for w in 0..3 {
        let p = probe.population.pending[w].as_ref().unwrap();
        for (k, info) in layout.tensors.iter().enumerate() {
            if let Some(l) = info.trainable {
                let g = common::host(p.gradient.tensor(l, info, &device));
                for (x, g) in server[k].iter_mut().zip(g) {
                    *x -= g * 0.05;
                }
            }
        }
    }
    let server: Vec<f32> = server.into_iter().flatten().collect();
    for w in 0..3 {
        assert_eq!(node_params(&exp, w), server, "worker {w} pulled the server");
    }
    // 3 pushes of d = 7850 and 3 pulls of 7850 floats
    assert_eq!(records.last().unwrap().bytes_sent, 2 * 3 * 7850 * 4);
    // staleness: deterministic, and a run resumed with estimates in flight ends as the whole run
    let stale =
        tiny(2, 2, &["protocol={kind=\"downpour\", max_delay=2, period=2}", "checkpoint_every=2"]);
    resumes_exactly(&stale);
    let mut mid = Experiment::new(stale.clone()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut queued = 0;
    let mut peek = |e: hdo_core::Event<'_>| {
        // the round-3 event comes before the round-4 checkpoint: the round-2 one is on disk
        if let hdo_core::Event::Round { round: 3, .. } = e {
            queued = Checkpoint::read(&d.path().join("checkpoint.bin")).unwrap().queue.len();
        }
    };
    mid.run(d.path(), &mut peek).unwrap();
    assert!(queued > 0, "estimates in flight at the round-2 checkpoint");
}

#[test]
fn downpour_pulls_the_servers_parameters_and_leaves_each_workers_running_statistics() {
    // a CNN has BatchNorm: the server applies gradients only, so its running statistics are the
    // initial ones. A worker's discarded step must still fold its batch statistics in, and a
    // pull must not overwrite them (either would evaluate every worker with untrained ones)
    let cfg = tiny(
        2,
        0,
        &[
            "protocol={kind=\"downpour\", server_lr=0.01}",
            "steps=3",
            "model={kind=\"cnn\", channels=[2, 2, 2], hidden=[4]}",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut exp = Experiment::new(cfg).unwrap();
    let records = exp.run(dir.path(), &mut |_| {}).unwrap();
    let layout = exp.population.layout.clone();
    let server: Vec<Vec<f32>> = exp.population.aux[0].iter().cloned().map(common::host).collect();
    let statistics: Vec<usize> =
        (0..layout.tensors.len()).filter(|&k| layout.tensors[k].trainable.is_none()).collect();
    assert!(!statistics.is_empty(), "the CNN has running statistics");
    for i in 0..2 {
        let worker: Vec<Vec<f32>> =
            params::collect(&exp.population.nodes[i].model).into_iter().map(common::host).collect();
        for (k, info) in layout.tensors.iter().enumerate() {
            if info.trainable.is_some() {
                assert_eq!(worker[k], server[k], "worker {i} pulled {}", info.path);
            } else {
                assert_ne!(worker[k], server[k], "worker {i} kept its own {}", info.path);
            }
        }
    }
    // the server evaluated with the workers' mean statistics: after the last pull it is the mean
    // model exactly ((a + a)/2 = a); before the first pull it is x_0, unlike the workers
    let last = records.last().unwrap();
    assert_eq!(last.centre_val_loss, Some(last.mean_model_val_loss));
    assert_eq!(last.centre_val_acc, Some(last.mean_model_val_acc));
    assert!(records.iter().all(|r| r.centre_val_loss.is_some()));
    // a pull sends the trainable parameters only: 3 rounds × 2 workers × d, plus 3 × 2 pushes
    let d = layout.dim;
    assert!(layout.total_numel() > d);
    assert_eq!(records.last().unwrap().bytes_sent, 4 * (3 * 2 * d + 3 * 2 * d));
}
