//! Finished runs side by side: load run directories, tabulate their last evaluation, and write
//! `summary.csv` and `comparison.png`. Sweeps use it for their runs; `hdo compare` for runs made
//! separately (other days, other machines) that belong in one figure.

use crate::error::Error;
use crate::metrics::{Record, plot_comparison, write_atomic};
use std::path::{Path, PathBuf};

/// One finished (or stopped) run: its label in the comparison, seed and records.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Label of the curve it belongs to (runs with one label are averaged).
    pub label: String,
    /// The run's seed.
    pub seed: u64,
    /// Where it was written (for messages).
    pub dir: PathBuf,
    /// Its evaluations, in round order.
    pub records: Vec<Record>,
}

/// Read the run written in `dir` (its `metrics.csv` and `config.toml`) under `label`; the
/// numbers are exactly those the run computed.
pub fn load(label: &str, dir: &Path) -> Result<Finished, Error> {
    let bad = |file: &str, problem: String| Error::Run { path: dir.join(file), problem };
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).map_err(|e| bad(file, format!("cannot read: {e}")))
    };
    let config: toml::Table =
        read("config.toml")?.parse().map_err(|e| bad("config.toml", format!("not TOML: {e}")))?;
    let seed = config
        .get("seed")
        .and_then(|v| v.as_integer())
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| bad("config.toml", "no `seed` (not a run directory of hdo?)".into()))?;
    let mut records: Vec<Record> = Vec::new();
    let text = read("metrics.csv")?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, h)| h).unwrap_or_default();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let r = Record::from_csv(header, line)
            .map_err(|e| bad("metrics.csv", format!("line {}: {e}", i + 1)))?;
        if records.last().is_some_and(|p| p.round >= r.round) {
            return Err(bad("metrics.csv", format!("line {}: rounds out of order", i + 1)));
        }
        records.push(r);
    }
    if records.is_empty() {
        return Err(bad("metrics.csv", "no evaluations".into()));
    }
    Ok(Finished { label: label.to_string(), seed, dir: dir.to_path_buf(), records })
}

/// Labels in order of first appearance.
fn labels(runs: &[Finished]) -> Vec<&str> {
    let mut labels: Vec<&str> = Vec::new();
    for run in runs {
        if !labels.contains(&run.label.as_str()) {
            labels.push(&run.label);
        }
    }
    labels
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// What a comparison plots: the x axis and the metric of each panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axes {
    /// Horizontal axis.
    pub x: Metric,
    /// Left panel.
    pub left: Metric,
    /// Right panel.
    pub right: Metric,
}

impl Default for Axes {
    fn default() -> Self {
        Axes { x: Metric::Round, left: Metric::ValLoss, right: Metric::ValAcc }
    }
}

/// A column of the metrics a comparison can plot (`hdo compare --x/--left/--right`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Rounds.
    Round,
    /// `parallel_time`.
    ParallelTime,
    /// MiB sent by gossip.
    Mib,
    /// Its log₁₀ (protocols whose traffic differs by orders of magnitude).
    Log10Mib,
    /// Mean validation loss over nodes.
    ValLoss,
    /// Its log₁₀ (losses that span decades: a diverging learning rate beside a tuned one).
    Log10ValLoss,
    /// Mean validation accuracy over nodes.
    ValAcc,
    /// Mean training loss since the previous evaluation.
    TrainLoss,
    /// Validation loss of the mean model.
    MeanModelLoss,
    /// log₁₀ of the consensus distance Γ.
    Log10Consensus,
    /// Validation loss of D-POEM's radius-weighted average iterate.
    AvgIterateLoss,
    /// Its accuracy.
    AvgIterateAcc,
    /// An objective run: the mean node's value.
    Objective,
    /// An objective run: the best node's value.
    BestObjective,
    /// log₁₀ of the best node's value (matrix completion: decades of accuracy).
    Log10BestObjective,
    /// Validation loss of the centre / server (EASGD, DOWNPOUR).
    CentreLoss,
    /// Its accuracy.
    CentreAcc,
}

