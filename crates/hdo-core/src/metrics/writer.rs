//! Writing outputs atomically: a temporary file in the same directory, then a rename, so a
//! reader never sees a half-written file and an interrupted run leaves the previous version.

use super::{Record, plot};
use crate::error::Error;
use std::path::Path;

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// (Re)write `metrics.jsonl`, `metrics.csv` and `metrics.png` in `dir` from all records so far.
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
    plot(&dir.join("metrics.png"), title, records)
}
