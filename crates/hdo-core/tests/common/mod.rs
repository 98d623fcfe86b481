//! Shared helpers for hdo-core's integration tests: tiny configs on the bundled MNIST split.
#![allow(dead_code)]

use hdo_core::ExperimentConfig;

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
