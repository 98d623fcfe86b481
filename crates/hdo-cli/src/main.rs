//! `hdo`: run hybrid decentralized optimization experiments.

mod args;
mod bench;
mod eval;
mod progress;
mod run;

use anyhow::Context;
use args::{Cli, Command, CompareArgs};
use clap::Parser;
use hdo_core::summary;
use std::path::Path;
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
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare(args),
        Command::Eval(args) => eval::eval(args),
        Command::List => {
            list();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `hdo list`: one line per model, estimator, protocol and data set.
fn list() {
    let mut last = "";
    for e in hdo_core::catalog::entries() {
        if e.key != last {
            println!("{}:", e.key);
            last = e.key;
        }
        println!("  {:<28} {}", e.name, e.summary);
    }
}

/// Quote a string as a TOML value for an override.
pub(crate) fn toml_escape(s: &str) -> String {
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

/// An error and its causes, `: `-separated, leaving out a cause its parent already spells (our
/// errors put their source in their own message, so `{:#}` would print it twice).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !out.contains(&cause) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&cause);
        }
    }
    out
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
    let metric = |flag: &str, name: &str| {
        summary::Metric::parse(name).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    let axes = summary::Axes {
        x: metric("x", &args.x)?,
        left: metric("left", &args.left)?,
        right: metric("right", &args.right)?,
    };
    summary::write_with(&args.out, &args.title, &runs, axes)?;
    print!("{}", summary::table(&runs));
    println!("wrote {0}/summary.csv, {0}/comparison.png", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let inner =
            anyhow::Error::new(hdo_datasets::DataError::Io { path: "/x/a9a".into(), source: io });
        let e = inner.context("setting up the experiment");
        assert_eq!(chain(&e), "setting up the experiment: cannot read /x/a9a: no such file");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_escape(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
