//! Objectives that are not data sets: values, gradients against finite differences (and, for
//! matrix completion, against the closed form), start points, metrics, and the LSGD toy.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
mod common;

use burn::module::Module;
use burn::prelude::*;
use common::{host, resumes_exactly};
use hdo_core::{Experiment, ExperimentConfig, params};
use hdo_models::{Model, ObjectiveConfig};

fn objective(toml: &str) -> ObjectiveConfig {
    toml::from_str(toml).unwrap()
}

/// `f` at `x` and its gradient by autodiff.
fn value_and_gradient(o: &ObjectiveConfig, x: &[f32]) -> (f32, Vec<f32>) {
    let device = Device::flex();
    let model = Model::Objective(o.init(7, &device).unwrap());
    let model = params::load(model, &[params::upload(x.to_vec(), &device)]).train();
    let value = model.forward(&dummy(&device.clone().autodiff()), &mut Default::default());
    let grads = value.clone().sum().backward();
    let Model::Objective(m) = &model else { unreachable!() };
    let g = m.x.val().grad(&grads).unwrap();
    (host(value.reshape([1]).inner())[0], host(g))
}

/// `f` at `x` on the plain device.
fn value(o: &ObjectiveConfig, x: &[f64]) -> f64 {
    let device = Device::flex();
    let model = Model::Objective(o.init(7, &device).unwrap());
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let model = params::load(model, &[params::upload(x, &device)]);
    host(model.forward(&dummy(&device), &mut Default::default()).reshape([1]))[0] as f64
}

fn dummy(device: &Device) -> hdo_models::Input {
    hdo_models::Input::Images(Tensor::zeros([1, 1, 1, 1], device))
}

/// Central differences of `f` at `x` with step `h`.
fn finite_differences(o: &ObjectiveConfig, x: &[f32], h: f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let at = |s: f64| {
                let mut p: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                p[i] += s;
                value(o, &p)
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect()
}

fn assert_close(autodiff: &[f32], reference: &[f64], tol: f64, what: &str) {
    let scale = reference.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-6);
    for (i, (a, r)) in autodiff.iter().zip(reference).enumerate() {
        assert!((*a as f64 - r).abs() <= tol * scale, "{what}[{i}]: autodiff {a} against {r}");
    }
}

#[test]
fn sinc_values_and_gradients_match_finite_differences() {
    let o = objective("kind = \"sinc2d\"");
    // r = 1/2: sin(π/2)/(π/2) = 2/π; r = 1: 0; the origin: 1 with a zero gradient
    assert!((value(&o, &[0.3, 0.4]) - 2.0 / std::f64::consts::PI).abs() < 1e-6);
    assert!(value(&o, &[0.6, 0.8]).abs() < 1e-6);
    let (v0, g0) = value_and_gradient(&o, &[0.0, 0.0]);
    assert_eq!((v0, g0), (1.0, vec![0.0, 0.0]));
    for x in [[-6.0f32, -4.0], [0.35, -1.2], [17.0, 8.0]] {
        let (_, g) = value_and_gradient(&o, &x);
        assert_close(&g, &finite_differences(&o, &x, 1e-3), 2e-2, "sinc gradient");
    }
}

#[test]
fn matrix_completion_gradient_is_the_closed_form_and_matches_finite_differences() {
    let o = objective("kind = \"matrix_completion\"\nd = 5\nrank = 2");
    let ObjectiveConfig::MatrixCompletion(c) = &o else { unreachable!() };
    let m = c.target(7);
    // M = UUᵀ is symmetric positive semi-definite of rank 2: its 3×3 minors vanish
    let at = |i: usize, j: usize| m[i * 5 + j] as f64;
    assert!((0..5).all(|i| (0..5).all(|j| at(i, j) == at(j, i))));
    let minor = at(0, 0) * (at(1, 1) * at(2, 2) - at(1, 2) * at(2, 1))
        - at(0, 1) * (at(1, 0) * at(2, 2) - at(1, 2) * at(2, 0))
        + at(0, 2) * (at(1, 0) * at(2, 1) - at(1, 1) * at(2, 0));
    assert!(minor.abs() < 1e-3 * (1.0 + at(0, 0) * at(1, 1) * at(2, 2)), "rank > 2: {minor}");

    let x: Vec<f32> = (0..10).map(|i| ((i * 7 % 10) as f32 - 4.5) / 5.0).collect();
    let (v, g) = value_and_gradient(&o, &x);
    // ∇F(X) = (XXᵀ − M)X and F = ¼‖M − XXᵀ‖², in f64
    let xx =
        |i: usize, j: usize| (0..2).map(|k| x[i * 2 + k] as f64 * x[j * 2 + k] as f64).sum::<f64>();
    let f: f64 = (0..5)
        .flat_map(|i| (0..5).map(move |j| (i, j)))
        .map(|(i, j)| (at(i, j) - xx(i, j)).powi(2))
        .sum::<f64>()
        / 4.0;
    assert!((v as f64 - f).abs() <= 1e-5 * f.abs().max(1.0), "value {v} against {f}");
    let closed: Vec<f64> = (0..5)
        .flat_map(|i| (0..2).map(move |k| (i, k)))
        .map(|(i, k)| (0..5).map(|j| (xx(i, j) - at(i, j)) * x[j * 2 + k] as f64).sum())
        .collect();
    assert_close(&g, &closed, 1e-5, "closed-form gradient");
    assert_close(&g, &finite_differences(&o, &x, 1e-2), 2e-2, "finite differences");
}

