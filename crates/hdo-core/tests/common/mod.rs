//! Shared helpers for hdo-core's integration tests: tiny configs on the bundled MNIST split.
#![allow(dead_code)]

use hdo_core::ExperimentConfig;

/// A tiny Brackets set (64 strings of up to 8 brackets, padded to 18 tokens) and its data shape.
pub fn tiny_brackets() -> (hdo_core::data::Examples, hdo_models::DataShape) {
    use hdo_datasets::brackets::{BracketsConfig, generate_split, tokenize};
    let cfg = BracketsConfig { train: 64, validation: 16, max_len: 8, hard_fraction: 0.5, seed: 0 };
    let (train, _) = generate_split(&cfg, 1).expect("brackets");
    let set = hdo_core::data::Examples::Tokens(tokenize(&train, 18).expect("tokenize"));
    let input = hdo_models::InputShape::Tokens { vocab: 6, len: 18 };
    (set, hdo_models::DataShape { input, classes: 2 })
}

/// A fast config: logistic regression, few rounds, small validation subset.
pub fn tiny(fo: usize, zo: usize, extra: &[&str]) -> ExperimentConfig {
    let mut sets: Vec<String> = vec![
        format!("population.fo={fo}"),
        format!("population.zo={zo}"),
        "steps=6".into(),
        "eval_every=3".into(),
        "data.eval_limit=300".into(),
        "fo.batch_size=16".into(),
        "zo.batch_size=16".into(),
        "zo.rv=4".into(),
        "zo.nu=1e-3".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    ExperimentConfig::from_toml("", &sets).expect("valid test config")
}

/// A flat tensor's values on the host (a failed download fails the test).
pub fn host(t: burn::prelude::Tensor<1>) -> Vec<f32> {
    hdo_core::params::download(t).expect("download a tensor")
}

/// Every float of every node of `exp`, in node then layout order.
pub fn all_params(exp: &hdo_core::Experiment) -> Vec<f32> {
    exp.population
        .nodes
        .iter()
        .flat_map(|n| hdo_core::params::collect(&n.model))
        .flat_map(host)
        .collect()
}

/// Run `cfg` whole, and again from its round-2 checkpoint (kept aside as if the run had been
/// killed in round 3): the metrics (but wall times) must agree; returns both final checkpoints.
pub fn resumes_exactly(
    cfg: &hdo_core::ExperimentConfig,
) -> (hdo_core::checkpoint::Checkpoint, hdo_core::checkpoint::Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let whole = hdo_core::Experiment::new(cfg.clone()).unwrap().run(&a, &mut |_| {}).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    let mut keep = |e: hdo_core::Event<'_>| {
        if let hdo_core::Event::Round { round: 3, .. } = e {
            std::fs::copy(b.join("checkpoint.bin"), c.join("checkpoint.bin")).unwrap();
        }
    };
    hdo_core::Experiment::new(cfg.clone()).unwrap().run(&b, &mut keep).unwrap();
    let mut resumed = hdo_core::Experiment::new(cfg.clone()).unwrap();
    assert_eq!(resumed.resume(&c).unwrap(), Some(2));
    let rest = resumed.run(&c, &mut |_| {}).unwrap();
    let strip = |r: Vec<hdo_core::metrics::Record>| -> Vec<_> {
        r.into_iter()
            .map(|mut r| {
                (r.elapsed_s, r.train_s) = (0.0, 0.0);
                r
            })
            .collect()
    };
    assert_eq!(strip(rest), strip(whole), "{}", cfg.protocol.name());
    let read = |d: &std::path::Path| {
        hdo_core::checkpoint::Checkpoint::read(&d.join("checkpoint.bin")).unwrap()
    };
    let (end_a, end_c) = (read(&a), read(&c));
    assert_eq!(end_a.nodes, end_c.nodes, "{}", cfg.protocol.name());
    assert_eq!(end_a.aux, end_c.aux);
    assert_eq!(end_a.queue, end_c.queue);
    assert_eq!(end_a.run.losses, end_c.run.losses);
    (end_a, end_c)
}
