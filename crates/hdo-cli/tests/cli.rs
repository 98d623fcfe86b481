//! The `hdo` binary end to end: outputs, sweeps, overrides and errors.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures
use std::process::Command;

fn hdo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hdo"))
}

const TINY: &str = r#"
name = "tiny"
steps = 4
eval_every = 2
[population]
fo = 1
zo = 1
[zo]
rv = 2
nu = 1e-3
[data]
eval_limit = 200
"#;

#[test]
fn run_writes_outputs_and_applies_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.path().join("out");
    let status = hdo()
        .args([
            "run",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "6",
            "--seed",
            "3",
        ])
        .args(["--set", "zo.rv=3", "-q"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        resolved.contains("steps = 6")
            && resolved.contains("seed = 3")
            && resolved.contains("rv = 3"),
        "{resolved}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4); // header + rounds 0, 2, 4, 6
    assert!(out.join("metrics.png").exists() && out.join("metrics.jsonl").exists());
    // the resolved config runs again as it is
    let again = hdo()
        .args(["run", out.join("config.toml").to_str().unwrap(), "--out"])
        .arg(dir.path().join("again"))
        .arg("-q")
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("again/metrics.csv")).unwrap().lines().count(),
        5
    );
}

/// `hdo run` on a sweep file with `text`, into a fresh directory: (the directory, the output
/// directory, the process output).
fn sweep(text: &str) -> (tempfile::TempDir, std::path::PathBuf, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sweep.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("s");
    let o = hdo()
        .args(["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    (dir, out, o)
}

#[test]
fn a_sweep_writes_each_run_and_a_summary() {
    // `seeds` is a top-level key, so it goes before the first table.
    let (_dir, out, o) = sweep(&format!(
        "seeds = [1, 2]\n{TINY}\n[[variant]]\nlabel = \"FO\"\nset = [\"population.zo=0\"]\n[[variant]]\nlabel = \"ZO\"\nset = [\"population.fo=0\"]\n"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for run in ["fo/seed1", "fo/seed2", "zo/seed1", "zo/seed2"] {
        assert!(out.join(run).join("metrics.csv").exists(), "{run}");
    }
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5);
    assert!(out.join("comparison.png").exists());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("FO ") && l.contains("1,2")), "{stdout}");

    // the same runs compared after the fact (as runs made separately would be)
    let cmp = out.join("cmp");
    let dirs = |v: &str, seeds: &[u32]| {
        let d: Vec<String> =
            seeds.iter().map(|s| out.join(format!("{v}/seed{s}")).display().to_string()).collect();
        d.join(",")
    };
    let c = hdo()
        .args(["compare", "--out", cmp.to_str().unwrap(), "--title", "t"])
        .arg(format!("first order={}", dirs("fo", &[1, 2])))
        .arg(format!("ZO={}", dirs("zo", &[2])))
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let table = String::from_utf8_lossy(&c.stdout);
    assert!(table.lines().any(|l| l.starts_with("first order") && l.contains("1,2")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("ZO ") && l.contains(" 2 ")), "{table}");
    let compared = std::fs::read_to_string(cmp.join("summary.csv")).unwrap();
    assert_eq!(compared.lines().count(), 4);
    // the last row of a run is the same in both summaries
    let zo_row = |s: &str, label: &str| {
        s.lines()
            .find(|l| l.starts_with(&format!("\"{label}\",2,")))
            .unwrap()
            .split_once(',')
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(zo_row(&compared, "ZO"), zo_row(&summary, "ZO"));
    assert!(cmp.join("comparison.png").exists());
    for (arg, want) in [("no label here", "LABEL=DIR"), ("x=/nonexistent/run", "config.toml")] {
        let e = hdo().args(["compare", "--out", cmp.to_str().unwrap(), arg]).output().unwrap();
        let err = String::from_utf8_lossy(&e.stderr);
        assert!(!e.status.success() && err.contains(want) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_failed_run_does_not_stop_a_sweep() {
    // the first variant's nodes "diverge" at once (loss above max_loss): the sweep reports it,
    // runs the rest, writes their summary and exits nonzero naming the failed run
    let (_dir, out, o) = sweep(&format!(
        "{TINY}\n[[variant]]\nlabel = \"bad\"\nset = [\"max_loss=0.01\"]\n[[variant]]\nlabel = \"good\"\nset = []\n"
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("1 of 2 runs failed") && err.contains("bad seed 0"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.join("good").join("metrics.csv").exists());
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 2, "{summary}");
}

#[test]
fn errors_name_the_problem_and_exit_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    for (args, want) in [
        (vec!["--set", "zo.lrr=1"], "lrr"),
        (vec!["--set", "fo.batch_size=0"], "fo.batch_size"),
        (vec!["--data-dir", "/nonexistent/mnist"], "train-images-idx3-ubyte"),
    ] {
        let o = hdo()
            .arg("run")
            .arg(&cfg)
            .args(&args)
            .arg("-q")
            .arg("--out")
            .arg(dir.path().join("x"))
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = hdo().args(["run", "/nonexistent.toml"]).output().unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nonexistent.toml")
    );
    let help = hdo().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("hdo run experiments/quickstart.toml"));
}

#[test]
fn resume_continues_from_a_checkpoint_and_a_fresh_run_will_not_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        hdo()
            .args(["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"])
            .args(["--set", "checkpoint_every=2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(out.join("checkpoint.bin").exists());
    let again = run(&[]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("--resume"), "{err}");
    let resumed = run(&["--resume"]);
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        resumed.status.success() && err.contains("already finished (checkpoint at round 4)"),
        "{err}"
    );
    let other = run(&["--resume", "--set", "zo.rv=3"]);
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success() && err.contains("different configuration"), "{err}");
    let fresh = dir.path().join("fresh");
    let none = hdo()
        .args(["run", cfg.to_str().unwrap(), "--out", fresh.to_str().unwrap(), "-q", "--resume"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(none.status.success() && err.contains("starting at round 0"), "{err}");
}

/// `hdo run CFG --out OUT -q ARGS…` in a fresh directory holding `tiny.toml`.
fn run_tiny(dir: &std::path::Path, out: &str, args: &[&str]) -> std::process::Output {
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    hdo()
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(dir.join(out))
        .arg("-q")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn dry_run_describes_every_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_tiny(dir.path(), "out", &["--dry-run", "--set", "seeds=[1,2]"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    // two runs, each with its resolved config, population, parameters, traffic and passes
    assert_eq!(
        text.matches("population: 1 FO + 1 ZO nodes, protocol matching").count(),
        2,
        "{text}"
    );
    assert!(text.contains("seed = 2") && text.contains("7850 trainable parameters"), "{text}");
    // matching of 2 nodes: one pair, 2 vectors of 7850 floats; passes: FO 1 + ZO rv + 1 = 3
    assert!(
        text.contains("62800 bytes of gossip") && text.contains("≈ 4.0 forward + 1.0 backward"),
        "{text}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_fresh_run_into_a_non_empty_out_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/notes.txt"), "mine").unwrap();
    let o = run_tiny(dir.path(), "out", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not empty") && err.contains("--force"), "{err}");
    assert!(!dir.path().join("out/metrics.csv").exists());
    let o = run_tiny(dir.path(), "out", &["--force", "--set", "metrics.per_node=true"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --force replaces hdo's outputs only; per_node adds nodes.csv (2 nodes × 3 evaluations)
    assert_eq!(std::fs::read_to_string(dir.path().join("out/notes.txt")).unwrap(), "mine");
    let nodes = std::fs::read_to_string(dir.path().join("out/nodes.csv")).unwrap();
    assert_eq!(nodes.lines().count(), 1 + 2 * 3, "{nodes}");
    assert!(
        nodes.starts_with("round,node,kind,active,val_loss,val_acc,point\n0,0,fo,true,"),
        "{nodes}"
    );
    let o = run_tiny(dir.path(), "out", &["--force"]);
    assert!(o.status.success() && !dir.path().join("out/nodes.csv").exists());
}

/// A metrics.csv without its wall-clock columns.
fn without_times(csv: &str) -> Vec<String> {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| !header[i].ends_with("_s")).collect();
    csv.lines()
        .map(|l| keep.iter().map(|&i| l.split(',').nth(i).unwrap()).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn jobs_run_a_sweep_in_processes_with_the_results_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = ["--set", "seeds=[1,2,3]"];
    let one = run_tiny(dir.path(), "one", &sweep);
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let many = run_tiny(dir.path(), "many", &[&sweep[..], &["--jobs", "2"]].concat());
    let err = String::from_utf8_lossy(&many.stderr);
    assert!(many.status.success() && err.contains("3 runs in 2 processes"), "{err}");
    for seed in 1..=3 {
        let read = |d: &str| {
            std::fs::read_to_string(dir.path().join(d).join(format!("seed{seed}/metrics.csv")))
                .unwrap()
        };
        assert_eq!(without_times(&read("one")), without_times(&read("many")), "seed {seed}");
    }
    assert!(dir.path().join("many/summary.csv").exists());
    let table = String::from_utf8_lossy(&many.stdout);
    assert!(table.contains("1,2,3"), "{table}");
}

#[test]
fn eval_restores_a_finished_run_and_list_names_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_tiny(dir.path(), "out", &["--set", "checkpoint_every=2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = hdo().arg("eval").arg(dir.path().join("out")).output().unwrap();
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(
        text.contains("at round 4, 200 validation examples") && text.contains("mean model"),
        "{text}"
    );
    // the mean model's accuracy is the run's last mean_model_val_acc
    let csv = std::fs::read_to_string(dir.path().join("out/metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "mean_model_val_acc").unwrap();
    let acc: f64 = csv.lines().last().unwrap().split(',').nth(col).unwrap().parse().unwrap();
    assert!(text.contains(&format!("{:.2}%", 100.0 * acc)), "{text} vs {acc}");
    // without a checkpoint: a clear error
    let o = run_tiny(dir.path(), "plain", &[]);
    assert!(o.status.success());
    let e = hdo().arg("eval").arg(dir.path().join("plain")).output().unwrap();
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("checkpoint_every"), "{err}");
    let l = hdo().arg("list").output().unwrap();
    let text = String::from_utf8_lossy(&l.stdout);
    for name in ["logistic", "transformer", "debiased", "random_pair", "brackets"] {
        assert!(text.contains(name), "{text}");
    }
}
