//! What a run reports: one [`Record`] per evaluation, written as JSON lines, CSV and a plot.

mod plot;
mod record;
mod trajectory;
mod writer;

pub use plot::{Curve, plot, plot_comparison};
pub use record::{NodeEval, Record};
pub use trajectory::plot_trajectories;
pub use writer::{write_atomic, write_atomic_with, write_outputs};
