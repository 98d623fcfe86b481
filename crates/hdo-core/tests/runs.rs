//! Whole runs: determinism, outputs, learning, divergence handling.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use hdo_core::checkpoint::Checkpoint;
use hdo_core::{Error, Experiment};
use hdo_gossip::{Context, Kind, ProtocolConfig};

fn strip_time(mut r: Vec<hdo_core::metrics::Record>) -> Vec<hdo_core::metrics::Record> {
    r.iter_mut().for_each(|x| (x.elapsed_s, x.train_s) = (0.0, 0.0));
    r
}

#[test]
fn same_config_and_seed_give_identical_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sub: &str, seed: u64| {
        let cfg = common::tiny(
            2,
            2,
            &[
                &format!("seed={seed}"),
                "model.kind=\"cnn\"",
                "model.channels=[2,2,2]",
                "model.hidden=[8]",
            ],
        );
        strip_time(Experiment::new(cfg).unwrap().run(&dir.path().join(sub), &mut |_| {}).unwrap())
    };
    let a = run("a", 4);
    let b = run("b", 4);
    assert_eq!(a, b);
    assert_ne!(a, run("c", 5));
}

#[test]
fn a_run_writes_every_output_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny(2, 2, &["steps=40", "eval_every=20", "fo.lr=0.05", "zo.lr=0.005"]);
    let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    assert_eq!(records.iter().map(|r| r.round).collect::<Vec<_>>(), vec![0, 20, 40]);
    let (first, last) = (&records[0], &records[2]);
    assert!(
        last.mean_val_loss < first.mean_val_loss - 0.3,
        "{} → {}",
        first.mean_val_loss,
        last.mean_val_loss
    );
    assert!(last.mean_val_acc > 0.6, "accuracy {}", last.mean_val_acc);
    // counters: 2 FO × 40 steps = 80 backward passes; ZO nodes 5 forward passes per step
    assert_eq!(last.backward_passes, 80);
    assert_eq!(last.forward_passes, 80 + 2 * 40 * 5);
    // 2 pairs per round × 2 vectors × 7850 floats × 4 bytes
    assert_eq!(last.bytes_sent, 40 * 2 * 2 * 7850 * 4);
    assert_eq!(last.parallel_time, 40.0 * 2.0 / 4.0);
    assert!(last.fo_val_loss.is_some() && last.zo_val_loss.is_some());
    for f in ["config.toml", "metrics.jsonl", "metrics.csv", "metrics.png"] {
        let p = dir.path().join(f);
        assert!(std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.starts_with("round,parallel_time,mean_val_loss"));
    let jsonl = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let row: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(row["round"], 40);
    let png = std::fs::read(dir.path().join("metrics.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // no temporary files left behind
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );
}

#[test]
fn divergence_stops_with_an_error_naming_the_node_and_keeps_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny(0, 1, &["zo.lr=1e6", "zo.rv=2", "steps=20", "max_loss=50"]);
    let err = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Diverged { node: 0, kind: "zo", .. }), "{err}");
    assert!(err.to_string().contains("zo.lr"));
    assert!(std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap().lines().count() >= 2);
}

#[test]
fn every_protocol_runs_with_its_clock_and_traffic() {
    // 4 logistic nodes (2 FO + 2 ZO), 4 rounds. Message = 7850 floats × 4 bytes.
    let msg = 7850u64 * 4;
    for (kind, parallel_time, steps_per_node, vectors_per_round) in [
        ("matching", 2.0, 4.0, 4u64), // 2 pairs, 2 vectors each
        ("random_pair", 2.0, 4.0, 4), // ⌈4/2⌉ = 2 interactions per round, 2 steps each
        ("all_reduce", 2.0, 4.0, 6),  // ring all-reduce of 4: 2(k−1) vectors
        ("none", 2.0, 4.0, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let set = format!("protocol.kind=\"{kind}\"");
        let cfg = common::tiny(2, 2, &[&set, "steps=4", "eval_every=4"]);
        let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
        let last = records.last().unwrap();
        assert_eq!(last.parallel_time, parallel_time, "{kind}");
        assert_eq!(last.bytes_sent, 4 * vectors_per_round * msg, "{kind}");
        // FO backward passes = FO local steps; on average every node steps once per round
        let fo_steps = last.backward_passes as f64;
        if kind == "random_pair" {
            // exactly the FO nodes' (0 and 1) steps in the protocol's own plans of rounds 0–3
            let proto = ProtocolConfig::RandomPair(Default::default()).build(4, 0).unwrap();
            let seed = hdo_core::experiment::gossip_seed(0);
            let kinds = [Kind::First; 4];
            let losses = vec![Vec::new(); 4];
            let planned: u32 = (0..4)
                .map(|round| {
                    let ctx = Context { round, seed, kinds: &kinds, losses: &losses };
                    proto.plan(&ctx).unwrap().steps_per_node(4)[..2].iter().sum::<u32>()
                })
                .sum();
            assert_eq!(fo_steps, planned as f64, "{kind}");
        } else {
            assert_eq!(fo_steps, 2.0 * steps_per_node, "{kind}");
        }
        if kind == "none" {
            assert!(last.consensus > 0.0);
        }
        if kind == "all_reduce" {
            assert!(last.consensus < 1e-10, "all_reduce leaves Γ = {}", last.consensus);
        }
    }
}

#[test]
fn local_rounds_delay_communication() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny(2, 0, &["steps=4", "eval_every=2", "local_rounds=2"]);
    let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    assert_eq!(records[1].bytes_sent, 0);
    assert_eq!(records[2].bytes_sent, 2 * 2 * 7850 * 4);
}

