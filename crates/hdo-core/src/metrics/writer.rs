//! Writing outputs atomically: a temporary file in the same directory, then a rename, so a
//! reader never sees a half-written file and an interrupted run leaves the previous version.

use super::{NodeEval, Record, plot, plot_trajectories};
use crate::error::Error;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Stream a file to `path` through a temporary file, flushed to disk before the rename (and the
/// directory after it), so that even a power cut leaves either the old file or the whole new one.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = (|| {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    // best effort: not every platform can open and sync a directory
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// (Re)write `metrics.jsonl`, `metrics.csv` and `metrics.png` in `dir` from all records so far,
/// and `nodes.csv` when the records carry per-node evaluations (and `trajectories.png` when
/// those are points of a two-dimensional objective).
pub fn write_outputs(dir: &Path, title: &str, records: &[Record]) -> Result<(), Error> {
    let mut jsonl = String::new();
    let mut csv = format!("{}\n", Record::CSV_HEADER);
    for r in records {
        jsonl.push_str(&serde_json::to_string(r).unwrap_or_default());
        jsonl.push('\n');
        csv.push_str(&r.csv_row());
        csv.push('\n');
    }
    write_atomic(&dir.join("metrics.jsonl"), jsonl.as_bytes())?;
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    if records.iter().any(|r| !r.nodes.is_empty()) {
        let o = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut nodes = format!("{}\n", NodeEval::CSV_HEADER);
        for r in records {
            for e in &r.nodes {
                let point: Vec<String> = e.point.iter().map(f64::to_string).collect();
                nodes.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    r.round,
                    e.node,
                    e.kind,
                    e.active,
                    o(e.val_loss),
                    o(e.val_acc),
                    point.join(" ")
                ));
            }
        }
        write_atomic(&dir.join("nodes.csv"), nodes.as_bytes())?;
        plot_trajectories(&dir.join("trajectories.png"), title, records)?;
    }
    plot(&dir.join("metrics.png"), title, records)
}
