//! `hdo run`: expand a file into its runs, check the output directories, then train the runs one
//! after another or in `--jobs` processes, and summarise a sweep.

use crate::args::RunArgs;
use crate::{progress, toml_escape};
use anyhow::Context;
use hdo_core::summary::{self, Finished};
use hdo_core::sweep::{self, RunSpec};
use hdo_core::{Experiment, ExperimentConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// What `hdo run` writes; `--force` removes exactly these before a fresh run.
const OUTPUTS: [&str; 9] = [
    "config.toml",
    "metrics.jsonl",
    "metrics.csv",
    "metrics.png",
    "nodes.csv",
    "trajectories.png",
    hdo_core::checkpoint::FILE,
    "summary.csv",
    "comparison.png",
];

/// `hdo run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config file {}", args.config.display()))?;
    let runs = sweep::expand(&text, &overrides(&args, &text))
        .with_context(|| format!("in {}", args.config.display()))?;
    let name = runs.first().map(|r| r.config.name.clone()).unwrap_or_default();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let dirs: Vec<PathBuf> = runs
        .iter()
        .map(|spec| if spec.dir.as_os_str().is_empty() { out.clone() } else { out.join(&spec.dir) })
        .collect();
    if args.dry_run {
        return dry_run(&runs, &dirs);
    }
    if let Some(i) = args.only_run {
        // a child of --jobs: the parent has checked and prepared the directories
        let (spec, dir) = runs
            .get(i)
            .zip(dirs.get(i))
            .with_context(|| format!("--only-run {i}: the sweep has {} runs", runs.len()))?;
        return train(&args, spec, dir, &label(i, spec, runs.len())).map(|_| ());
    }
    prepare(&args, &out, &dirs)?;
    if args.resume && runs.iter().any(|r| r.config.checkpoint_every == 0) {
        eprintln!(
            "hdo: warning: checkpoint_every = 0, so these runs write no checkpoint and --resume \
             finds none to continue; set e.g. --set checkpoint_every=50"
        );
    }
    let jobs = (args.jobs as usize).min(runs.len()).max(1);
    let (results, failed) = if jobs > 1 {
        in_processes(&args, &out, &runs, &dirs, jobs)?
    } else {
        one_after_another(&args, &runs, &dirs)?
    };
    if runs.len() > 1 && !results.is_empty() {
        summary::write(&out, &name, &results)?;
        print!("{}", summary::table(&results));
        println!("wrote {0}/summary.csv, {0}/comparison.png", out.display());
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} runs failed (their metrics up to the failure are kept): {}",
            failed.len(),
            runs.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The command line's overrides, in the order they apply: the file's name unless it names
/// itself, then the flags, then `--set`.
fn overrides(args: &RunArgs, text: &str) -> Vec<String> {
    let mut overrides = Vec::new();
    if !ExperimentConfig::names_itself(text) {
        let stem =
            args.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        overrides.push(format!("name={}", toml_escape(&stem)));
    }
    if let Some(seed) = args.seed {
        overrides.push(format!("seed={seed}"));
        overrides.push(format!("seeds=[{seed}]"));
    }
    if let Some(steps) = args.steps {
        overrides.push(format!("steps={steps}"));
    }
    if let Some(dir) = &args.data_dir {
        overrides.push(format!("data.dir={}", toml_escape(&dir.to_string_lossy())));
    }
    if args.download {
        overrides.push("data.download=true".into());
    }
    if let Some(device) = args.device {
        overrides.push(format!("device=\"{}\"", device.name()));
    }
    overrides.extend(args.set.iter().cloned());
    overrides
}

/// `[i/n] label seed S | ` for a sweep's run, empty for a single run.
fn label(i: usize, spec: &RunSpec, n: usize) -> String {
    if n > 1 {
        format!("[{}/{}] {} seed {} | ", i + 1, n, spec.label, spec.seed)
    } else {
        String::new()
    }
}

/// Whether `dir` holds anything.
fn non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Refuse a fresh run into a non-empty `--out` (unless `--force`, which first removes the
/// previous run's outputs there), before any run starts rather than run after run.
fn prepare(args: &RunArgs, out: &Path, dirs: &[PathBuf]) -> anyhow::Result<()> {
    if args.resume {
        return Ok(());
    }
    if !args.force {
        if non_empty(out) {
            anyhow::bail!(
                "{} is not empty: continue its runs with --resume, write elsewhere with --out, or \
                 replace its outputs with --force",
                out.display()
            );
        }
        return Ok(());
    }
    for dir in dirs.iter().map(PathBuf::as_path).chain([out]) {
        for file in OUTPUTS {
            let path = dir.join(file);
            if path.is_file() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("--force: cannot remove {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// `--dry-run`: every run's resolved config and what it will do.
fn dry_run(runs: &[RunSpec], dirs: &[PathBuf]) -> anyhow::Result<()> {
    for (i, (spec, dir)) in runs.iter().zip(dirs).enumerate() {
        let experiment = Experiment::new(spec.config.clone())
            .with_context(|| format!("{}setting up the experiment", label(i, spec, runs.len())))?;
        println!("# {}output {}", label(i, spec, runs.len()), dir.display());
        println!("{}", spec.config.to_toml());
        println!("{}\n", experiment.describe()?);
    }
    println!("dry run: {} run(s), nothing trained or written", runs.len());
    Ok(())
}

/// Train one run in this process, with a progress bar; returns its records.
fn train(
    args: &RunArgs,
    spec: &RunSpec,
    dir: &Path,
    label: &str,
) -> anyhow::Result<Vec<hdo_core::metrics::Record>> {
    let config = &spec.config;
    let mut experiment = Experiment::new(config.clone()).context("setting up the experiment")?;
    eprintln!(
        "hdo: {label}{} FO + {} ZO nodes | {} ({} parameters) | {} | {} rounds | {} train / {} validation examples | {}",
        config.population.fo,
        config.population.zo,
        config.model_name(),
        experiment.population.layout.dim,
        config.protocol.name(),
        config.steps,
        experiment.data.train.len(),
        experiment.data.validation.len(),
        dir.display()
    );
    if let Some(graph) = experiment.graph() {
        eprintln!("hdo: {label}{graph}");
    }
    let from = if args.resume {
        experiment.resume(dir).with_context(|| format!("resuming {}", dir.display()))?
    } else {
        None
    };
    match from {
        Some(round) if round == config.steps => {
            eprintln!("hdo: {label}already finished (checkpoint at round {round})")
        }
        Some(round) => eprintln!("hdo: {label}resuming at round {round}"),
        None if args.resume => {
            eprintln!("hdo: {label}no checkpoint in {}: starting at round 0", dir.display())
        }
        None => {}
    }
    let mut bar = progress::Progress::new(config.steps, from.unwrap_or(0), args.quiet);
    let outcome = experiment
        .run(dir, &mut |event| bar.handle(event))
        .with_context(|| format!("training {}", dir.display()));
    bar.finish();
    let records = outcome?;
    if let Some((last, best)) = records.last().and_then(|r| r.best_objective.map(|b| (r, b))) {
        println!(
            "{label}round {}: objective {:.6} (mean over nodes), best node {best:.6}, at the mean point {:.6}, consensus {:.3e}, {} nodes, {:.1}s",
            last.round,
            last.mean_val_loss,
            last.mean_model_val_loss,
            last.consensus,
            last.active_nodes,
            last.elapsed_s
        );
    } else if let Some(last) = records.last() {
        println!(
            "{label}round {}: mean val loss {:.4}, mean val acc {:.2}%, mean-model val loss {:.4} acc {:.2}%, consensus {:.3e}, {} nodes, {:.1}s",
            last.round,
            last.mean_val_loss,
            100.0 * last.mean_val_acc,
            last.mean_model_val_loss,
            100.0 * last.mean_model_val_acc,
            last.consensus,
            last.active_nodes,
            last.elapsed_s
        );
    }
    let mut nodes = if config.metrics.per_node {
        format!(", {}/nodes.csv", dir.display())
    } else {
        String::new()
    };
    if dir.join("trajectories.png").exists() {
        nodes.push_str(&format!(", {}/trajectories.png", dir.display()));
    }
    println!(
        "wrote {0}/metrics.jsonl, {0}/metrics.csv, {0}/metrics.png, {0}/config.toml{nodes}",
        dir.display()
    );
    Ok(records)
}

type Outcome = (Vec<Finished>, Vec<String>);

/// The runs in this process, in order. One failed run (a diverging node) must not throw away a
/// sweep's other runs: it is reported, the sweep goes on and fails at the end.
fn one_after_another(
    args: &RunArgs,
    runs: &[RunSpec],
    dirs: &[PathBuf],
) -> anyhow::Result<Outcome> {
    let (mut results, mut failed) = (Vec::new(), Vec::new());
    for (i, (spec, dir)) in runs.iter().zip(dirs).enumerate() {
        let label = label(i, spec, runs.len());
        match train(args, spec, dir, &label) {
            Ok(records) => results.push(Finished {
                label: spec.label.clone(),
                seed: spec.seed,
                dir: dir.clone(),
                records,
            }),
            Err(e) if runs.len() > 1 => {
                eprintln!("error: {label}{e:#}");
                failed.push(format!("{} seed {}", spec.label, spec.seed));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((results, failed))
}

/// `--jobs`: each run in a child `hdo run … --only-run I -q`, at most `jobs` at a time, each with
/// an equal share of this process's threads (`RAYON_NUM_THREADS`); the finished runs are then read
/// back from their directories.
fn in_processes(
    args: &RunArgs,
    out: &Path,
    runs: &[RunSpec],
    dirs: &[PathBuf],
    jobs: usize,
) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("--jobs: cannot find the hdo binary")?;
    let threads = (hdo_core::bench::threads() / jobs).max(1);
    eprintln!("hdo: {} runs in {jobs} processes of {threads} thread(s) each", runs.len());
    let spawn = |i: usize| -> anyhow::Result<Child> {
        let mut cmd = Command::new(&exe);
        cmd.arg("run").arg(&args.config).arg("--out").arg(out).arg("-q");
        cmd.args(["--only-run", &i.to_string()]).env("RAYON_NUM_THREADS", threads.to_string());
        for s in &args.set {
            cmd.args(["--set", s]);
        }
        if let Some(seed) = args.seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        if let Some(steps) = args.steps {
            cmd.args(["--steps", &steps.to_string()]);
        }
        if let Some(dir) = &args.data_dir {
            cmd.arg("--data-dir").arg(dir);
        }
        if args.download {
            cmd.arg("--download");
        }
        if let Some(device) = args.device {
            cmd.args(["--device", device.name()]);
        }
        if args.resume {
            cmd.arg("--resume");
        }
        cmd.spawn().with_context(|| format!("--jobs: cannot start run {}", i + 1))
    };
    let mut next = 0;
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut ok = vec![false; runs.len()];
    while next < runs.len() || !running.is_empty() {
        while running.len() < jobs && next < runs.len() {
            running.push((next, spawn(next)?));
            next += 1;
        }
        let mut still = Vec::new();
        for (i, mut child) in running {
            match child.try_wait().context("--jobs: waiting for a run")? {
                Some(status) => {
                    ok[i] = status.success();
                    if !status.success() {
                        eprintln!("error: {}failed ({status})", label(i, &runs[i], runs.len()));
                    }
                }
                None => still.push((i, child)),
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut results, mut failed) = (Vec::new(), Vec::new());
    for (i, (spec, dir)) in runs.iter().zip(dirs).enumerate() {
        if ok[i] {
            let mut finished = summary::load(&spec.label, dir)?;
            finished.seed = spec.seed;
            results.push(finished);
        } else {
            failed.push(format!("{} seed {}", spec.label, spec.seed));
        }
    }
    Ok((results, failed))
}