#[test]
fn diagnostics_show_estimator_quality_improving_with_directions() {
    let cosine = |rv: u32, estimator: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (rv, est) = (format!("zo.rv={rv}"), format!("zo.estimator=\"{estimator}\""));
        let cfg =
            common::tiny(0, 1, &[&rv, &est, "steps=4", "eval_every=4", "diagnostics.every=1"]);
        let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
        assert_eq!(records[0].zo_grad_cosine, None);
        let last = records.last().unwrap();
        (last.zo_grad_cosine.unwrap(), last.zo_grad_norm_ratio.unwrap())
    };
    let (c1, r1) = cosine(1, "forward_gradient");
    let (c64, r64) = cosine(64, "forward_gradient");
    // d = 7850: one Gaussian direction has cosine ≈ 1/√d·…, 64 directions ≈ 8× better
    assert!(c1 > 0.0 && c1 < 0.1, "rv=1 cosine {c1}");
    assert!(c64 > 3.0 * c1, "rv=64 cosine {c64} vs rv=1 {c1}");
    // E‖G‖²/‖∇F‖² = (d + rv + 1)/rv for Gaussian directions: √(7915/64) ≈ 11.1
    assert!((8.0..15.0).contains(&r64), "rv=64 norm ratio {r64} (rv=1: {r1})");
    let (c_sim, _) = cosine(64, "simulated_forward_gradient");
    assert!((c_sim - c64).abs() < 0.1, "the simulation estimates the same thing: {c_sim} vs {c64}");
}

#[test]
fn every_experiment_file_parses_and_expands() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let runs = hdo_core::sweep::expand(&text, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!runs.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} experiment files");
}

#[test]
fn a_resnet_trains_on_a_cifar10_directory_and_a_missing_one_is_named() {
    use hdo_datasets::cifar10::{RECORD, TEST_FILE, TRAIN_FILES};
    let dir = tempfile::tempdir().unwrap();
    // 8 records per file, labels i % 10
    let records: Vec<u8> = (0..8usize)
        .flat_map(|i| {
            std::iter::once((i % 10) as u8)
                .chain((0..RECORD - 1).map(move |j| ((i * 7 + j) % 256) as u8))
        })
        .collect();
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        std::fs::write(dir.path().join(name), &records).unwrap();
    }
    let sets = |data_dir: &std::path::Path| -> Vec<String> {
        vec![
            "data.dataset=\"cifar10\"".into(),
            format!("data.dir=\"{}\"", data_dir.display()),
            "data.normalize=\"imagenet\"".into(),
            "model={kind=\"resnet18\", stem=\"cifar\", width=2}".into(),
            "population.fo=1".into(),
            "population.zo=1".into(),
            "fo.batch_size=4".into(),
            "zo.batch_size=4".into(),
            "steps=2".into(),
            "eval_every=2".into(),
        ]
    };
    let cfg = hdo_core::ExperimentConfig::from_toml("", &sets(dir.path())).unwrap();
    let mut exp = Experiment::new(cfg).unwrap();
    assert_eq!((exp.data.train.len(), exp.data.validation.len()), (40, 8));
    let out = tempfile::tempdir().unwrap();
    let records = exp.run(out.path(), &mut |_| {}).unwrap();
    assert!(records.last().unwrap().mean_val_loss.is_finite());
    // steps = 0: only the round-0 evaluation (how imported weights are checked)
    let mut zero = sets(dir.path());
    zero.push("steps=0".into());
    let cfg = hdo_core::ExperimentConfig::from_toml("", &zero).unwrap();
    let out = tempfile::tempdir().unwrap();
    let records = Experiment::new(cfg).unwrap().run(out.path(), &mut |_| {}).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].round, 0);
    assert!(out.path().join("metrics.csv").is_file());
    std::fs::remove_file(dir.path().join(TRAIN_FILES[3])).unwrap();
    let cfg = hdo_core::ExperimentConfig::from_toml("", &sets(dir.path())).unwrap();
    let e = Experiment::new(cfg).err().expect("a missing file").to_string();
    assert!(e.contains(TRAIN_FILES[3]), "{e}");
}

