//! `hdo eval`: a finished run's nodes and mean model, restored from its checkpoint, on a
//! validation set.

use crate::args::EvalArgs;
use crate::toml_escape;
use anyhow::Context;
use hdo_core::{Experiment, ExperimentConfig, checkpoint};

/// `hdo eval RUN_DIR [--data-dir DIR]`.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let config_path = args.run.join("config.toml");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "cannot read {} (is {} a run directory of hdo?)",
            config_path.display(),
            args.run.display()
        )
    })?;
    if !args.run.join(checkpoint::FILE).is_file() {
        anyhow::bail!(
            "{} has no {}: a run keeps its final parameters only with checkpoint_every > 0 \
             (e.g. --set checkpoint_every=100)",
            args.run.display(),
            checkpoint::FILE
        );
    }
    let overrides: Vec<String> = args
        .data_dir
        .iter()
        .map(|d| format!("data.dir={}", toml_escape(&d.to_string_lossy())))
        .collect();
    let config = ExperimentConfig::from_toml(&text, &overrides)
        .with_context(|| format!("in {}", config_path.display()))?;
    let mut experiment = Experiment::new(config).context("setting up the experiment")?;
    let round = experiment
        .restore_for_evaluation(&args.run)
        .with_context(|| format!("restoring {}", args.run.display()))?
        .context("no checkpoint to restore")?;
    let (nodes, mean) = experiment.evaluate_all();
    println!(
        "{} at round {round}, {} validation examples",
        args.run.display(),
        experiment.describe()?.validation_examples
    );
    println!("{:>6} {:>4} {:>10} {:>9}", "node", "kind", "val loss", "val acc");
    for (id, kind, e) in &nodes {
        println!("{id:>6} {:>4} {:>10.4} {:>8.2}%", kind.name(), e.loss, 100.0 * e.accuracy);
    }
    let dropped = experiment.active().iter().filter(|a| !**a).count();
    if dropped > 0 {
        println!("({dropped} dropped node(s) not evaluated)");
    }
    let n = nodes.len().max(1) as f64;
    println!(
        "{:>11} {:>10.4} {:>8.2}%",
        "node mean",
        nodes.iter().map(|(_, _, e)| e.loss).sum::<f64>() / n,
        100.0 * nodes.iter().map(|(_, _, e)| e.accuracy).sum::<f64>() / n
    );
    println!("{:>11} {:>10.4} {:>8.2}%", "mean model", mean.loss, 100.0 * mean.accuracy);
    Ok(())
}
