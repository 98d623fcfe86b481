//! One row of metrics.

use serde::{Deserialize, Serialize};

/// Everything measured at one evaluation. Population-specific fields are empty when that
/// population has no node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Rounds completed.
    pub round: u64,
    /// Interactions so far divided by the number of nodes (the HDO analysis' clock; one round of a
    /// synchronous protocol counts n/2 interactions).
    pub parallel_time: f64,
    /// Mean over nodes of each node's validation loss.
    pub mean_val_loss: f64,
    /// Mean over nodes of each node's validation accuracy.
    pub mean_val_acc: f64,
    /// Mean over nodes of the accuracy on hard negatives (Brackets only).
    pub mean_val_acc_hard: Option<f64>,
    /// Standard deviation over nodes of the validation loss.
    pub std_val_loss: f64,
    /// Validation loss of the mean model (every float tensor averaged over nodes).
    pub mean_model_val_loss: f64,
    /// Validation accuracy of the mean model.
    pub mean_model_val_acc: f64,
    /// Γ = (1/n) Σ‖x_i − μ‖² over trainable parameters.
    pub consensus: f64,
    /// Mean validation loss of FO nodes.
    pub fo_val_loss: Option<f64>,
    /// Mean validation accuracy of FO nodes.
    pub fo_val_acc: Option<f64>,
    /// Mean validation loss of ZO nodes.
    pub zo_val_loss: Option<f64>,
    /// Mean validation accuracy of ZO nodes.
    pub zo_val_acc: Option<f64>,
    /// Mean minibatch training loss of the steps since the previous record (none at round 0).
    pub mean_train_loss: Option<f64>,
    /// Forward passes so far (all nodes).
    pub forward_passes: u64,
    /// Backward passes so far (all nodes).
    pub backward_passes: u64,
    /// Bytes of parameters sent by gossip so far (f32 values, all nodes).
    pub bytes_sent: u64,
    /// Wall-clock seconds since the start of training (evaluation time included).
    pub elapsed_s: f64,
    /// Wall-clock seconds spent in rounds (local steps and gossip), evaluation excluded.
    pub train_s: f64,
    /// `[diagnostics]`: mean cosine similarity between ZO estimates and the true minibatch
    /// gradient since the previous row.
    pub zo_grad_cosine: Option<f64>,
    /// `[diagnostics]`: mean `‖G‖ / ‖∇F‖` of ZO estimates since the previous row.
    pub zo_grad_norm_ratio: Option<f64>,
    /// Nodes still in the population (`on_divergence = "drop"` removes diverged ones); the
    /// means above are over these. 0 in files written before this column existed.
    #[serde(default)]
    pub active_nodes: u64,
    /// Diverged nodes restarted from their healthy peers' mean so far (`on_divergence = "reset"`).
    #[serde(default)]
    pub resets: u64,
    /// D-POEM: validation loss of the radius-weighted average of iterates (mean over nodes of
    /// `Σ_t r̄_t x_t / Σ_t r̄_t`); absent for other protocols.
    #[serde(default)]
    pub avg_iterate_val_loss: Option<f64>,
    /// D-POEM: its validation accuracy.
    #[serde(default)]
    pub avg_iterate_val_acc: Option<f64>,
    /// Protocols with a centre or server (EASGD, DOWNPOUR): validation loss of its parameters
    /// (with the workers' mean running statistics).
    #[serde(default)]
    pub centre_val_loss: Option<f64>,
    /// Its validation accuracy.
    #[serde(default)]
    pub centre_val_acc: Option<f64>,
    /// An `[objective]` run: the mean over nodes of the objective's value.
    #[serde(default)]
    pub objective: Option<f64>,
    /// An `[objective]` run: the best (lowest) node's value, as the LSGD paper reports.
    #[serde(default)]
    pub best_objective: Option<f64>,
    /// With `metrics.per_node`: every node's evaluation (also written as `nodes.csv`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEval>,
}

/// One node's validation result at one evaluation (`metrics.per_node`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeEval {
    /// Node index (FO nodes first).
    pub node: usize,
    /// `fo` or `zo`.
    pub kind: String,
    /// Whether the node is still in the population (a dropped node is not evaluated).
    pub active: bool,
    /// Validation loss (absent for a dropped node).
    pub val_loss: Option<f64>,
    /// Validation accuracy (absent for a dropped node).
    pub val_acc: Option<f64>,
    /// An objective of at most 16 coordinates: the node's point (its trajectory, row by row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub point: Vec<f64>,
}

impl NodeEval {
    /// Header of `nodes.csv`.
    pub const CSV_HEADER: &'static str = "round,node,kind,active,val_loss,val_acc,point";
}

impl Record {
    /// CSV header, in field order.
    pub const CSV_HEADER: &'static str = "round,parallel_time,mean_val_loss,mean_val_acc,mean_val_acc_hard,std_val_loss,mean_model_val_loss,mean_model_val_acc,consensus,fo_val_loss,fo_val_acc,zo_val_loss,zo_val_acc,mean_train_loss,forward_passes,backward_passes,bytes_sent,elapsed_s,train_s,zo_grad_cosine,zo_grad_norm_ratio,active_nodes,resets,avg_iterate_val_loss,avg_iterate_val_acc,objective,best_objective,centre_val_loss,centre_val_acc";

    /// Read a line of `metrics.csv` whose columns are named by `header`. Numbers read back bit
    /// for bit (which `serde_json`'s float parser does not promise, hence CSV over JSONL).
    pub fn from_csv(header: &str, line: &str) -> Result<Record, String> {
        use serde_json::{Number, Value};
        let names: Vec<&str> = header.split(',').collect();
        let cells: Vec<&str> = line.split(',').collect();
        if names.len() != cells.len() {
            return Err(format!("{} cells, the header has {}", cells.len(), names.len()));
        }
        let mut row = serde_json::Map::new();
        for (name, cell) in names.iter().zip(cells) {
            let value = if cell.is_empty() {
                Value::Null
            } else if let Ok(n) = cell.parse::<u64>() {
                Value::from(n)
            } else {
                let x: f64 =
                    cell.parse().map_err(|_| format!("`{name}`: `{cell}` is not a number"))?;
                Number::from_f64(x)
                    .map(Value::Number)
                    .ok_or_else(|| format!("`{name}` is {cell}"))?
            };
            row.insert(name.to_string(), value);
        }
        serde_json::from_value(Value::Object(row)).map_err(|e| e.to_string())
    }

    /// The record as a CSV line (no newline); empty cells for absent values.
    pub fn csv_row(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.round,
            self.parallel_time,
            self.mean_val_loss,
            self.mean_val_acc,
            o(self.mean_val_acc_hard),
            self.std_val_loss,
            self.mean_model_val_loss,
            self.mean_model_val_acc,
            self.consensus,
            o(self.fo_val_loss),
            o(self.fo_val_acc),
            o(self.zo_val_loss),
            o(self.zo_val_acc),
            o(self.mean_train_loss),
            self.forward_passes,
            self.backward_passes,
            self.bytes_sent,
            self.elapsed_s,
            self.train_s,
            o(self.zo_grad_cosine),
            o(self.zo_grad_norm_ratio),
            self.active_nodes,
            self.resets,
            o(self.avg_iterate_val_loss),
            o(self.avg_iterate_val_acc),
            o(self.objective),
            o(self.best_objective),
            o(self.centre_val_loss),
            o(self.centre_val_acc)
        )
    }
}