#[test]
fn a_small_resnet_population_learns_mnist() {
    // a narrow ResNet-18 (CIFAR stem) on the bundled MNIST, 60 rounds of batch 32, 2 FO + 1 ZO
    // (measured: mean model 73% on 256 validation images; 10% at round 0)
    let dir = tempfile::tempdir().unwrap();
    let sets: Vec<String> = [
        "model={kind=\"resnet18\", stem=\"cifar\", width=4}",
        "data.eval_limit=256",
        "population.fo=2",
        "population.zo=1",
        "fo.batch_size=32",
        "zo.batch_size=32",
        "fo.lr=0.05",
        "zo.lr=1e-3",
        "zo.rv=2",
        "zo.stack=2",
        "steps=60",
        "eval_every=60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = hdo_core::ExperimentConfig::from_toml("", &sets).unwrap();
    let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    let (first, last) = (&records[0], records.last().unwrap());
    assert!(
        last.mean_model_val_acc > 0.5 && last.mean_model_val_loss < first.mean_model_val_loss,
        "mean model accuracy {} loss {} (round 0: {})",
        last.mean_model_val_acc,
        last.mean_model_val_loss,
        first.mean_model_val_loss
    );
}

#[test]
fn a_tiny_brackets_population_learns_above_chance() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../experiments/fig4_brackets.toml"
    ))
    .unwrap();
    let sets: Vec<String> = [
        "variant=[]",
        "seeds=[]",
        "population.fo=2",
        "population.zo=2",
        "data.brackets.max_len=8",
        "data.brackets.train=512",
        "data.brackets.validation=256",
        "zo.rv=4",
        "zo.batch_size=32",
        "fo.batch_size=32",
        "steps=60",
        "eval_every=30",
        "local_rounds=0",
        "fo.warmup=10",
        "zo.warmup=10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = hdo_core::ExperimentConfig::from_toml(&text, &sets).unwrap();
    let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    let last = records.last().unwrap();
    assert!(last.mean_val_acc > 0.75, "accuracy {}", last.mean_val_acc);
    assert!(
        last.mean_val_acc_hard.is_some_and(|h| h > 0.5),
        "hard-negative accuracy {:?}",
        last.mean_val_acc_hard
    );
    assert!(last.zo_val_acc.is_some() && last.fo_val_acc.is_some());
}

#[test]
fn more_nodes_than_examples_is_a_config_error() {
    let cfg = common::tiny(0, 9000, &[]);
    let err = Experiment::new(cfg).err().unwrap().to_string();
    assert!(err.contains("population.zo") && err.contains("8000 training examples"), "{err}");
}

#[test]
fn a_model_that_does_not_fit_the_data_is_a_config_error() {
    let cfg = common::tiny(1, 0, &["model.kind=\"transformer\""]);
    let err = Experiment::new(cfg).err().unwrap().to_string();
    assert!(err.contains("model.kind") && err.contains("token"), "{err}");
}

#[test]
fn bench_population_scaling_reports_rounds_and_the_noise_floor() {
    let rows = hdo_core::bench::population_scaling("cpu", &[(1, 0), (1, 2)], 2, &[]).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.seconds_per_round > 0.0));
    assert_eq!(rows[0].gaussians_per_round, 0);
    // 2 ZO nodes × 128 directions × 2 generations × 7850 parameters
    assert_eq!(rows[1].gaussians_per_round, 2 * 128 * 2 * 7850);
    assert!(
        rows[1].generation_floor_s > 0.0
            && rows[1].generation_floor_s < rows[1].seconds_per_round * 10.0
    );
}