impl Metric {
    /// Every metric: its command-line name and axis label.
    pub const ALL: [(Metric, &'static str, &'static str); 17] = [
        (Metric::Round, "round", "round"),
        (Metric::ParallelTime, "parallel_time", "parallel time"),
        (Metric::Mib, "mib", "MiB sent"),
        (Metric::Log10Mib, "log10_mib", "log10 MiB sent"),
        (Metric::ValLoss, "val_loss", "validation loss"),
        (Metric::Log10ValLoss, "log10_val_loss", "log10 validation loss"),
        (Metric::ValAcc, "val_acc", "validation accuracy"),
        (Metric::TrainLoss, "train_loss", "training loss"),
        (Metric::MeanModelLoss, "mean_model_loss", "mean model validation loss"),
        (Metric::Log10Consensus, "log10_consensus", "log10 consensus distance"),
        (Metric::AvgIterateLoss, "avg_iterate_loss", "averaged iterate validation loss"),
        (Metric::AvgIterateAcc, "avg_iterate_acc", "averaged iterate validation accuracy"),
        (Metric::Objective, "objective", "objective (mean over nodes)"),
        (Metric::BestObjective, "best_objective", "best node's objective"),
        (Metric::Log10BestObjective, "log10_best_objective", "log10 best node's objective"),
        (Metric::CentreLoss, "centre_loss", "centre validation loss"),
        (Metric::CentreAcc, "centre_acc", "centre validation accuracy"),
    ];

    /// The metric named `name`.
    pub fn parse(name: &str) -> Result<Metric, String> {
        Self::ALL.iter().find(|m| m.1 == name).map(|m| m.0).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|m| m.1).collect();
            format!("unknown metric `{name}`; one of {}", names.join(", "))
        })
    }

    /// Its axis label.
    pub fn label(self) -> &'static str {
        Self::ALL.iter().find(|m| m.0 == self).map_or("", |m| m.2)
    }

    /// Its value in `r` (NaN where the run has none).
    pub fn of(self, r: &Record) -> f64 {
        match self {
            Metric::Round => r.round as f64,
            Metric::ParallelTime => r.parallel_time,
            Metric::Mib => r.bytes_sent as f64 / (1u64 << 20) as f64,
            Metric::Log10Mib => (r.bytes_sent as f64 / (1u64 << 20) as f64).log10(),
            Metric::ValLoss => r.mean_val_loss,
            Metric::Log10ValLoss => r.mean_val_loss.log10(),
            Metric::ValAcc => r.mean_val_acc,
            Metric::TrainLoss => r.mean_train_loss.unwrap_or(f64::NAN),
            Metric::MeanModelLoss => r.mean_model_val_loss,
            Metric::Log10Consensus => r.consensus.log10(),
            Metric::AvgIterateLoss => r.avg_iterate_val_loss.unwrap_or(f64::NAN),
            Metric::AvgIterateAcc => r.avg_iterate_val_acc.unwrap_or(f64::NAN),
            Metric::Objective => r.objective.unwrap_or(f64::NAN),
            Metric::BestObjective => r.best_objective.unwrap_or(f64::NAN),
            Metric::Log10BestObjective => r.best_objective.unwrap_or(f64::NAN).log10(),
            Metric::CentreLoss => r.centre_val_loss.unwrap_or(f64::NAN),
            Metric::CentreAcc => r.centre_val_acc.unwrap_or(f64::NAN),
        }
    }
}

