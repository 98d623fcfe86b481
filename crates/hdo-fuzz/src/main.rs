//! `hdo-fuzz`: run the fuzz campaigns (`hdo-fuzz run all --inputs 1000000`) or write the
//! generated seeds into a corpus directory (`hdo-fuzz seeds`).

use clap::{Parser, Subcommand};
use hdo_fuzz::{Campaign, Target, default_corpus, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Fuzz every parser of outside input hdo has.
#[derive(Debug, Parser)]
#[command(name = "hdo-fuzz")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run campaigns; exits non-zero when anything was found.
    Run {
        /// idx, gzip, brackets, config, checkpoint, or all.
        target: String,
        /// Inputs per target.
        #[arg(long, default_value_t = 1_000_000)]
        inputs: u64,
        /// Seed of the generated seeds and of every mutation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Corpus directory (default: the committed crates/hdo-fuzz/corpus).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Where findings are saved.
        #[arg(long, default_value = "fuzz-findings")]
        findings: PathBuf,
    },
    /// Write every target's generated seeds into DIR/<target>/ (to refresh the corpus).
    Seeds {
        /// Corpus directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Run { target, inputs, seed, corpus, findings } => {
            let targets: Vec<Target> = if target == "all" {
                Target::ALL.to_vec()
            } else if let Some(t) = Target::from_name(&target) {
                vec![t]
            } else {
                eprintln!(
                    "unknown target {target:?}: idx, gzip, brackets, config, checkpoint or all"
                );
                return ExitCode::FAILURE;
            };
            let corpus = corpus.unwrap_or_else(default_corpus);
            let mut found = 0;
            println!(
                "{:<11} {:>10} {:>8} {:>10} {:>9} {:>7} {:>10} {:>8}",
                "target",
                "inputs",
                "seconds",
                "inputs/s",
                "accepted",
                "errors",
                "slowest s",
                "alloc"
            );
            for target in targets {
                let c = Campaign {
                    target,
                    inputs,
                    seed,
                    corpus: Some(corpus.clone()),
                    findings: findings.clone(),
                };
                let r = run(&c);
                println!(
                    "{:<11} {:>10} {:>8.1} {:>10.0} {:>9} {:>7} {:>10.4} {:>8.3}",
                    target.name(),
                    r.inputs,
                    r.seconds,
                    r.rate(),
                    r.accepted,
                    r.error_classes,
                    r.slowest,
                    r.worst_allocation
                );
                for f in &r.findings {
                    println!("  FOUND {f}");
                }
                found += r.findings.len();
            }
            if found > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Cmd::Seeds { out } => {
            let dir = out.unwrap_or_else(default_corpus);
            for target in Target::ALL {
                let d = dir.join(target.name());
                if let Err(e) = std::fs::create_dir_all(&d) {
                    eprintln!("cannot create {}: {e}", d.display());
                    return ExitCode::FAILURE;
                }
                for (i, s) in target.seeds(0).iter().enumerate() {
                    let path = d.join(format!("seed-{i:02}"));
                    if let Err(e) = std::fs::write(&path, s) {
                        eprintln!("cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!("wrote the generated seeds under {}", dir.display());
            ExitCode::SUCCESS
        }
    }
}
