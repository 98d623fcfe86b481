//! The progress bar: rounds, ETA and the current mean loss; one line per evaluation.

use hdo_core::Event;
use indicatif::{ProgressBar, ProgressStyle};

/// Progress display for one run.
pub struct Progress {
    bar: ProgressBar,
    last_val: String,
    quiet: bool,
}

impl Progress {
    /// A bar over `total` rounds starting at `from` (a resumed run; hidden with `quiet`).
    pub fn new(total: u64, from: u64, quiet: bool) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
        bar.set_position(from);
        bar.reset_eta();
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} rounds [{elapsed_precise} < ETA {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar, last_val: String::new(), quiet }
    }

    /// React to a training event.
    pub fn handle(&mut self, event: Event<'_>) {
        match event {
            Event::Round { round, train_loss, .. } => {
                self.bar.set_position(round);
                self.bar.set_message(format!("train loss {train_loss:.4}{}", self.last_val));
            }
            Event::Diverged { node, kind, round, loss, action } => {
                let line = format!(
                    "hdo: warning: node {node} ({kind}) diverged at round {round} (training loss \
                     {loss}); {action}"
                );
                if self.bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.bar.println(line);
                }
            }
            Event::Evaluated(r) => {
                self.last_val = format!(
                    " | val loss {:.4} acc {:.1}%",
                    r.mean_val_loss,
                    100.0 * r.mean_val_acc
                );
                let line = if let Some(best) = r.best_objective {
                    format!(
                        "round {:>5}  objective {:.6}  best {best:.6}  | mean point {:.6}  | Γ {:.2e}  | {:.1}s",
                        r.round, r.mean_val_loss, r.mean_model_val_loss, r.consensus, r.elapsed_s
                    )
                } else {
                    format!(
                        "round {:>5}  val loss {:.4}  acc {:6.2}%  | mean model {:.4} {:6.2}%  | std {:.2e}  Γ {:.2e}  | {:.1}s",
                        r.round,
                        r.mean_val_loss,
                        100.0 * r.mean_val_acc,
                        r.mean_model_val_loss,
                        100.0 * r.mean_model_val_acc,
                        r.std_val_loss,
                        r.consensus,
                        r.elapsed_s
                    )
                };
                // A hidden bar (quiet, or not a terminal) swallows println: log lines go to stderr.
                if self.bar.is_hidden() {
                    if !self.quiet {
                        eprintln!("{line}");
                    }
                } else {
                    self.bar.println(line);
                }
            }
        }
    }

    /// Close the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
