//! `hdo`: run hybrid decentralized optimization experiments.

mod args;
mod bench;
mod progress;

use anyhow::Context;
use args::{Cli, Command, CompareArgs, RunArgs};
use clap::Parser;
use hdo_core::summary::{self, Finished};
use hdo_core::{Experiment, sweep};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HDO_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Quote a string as a TOML value for an override.
fn toml_escape(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config file {}", args.config.display()))?;
    let stem =
        args.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut overrides = vec![format!("name={}", toml_escape(&stem))];
    if text.lines().any(|l| l.trim_start().starts_with("name")) {
        overrides.clear();
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
    let runs = sweep::expand(&text, &overrides)
        .with_context(|| format!("in {}", args.config.display()))?;
    let name = runs.first().map(|r| r.config.name.clone()).unwrap_or_default();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let dirs: Vec<PathBuf> = runs
        .iter()
        .map(|spec| if spec.dir.as_os_str().is_empty() { out.clone() } else { out.join(&spec.dir) })
        .collect();
    if !args.resume {
        // refuse before any run starts, rather than failing run after run
        let held: Vec<String> = dirs
            .iter()
            .filter(|d| d.join(hdo_core::checkpoint::FILE).exists())
            .map(|d| d.display().to_string())
            .collect();
        if !held.is_empty() {
            anyhow::bail!(
                "{} holds a run's checkpoint: continue with --resume, or write to another --out",
                held.join(", ")
            );
        }
    } else if runs.iter().any(|r| r.config.checkpoint_every == 0) {
        eprintln!(
            "hdo: warning: checkpoint_every = 0, so these runs write no checkpoint and --resume \
             finds none to continue; set e.g. --set checkpoint_every=50"
        );
    }
    let mut results = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (i, (spec, dir)) in runs.iter().zip(dirs).enumerate() {
        let config = &spec.config;
        let mut experiment =
            Experiment::new(config.clone()).context("setting up the experiment")?;
        let label = if runs.len() > 1 {
            format!("[{}/{}] {} seed {} | ", i + 1, runs.len(), spec.label, spec.seed)
        } else {
            String::new()
        };
        eprintln!(
            "hdo: {label}{} FO + {} ZO nodes | {} ({} parameters) | {} | {} rounds | {} train / {} validation examples | {}",
            config.population.fo,
            config.population.zo,
            config.model.name(),
            experiment.population.layout.dim,
            config.protocol.build().name(),
            config.steps,
            experiment.data.train.len(),
            experiment.data.validation.len(),
            dir.display()
        );
        let from = if args.resume {
            experiment.resume(&dir).with_context(|| format!("resuming {}", dir.display()))?
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
            .run(&dir, &mut |event| bar.handle(event))
            .with_context(|| format!("training {}", dir.display()));
        bar.finish();
        let records = match outcome {
            Ok(records) => records,
            // one failed run (a diverging node) must not throw away a sweep's other runs: report
            // it, go on, and fail at the end
            Err(e) if runs.len() > 1 => {
                eprintln!("error: {label}{e:#}");
                failed.push(format!("{} seed {}", spec.label, spec.seed));
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(last) = records.last() {
            println!(
                "{label}round {}: mean val loss {:.4}, mean val acc {:.2}%, mean-model val loss {:.4} acc {:.2}%, consensus {:.3e}, {:.1}s",
                last.round,
                last.mean_val_loss,
                100.0 * last.mean_val_acc,
                last.mean_model_val_loss,
                100.0 * last.mean_model_val_acc,
                last.consensus,
                last.elapsed_s
            );
        }
        println!(
            "wrote {0}/metrics.jsonl, {0}/metrics.csv, {0}/metrics.png, {0}/config.toml",
            dir.display()
        );
        results.push(Finished { label: spec.label.clone(), seed: spec.seed, dir, records });
    }
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

/// `hdo compare`: load every `LABEL=DIR[,DIR...]`, print the table, write the summary.
fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for spec in &args.runs {
        let (label, dirs) = spec
            .split_once('=')
            .filter(|(l, d)| !l.trim().is_empty() && !d.trim().is_empty())
            .with_context(|| format!("`{spec}`: expected LABEL=DIR[,DIR...]"))?;
        for dir in dirs.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            runs.push(summary::load(label.trim(), Path::new(dir))?);
        }
    }
    summary::write(&args.out, &args.title, &runs)?;
    print!("{}", summary::table(&runs));
    println!("wrote {0}/summary.csv, {0}/comparison.png", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_escape(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