#[test]
fn quadratic_gradient_is_curvature_times_x() {
    let o = objective("kind = \"quadratic\"\ndim = 4\ncondition = 8");
    let x = [1.0f32, -2.0, 0.5, 3.0];
    let (v, g) = value_and_gradient(&o, &x);
    let a = [1.0f64, 2.0, 4.0, 8.0];
    let expected: Vec<f64> = a.iter().zip(&x).map(|(a, x)| a * *x as f64).collect();
    assert_close(&g, &expected, 1e-6, "a∘x");
    let f: f64 = a.iter().zip(&x).map(|(a, x)| 0.5 * a * (*x as f64).powi(2)).sum();
    assert!((v as f64 - f).abs() < 1e-5);
    assert_close(&g, &finite_differences(&o, &x, 1e-2), 1e-3, "finite differences");
}

/// The LSGD paper's toy: 4 workers from its start points, lr 0.1, period 1.
fn sinc_run(protocol: &[&str], extra: &[&str]) -> ExperimentConfig {
    let mut set: Vec<String> = protocol.iter().map(|s| s.to_string()).collect();
    set.extend(extra.iter().map(|s| s.to_string()));
    let toml = r#"
        steps = 40
        eval_every = 10
        [population]
        fo = 4
        zo = 0
        [fo]
        lr = 0.1
        batch_size = 1
        [objective]
        kind = "sinc2d"
        init_points = [[-6.0, -4.0], [-15.0, -18.0], [20.0, 11.0], [17.0, 8.0]]
        [metrics]
        per_node = true
    "#;
    ExperimentConfig::from_toml(toml, &set).unwrap()
}