#[test]
fn a_resumed_run_ends_exactly_as_an_uninterrupted_one() {
    // CNN (BatchNorm running statistics), FO (autodiff) and ZO nodes, momentum, gossip.
    let cfg = || {
        common::tiny(
            2,
            2,
            &[
                "model.kind=\"cnn\"",
                "model.channels=[2,2,2]",
                "model.hidden=[8]",
                "fo.momentum=0.9",
                "zo.momentum=0.9",
                // between evaluations (every 3): loss and diagnostic sums carry over
                "checkpoint_every=2",
                "diagnostics.every=1",
            ],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let whole = Experiment::new(cfg()).unwrap().run(&a, &mut |_| {}).unwrap();
    // a second run, whose round-2 checkpoint is kept aside as if it had been killed in round 3
    std::fs::create_dir_all(&c).unwrap();
    let mut keep = |e: hdo_core::Event<'_>| {
        if let hdo_core::Event::Round { round: 3, .. } = e {
            std::fs::copy(b.join("checkpoint.bin"), c.join("checkpoint.bin")).unwrap();
        }
    };
    Experiment::new(cfg()).unwrap().run(&b, &mut keep).unwrap();
    let mut resumed = Experiment::new(cfg()).unwrap();
    let saved = Checkpoint::read(&c.join("checkpoint.bin")).unwrap();
    assert!(saved.run.loss.1 > 0 && saved.run.totals.diag.2 > 0, "sums in flight are saved");
    assert_eq!(resumed.resume(&c).unwrap(), Some(2));
    let rest = resumed.run(&c, &mut |_| {}).unwrap();
    assert_eq!(strip_time(rest), strip_time(whole.clone()));
    let read = |d: &std::path::Path| Checkpoint::read(&d.join("checkpoint.bin")).unwrap();
    let (end_a, end_c) = (read(&a), read(&c));
    assert_eq!(end_a.run.round, 6);
    assert_eq!(end_a.nodes, end_c.nodes, "final parameters, momentum and counters");
    assert!(end_a.nodes.iter().all(|n| n.velocity.iter().all(Option::is_some)));

    // a finished run resumes to nothing left to do
    let mut done = Experiment::new(cfg()).unwrap();
    assert_eq!(done.resume(&a).unwrap(), Some(6));
    assert_eq!(strip_time(done.run(&a, &mut |_| {}).unwrap()), strip_time(whole.clone()));
    // a fresh run does not overwrite a checkpoint; another config cannot resume it
    let e = Experiment::new(cfg()).unwrap().run(&a, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("--resume") && e.contains("checkpoint.bin"), "{e}");
    let mut other = cfg();
    other.zo.lr *= 2.0;
    let e = Experiment::new(other).unwrap().resume(&a).unwrap_err().to_string();
    assert!(e.contains("different configuration") && e.contains("lr = "), "{e}");
    // a sound file whose content does not fit the model is refused, and nothing is restored
    for spoil in [
        (|c: &mut Checkpoint| c.nodes[1].tensors.truncate(1)) as fn(&mut Checkpoint),
        |c| c.nodes[0].sampler.1 = 1 << 40,
        |c| c.nodes[3].velocity[0] = Some(vec![0.0; 3]),
        |c| c.run.records.clear(),
    ] {
        let mut bad = read(&a);
        spoil(&mut bad);
        let d = dir.path().join("spoiled");
        std::fs::create_dir_all(&d).unwrap();
        bad.write(&d.join("checkpoint.bin")).unwrap();
        let mut exp = Experiment::new(cfg()).unwrap();
        let e = exp.resume(&d).unwrap_err().to_string();
        assert!(e.contains("checkpoint.bin") && (e.contains("node") || e.contains("round")), "{e}");
        let fresh = exp.run(&dir.path().join("fresh"), &mut |_| {}).unwrap();
        assert_eq!(strip_time(fresh), strip_time(whole.clone()), "{e}");
        std::fs::remove_dir_all(dir.path().join("fresh")).unwrap();
    }
    // a damaged checkpoint is refused with its path
    let bytes = std::fs::read(a.join("checkpoint.bin")).unwrap();
    std::fs::write(a.join("checkpoint.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let e = Experiment::new(cfg()).unwrap().resume(&a).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("checkpoint.bin"), "{e}");
}

/// Every float of every node still in the population is finite.
fn all_finite(exp: &Experiment) -> bool {
    exp.population.nodes.iter().zip(exp.active()).filter(|(_, a)| **a).all(|(n, _)| {
        hdo_core::params::collect(&n.model).into_iter().flat_map(common::host).all(f32::is_finite)
    })
}

/// A node forced to a NaN loss at round 2 of 6 (1 FO + 3 ZO, pairs averaged every round).
fn poisoned(
    policy: &str,
    dir: &std::path::Path,
) -> (Experiment, Vec<hdo_core::metrics::Record>, Vec<String>) {
    let set = format!("on_divergence=\"{policy}\"");
    let cfg =
        common::tiny(1, 3, &[&set, "eval_every=1", "metrics.per_node=true", "checkpoint_every=2"]);
    let mut exp = Experiment::new(cfg).unwrap();
    exp.inject_divergence(2, 2);
    let mut events = Vec::new();
    let records = exp
        .run(dir, &mut |e| {
            if let hdo_core::Event::Diverged { node, round, action, loss, .. } = e {
                assert!(loss.is_nan());
                events.push(format!("{node}@{round}:{action}"));
            }
        })
        .unwrap();
    (exp, records, events)
}

#[test]
fn a_dropped_node_leaves_the_population_and_poisons_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, records, events) = poisoned("drop", dir.path());
    assert_eq!(events, ["2@2:dropped"]);
    assert_eq!(exp.active(), [true, true, false, true]);
    assert!(all_finite(&exp), "no other node ever holds a non-finite value");
    let rounds: Vec<u64> = records.iter().map(|r| r.round).collect();
    assert_eq!(rounds, [0, 1, 2, 3, 4, 5, 6]);
    for r in &records {
        assert_eq!(r.active_nodes, if r.round <= 2 { 4 } else { 3 }, "round {}", r.round);
        assert!(
            r.mean_val_loss.is_finite()
                && r.mean_model_val_loss.is_finite()
                && r.consensus.is_finite()
        );
        let node2 = &r.nodes[2];
        assert_eq!((node2.active, node2.val_loss.is_some()), (r.round <= 2, r.round <= 2));
    }
    // nodes.csv: one row per node per evaluation, the dropped node's cells empty
    let nodes = std::fs::read_to_string(dir.path().join("nodes.csv")).unwrap();
    assert_eq!(nodes.lines().count(), 1 + 7 * 4);
    assert!(nodes.lines().any(|l| l == "6,2,zo,false,,,"), "{nodes}");
    // the checkpoint remembers who left: a resumed run does not bring the node back
    let mut again = Experiment::new(exp.config.clone()).unwrap();
    assert_eq!(again.resume(dir.path()).unwrap(), Some(6));
    assert_eq!(again.active(), [true, true, false, true]);
}

#[test]
fn a_reset_node_restarts_from_its_healthy_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, records, events) = poisoned("reset", dir.path());
    assert_eq!(events, ["2@2:reset"]);
    assert!(exp.active().iter().all(|a| *a));
    assert!(all_finite(&exp));
    for r in &records {
        assert_eq!(r.active_nodes, 4);
        assert_eq!(r.resets, u64::from(r.round > 2), "round {}", r.round);
        assert!(
            r.mean_val_loss.is_finite()
                && r.nodes.iter().all(|n| n.val_loss.is_some_and(f64::is_finite))
        );
    }
}