/// Each label's curve: the mean over its runs at every evaluation they all reached. Runs of one
/// label must have been evaluated at the same rounds.
fn curves(runs: &[Finished], axes: Axes) -> Result<Vec<crate::metrics::Curve>, Error> {
    labels(runs)
        .into_iter()
        .map(|label| {
            let group: Vec<&Finished> = runs.iter().filter(|r| r.label == label).collect();
            let rows = group.iter().map(|r| r.records.len()).min().unwrap_or(0);
            let points = (0..rows)
                .map(|i| {
                    let round = group[0].records[i].round;
                    if let Some(other) = group.iter().find(|r| r.records[i].round != round) {
                        return Err(Error::Run {
                            path: other.dir.clone(),
                            problem: format!(
                                "evaluated at round {} where {} was at round {round}: runs of \
                                 \"{label}\" need the same eval_every",
                                other.records[i].round,
                                group[0].dir.display()
                            ),
                        });
                    }
                    let k = group.len() as f64;
                    let mean =
                        |m: Metric| group.iter().map(|r| m.of(&r.records[i])).sum::<f64>() / k;
                    Ok((mean(axes.x), mean(axes.left), mean(axes.right)))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok((label.to_string(), points))
        })
        .collect()
}

/// Write `summary.csv` (the last record of every run) and `comparison.png` (each label's mean
/// over its runs of validation loss and accuracy against rounds) into `out`.
pub fn write(out: &Path, title: &str, runs: &[Finished]) -> Result<(), Error> {
    write_with(out, title, runs, Axes::default())
}

/// [`write`] with other axes for the plot.
pub fn write_with(out: &Path, title: &str, runs: &[Finished], axes: Axes) -> Result<(), Error> {
    let series = curves(runs, axes)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut csv = format!("label,seed,{}\n", Record::CSV_HEADER);
    for run in runs {
        if let Some(last) = run.records.last() {
            let label = run.label.replace('"', "'");
            csv.push_str(&format!("\"{label}\",{},{}\n", run.seed, last.csv_row()));
        }
    }
    write_atomic(&out.join("summary.csv"), csv.as_bytes())?;
    let labels = [axes.x.label(), axes.left.label(), axes.right.label()];
    plot_comparison(&out.join("comparison.png"), title, &series, labels)
}

/// A plain-text table, one line per label: runs, seeds, last round, validation accuracy and loss
/// at it (mean ± sample standard deviation over runs); for objective runs the best node's and the
/// mean objective instead.
pub fn table(runs: &[Finished]) -> String {
    let width = labels(runs).iter().map(|l| l.chars().count()).max().unwrap_or(5).max(5);
    // objective runs: the best node's value and the mean over nodes instead of accuracy and loss
    let objective =
        runs.iter().all(|r| r.records.last().is_some_and(|l| l.best_objective.is_some()));
    let mut out = if objective {
        format!(
            "{:<width$}  runs  seeds        round  best objective          mean objective\n",
            "label"
        )
    } else {
        format!("{:<width$}  runs  seeds        round  val accuracy        val loss\n", "label")
    };
    for label in labels(runs) {
        let group: Vec<&Finished> = runs.iter().filter(|r| r.label == label).collect();
        let last: Vec<&Record> = group.iter().filter_map(|r| r.records.last()).collect();
        let seeds = group.iter().map(|r| r.seed.to_string()).collect::<Vec<_>>().join(",");
        let rounds: Vec<u64> = last.iter().map(|r| r.round).collect();
        let round = match (rounds.iter().min(), rounds.iter().max()) {
            (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
            (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
            _ => "-".into(),
        };
        let loss: Vec<f64> = last.iter().map(|r| r.mean_val_loss).collect();
        if objective {
            let best: Vec<f64> = last.iter().filter_map(|r| r.best_objective).collect();
            let ((bm, bsd), (lm, lsd)) = (mean_sd(&best), mean_sd(&loss));
            out.push_str(&format!(
                "{label:<width$}  {:>4}  {seeds:<11}  {round:>5}  {bm:>10.4e} ± {bsd:<9.2e}  {lm:.4e} ± {lsd:.2e}\n",
                group.len()
            ));
            continue;
        }
        let acc: Vec<f64> = last.iter().map(|r| 100.0 * r.mean_val_acc).collect();
        let ((am, asd), (lm, lsd)) = (mean_sd(&acc), mean_sd(&loss));
        out.push_str(&format!(
            "{label:<width$}  {:>4}  {seeds:<11}  {round:>5}  {am:>6.2} ± {asd:<5.2}%  {lm:.4} ± {lsd:.4}\n",
            group.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: u64, loss: f64, acc: f64) -> Record {
        Record {
            round,
            parallel_time: 0.0,
            mean_val_loss: loss,
            mean_val_acc: acc,
            mean_val_acc_hard: None,
            std_val_loss: 0.0,
            mean_model_val_loss: loss,
            mean_model_val_acc: acc,
            consensus: 0.0,
            fo_val_loss: None,
            fo_val_acc: None,
            zo_val_loss: Some(loss),
            zo_val_acc: Some(acc),
            mean_train_loss: None,
            forward_passes: 0,
            backward_passes: 0,
            bytes_sent: 0,
            elapsed_s: 1.0,
            train_s: 1.0,
            zo_grad_cosine: None,
            zo_grad_norm_ratio: None,
            active_nodes: 1,
            resets: 0,
            avg_iterate_val_loss: None,
            avg_iterate_val_acc: None,
            centre_val_loss: None,
            centre_val_acc: None,
            objective: None,
            best_objective: None,
            nodes: Vec::new(),
        }
    }

    fn run(label: &str, seed: u64, rounds: &[(u64, f64, f64)]) -> Finished {
        Finished {
            label: label.into(),
            seed,
            dir: PathBuf::from(format!("{label}/{seed}")),
            records: rounds.iter().map(|&(r, l, a)| record(r, l, a)).collect(),
        }
    }

    #[test]
    fn curves_average_each_label_and_the_table_shows_mean_and_sd() {
        let runs = [
            run("a", 0, &[(0, 2.0, 0.1), (10, 1.0, 0.80)]),
            run("a", 1, &[(0, 2.0, 0.1), (10, 0.5, 0.90)]),
            run("b", 0, &[(0, 2.0, 0.1), (10, 0.2, 0.95)]),
        ];
        let c = curves(&runs, Axes::default()).unwrap();
        assert_eq!(c.len(), 2);
        let (round, loss, acc) = c[0].1[1];
        assert!(round == 10.0 && loss == 0.75 && (acc - 0.85).abs() < 1e-12, "{:?}", c[0]);
        assert_eq!(c[1].1[1], (10.0, 0.2, 0.95));
        let t = table(&runs);
        let a = t.lines().find(|l| l.starts_with("a ")).unwrap();
        // accuracies 80 and 90: mean 85, sample sd 7.07
        assert!(a.contains("0,1") && a.contains("85.00 ± 7.07") && a.contains("0.7500"), "{t}");
    }

    #[test]
    fn objective_runs_are_tabled_by_their_best_node() {
        let mut runs = [run("lgd", 0, &[(0, 2.0, 0.0)]), run("lgd", 1, &[(0, 4.0, 0.0)])];
        runs[0].records[0].best_objective = Some(1e-8);
        runs[1].records[0].best_objective = Some(3e-8);
        let t = table(&runs);
        assert!(t.contains("best objective"), "{t}");
        let row = t.lines().find(|l| l.starts_with("lgd")).unwrap();
        assert!(row.contains("2.0000e-8") && row.contains("3.0000e0"), "{t}");
        runs[1].records[0].best_objective = None;
        assert!(
            table(&runs).contains("val accuracy"),
            "a model on data among them: the usual table"
        );
    }

    #[test]
    fn other_axes_plot_other_columns() {
        let mut runs = [run("a", 0, &[(0, 2.0, 0.1), (10, 1.0, 0.8)])];
        runs[0].records[1].bytes_sent = 3 << 20;
        runs[0].records[1].consensus = 1e-3;
        let axes = Axes {
            x: Metric::parse("mib").unwrap(),
            left: Metric::parse("log10_val_loss").unwrap(),
            right: Metric::parse("log10_consensus").unwrap(),
        };
        let c = curves(&runs, axes).unwrap();
        let (x, left, right) = c[0].1[1];
        assert_eq!(x, 3.0);
        assert_eq!(left, 0.0);
        assert!((right + 3.0).abs() < 1e-12);
        assert!(c[0].1[0].2.is_infinite(), "Γ = 0 at round 0: −∞, which plots skip");
        let e = Metric::parse("bytes").unwrap_err();
        assert!(e.contains("bytes") && e.contains("mib"), "{e}");
        for (m, name, label) in Metric::ALL {
            assert_eq!(Metric::parse(name), Ok(m));
            assert_eq!(m.label(), label);
        }
    }

    #[test]
    fn runs_of_one_label_must_share_their_evaluation_rounds() {
        let runs = [
            run("a", 0, &[(0, 2.0, 0.1), (10, 1.0, 0.8)]),
            run("a", 1, &[(0, 2.0, 0.1), (5, 1.0, 0.8)]),
        ];
        let e = curves(&runs, Axes::default()).unwrap_err().to_string();
        assert!(e.contains("a/1") && e.contains("eval_every"), "{e}");
    }

    #[test]
    fn loading_names_the_file_and_line_that_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let e = load("x", dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.toml"), "{e}");
        std::fs::write(dir.path().join("config.toml"), "seed = 4\n").unwrap();
        let h = Record::CSV_HEADER;
        let good = record(0, 2.0, 0.1).csv_row();
        std::fs::write(dir.path().join("metrics.csv"), format!("{h}\n{good}\n5,1\n")).unwrap();
        let e = load("x", dir.path()).unwrap_err().to_string();
        assert!(e.contains("metrics.csv") && e.contains("line 3"), "{e}");
        let mut later = record(5, 1.0, 0.5);
        // values that serde_json's float parser reads back one ulp off
        (later.train_s, later.mean_val_loss) = (0.0009062180000000001, 0.10333333333333332);
        let rows = format!("{h}\n{good}\n{}\n", later.csv_row());
        std::fs::write(dir.path().join("metrics.csv"), rows).unwrap();
        let run = load("x", dir.path()).unwrap();
        assert_eq!((run.seed, run.records.len()), (4, 2));
        assert_eq!(run.records[1], later);
    }
}