#[test]
fn an_objective_run_starts_each_node_at_its_point_and_reports_objective_metrics() {
    let cfg = sinc_run(
        &["protocol.kind=\"lsgd\"", "protocol.lambda=0.1", "protocol.lambda_global=0"],
        &[],
    );
    let exp = Experiment::new(cfg.clone()).unwrap();
    let starts: Vec<Vec<f32>> = (0..4)
        .map(|i| {
            params::collect(&exp.population.nodes[i].model).into_iter().flat_map(host).collect()
        })
        .collect();
    assert_eq!(
        starts,
        vec![vec![-6.0, -4.0], vec![-15.0, -18.0], vec![20.0, 11.0], vec![17.0, 8.0]]
    );
    // auxiliary vectors (an EASGD centre) start at the mean point
    assert_eq!(host(exp.population.origin[0].clone()), vec![4.0, -0.75]);

    let dir = tempfile::tempdir().unwrap();
    let records = Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    let last = records.last().unwrap();
    let values: Vec<f64> = last.nodes.iter().map(|n| n.val_loss.unwrap()).collect();
    let best = values.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(last.best_objective, Some(best));
    let mean = values.iter().sum::<f64>() / 4.0;
    assert!((last.objective.unwrap() - mean).abs() < 1e-12);
    // each node's reported point is its parameters, and its value is f there
    let o = objective("kind = \"sinc2d\"");
    for n in &last.nodes {
        assert_eq!(n.point.len(), 2);
        assert!((value(&o, &n.point) - n.val_loss.unwrap()).abs() < 1e-6);
    }
    assert!(records[0].best_objective.unwrap() > best, "the leader improved");
    for file in ["metrics.csv", "nodes.csv", "trajectories.png", "metrics.png"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    let read = hdo_core::summary::load("lsgd", dir.path()).unwrap();
    assert_eq!(read.records.last().unwrap().best_objective, Some(best));
    // and the resolved config it wrote runs again as it is
    let written = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(ExperimentConfig::from_toml(&written, &[]).is_ok(), "{written}");
}

#[test]
fn zeroth_order_nodes_descend_an_objective_and_runs_resume_exactly() {
    let toml = r#"
        steps = 6
        eval_every = 3
        checkpoint_every = 2
        [population]
        fo = 1
        zo = 2
        [fo]
        lr = 0.05
        batch_size = 1
        [zo]
        lr = 0.05
        batch_size = 1
        rv = 4
        nu = 1e-3
        [protocol]
        kind = "easgd"
        [objective]
        kind = "quadratic"
        dim = 6
        condition = 4
    "#;
    let cfg = ExperimentConfig::from_toml(toml, &[]).unwrap();
    let (end, _) = resumes_exactly(&cfg);
    assert_eq!(end.aux.len(), 1, "the centre is checkpointed");
    let dir = tempfile::tempdir().unwrap();
    let more =
        ExperimentConfig::from_toml(toml, &["steps=60".into(), "eval_every=60".into()]).unwrap();
    let records = Experiment::new(more).unwrap().run(dir.path(), &mut |_| {}).unwrap();
    let (first, last) = (&records[0], records.last().unwrap());
    assert!(last.zo_val_loss.unwrap() < 0.5 * first.zo_val_loss.unwrap(), "{first:?} → {last:?}");
    assert!(last.fo_val_loss.unwrap() < 0.5 * first.fo_val_loss.unwrap());
    assert_eq!(last.mean_val_acc, 0.0, "an objective classifies nothing");
    // nodes start at their own seeded draws: distinct, and the same on every run
    let exp = Experiment::new(cfg.clone()).unwrap();
    let again = Experiment::new(cfg).unwrap();
    let p = |e: &Experiment, i: usize| {
        params::collect(&e.population.nodes[i].model)
            .into_iter()
            .flat_map(host)
            .collect::<Vec<f32>>()
    };
    assert_ne!(p(&exp, 0), p(&exp, 1));
    assert_eq!(p(&exp, 2), p(&again, 2));
}

#[test]
fn bad_objective_configs_name_the_problem() {
    let base = "[population]\nfo = 2\nzo = 0\n[objective]\nkind = \"sinc2d\"\n";
    let err = |extra: &str, set: &[&str]| -> String {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        let text = format!("{base}{extra}");
        match ExperimentConfig::from_toml(&text, &set).and_then(Experiment::new) {
            Ok(_) => panic!("accepted: {text} {set:?}"),
            Err(e) => e.to_string(),
        }
    };
    let e = err("init_points = [[1.0, 2.0, 3.0]]\n", &[]);
    assert!(e.contains("objective.init_points") && e.contains("3 coordinates"), "{e}");
    let e = err("init_points = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]\n", &[]);
    assert!(e.contains("3 points for 2 nodes") && e.contains("objective.init_points"), "{e}");
    // caught when the config is read (so `--dry-run` reports it), not only when nodes are built
    let three = format!("{base}init_points = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]\n");
    assert!(ExperimentConfig::from_toml(&three, &[]).is_err());
    let e = err("init_std = -1.0\n", &[]);
    assert!(e.contains("objective.init_std"), "{e}");
    let e = err("radius = 3\n", &[]);
    assert!(e.contains("radius"), "{e}");
    let e = err("", &["data.binary=true"]);
    assert!(e.contains("remove the [data] section"), "{e}");
    let e = err("", &["model.kind=\"mlp\""]);
    assert!(e.contains("remove the [model] section"), "{e}");
    let e = err("", &["population.zo=1", "zo.estimator=\"forward_gradient\""]);
    assert!(e.contains("zo.estimator"), "{e}");
    let e = err("", &["objective.kind=\"matrix_completion\"", "objective.rank=0"]);
    assert!(e.contains("objective.rank"), "{e}");
    let e = err("", &["objective.kind=\"quadratic\"", "objective.condition=0.5"]);
    assert!(e.contains("objective.condition"), "{e}");
    let e = err("", &["objective.kind=\"cubic\""]);
    assert!(e.contains("cubic"), "{e}");
}

#[test]
fn every_objective_kind_parses_and_names_itself() {
    for (name, _) in ObjectiveConfig::KINDS {
        let o = objective(&format!(
            "kind = \"{name}\"\n{}",
            if *name == "matrix_completion" { "d = 4\nrank = 2" } else { "" }
        ));
        assert_eq!(o.name(), *name);
        let m = o.init(0, &Device::flex()).unwrap();
        assert_eq!(m.x.val().dims()[0], o.dim());
        let _ = m.valid();
    }
}