#[test]
fn stop_ends_the_run_without_recording_a_round_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut exp = Experiment::new(common::tiny(1, 1, &["eval_every=1"])).unwrap();
    exp.inject_divergence(1, 3);
    let err = exp.run(dir.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Diverged { node: 1, round: 3, .. }), "{err}");
    // rounds 0–3 were evaluated; the divergence in round 3 adds no second row for round 3
    let run = hdo_core::summary::load("x", dir.path()).unwrap();
    let rounds: Vec<u64> = run.records.iter().map(|r| r.round).collect();
    assert_eq!(rounds, [0, 1, 2, 3]);
}

/// `--dry-run`'s expected passes are the passes a run then counts in its first round, for every
/// estimator whose count is not random (debiased's is an expectation).
#[test]
fn described_passes_per_round_are_the_counted_ones() {
    for zo in [
        &["zo.estimator=\"forward_difference\""][..],
        &["zo.estimator=\"central_difference\""],
        &["zo.estimator=\"forward_gradient\""],
        &["zo.estimator=\"forward_gradient\"", "zo.projection=\"per_tensor\""],
    ] {
        let sets = [zo, &["steps=1", "eval_every=1", "protocol.kind=\"random_pair\""]].concat();
        let mut exp = Experiment::new(common::tiny(2, 3, &sets)).unwrap();
        let d = exp.describe().expect("describe");
        let dir = tempfile::tempdir().unwrap();
        let counted = exp.run(dir.path(), &mut |_| {}).unwrap().pop().unwrap();
        assert_eq!(d.forward_per_round, counted.forward_passes as f64, "{zo:?}");
        assert_eq!(d.backward_per_round, counted.backward_passes as f64, "{zo:?}");
        assert!(d.backward_per_round > 0.0 && d.steps_per_round == 2 * 3, "{d:?}");
    }
}
