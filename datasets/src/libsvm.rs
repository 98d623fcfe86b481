//! The LIBSVM / svmlight text format: one example per line, `label index:value …`.
//!
//! Indices are 1-based and strictly increasing within a line; absent features are 0, so sparse
//! rows become dense vectors of the file's feature count (the largest index seen, or the
//! `features` the config gives). Labels are numbers: a data set with two label values is binary,
//! mapped to classes 0 / 1 in ascending order (−1/+1, 0/1 and 1/2 all become 0/1); more values
//! are classes `0..k` in ascending order. `#` starts a comment. Every malformed line, index, value
//! or label is an error naming the file and line.

use crate::error::DataError;
use crate::images::ImageSet;
use std::path::{Path, PathBuf};

/// Most classes a multiclass file may have (labels are stored as bytes).
pub const MAX_CLASSES: usize = 256;
/// Most features a file may declare (a typo in an index must not allocate gigabytes per row).
pub const MAX_FEATURES: usize = 1 << 24;

/// One parsed file: sparse rows and raw labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparse {
    /// Where it came from (for errors).
    pub path: PathBuf,
    /// `(0-based index, value)` per row, increasing.
    pub rows: Vec<Vec<(usize, f32)>>,
    /// The label of each row, as written.
    pub labels: Vec<f64>,
}

impl Sparse {
    /// Largest feature index + 1.
    pub fn features(&self) -> usize {
        self.rows.iter().filter_map(|r| r.last()).map(|&(i, _)| i + 1).max().unwrap_or(0)
    }
}

/// Parse `text` (named `path` in errors).
pub fn parse(text: &str, path: &Path) -> Result<Sparse, DataError> {
    let at =
        |line: usize, problem: String| DataError::format(path, format!("line {line}: {problem}"));
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (k, raw) in text.lines().enumerate() {
        let line_no = k + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let label_text = fields.next().unwrap_or_default();
        let label: f64 =
            label_text.parse().ok().filter(|l: &f64| l.is_finite()).ok_or_else(|| {
                at(line_no, format!("label `{label_text}` is not a finite number"))
            })?;
        let mut row = Vec::new();
        let mut last = 0usize;
        for field in fields {
            let (index, value) = field
                .split_once(':')
                .ok_or_else(|| at(line_no, format!("`{field}` is not `index:value`")))?;
            let index: usize = index
                .parse()
                .map_err(|_| at(line_no, format!("index `{index}` is not a positive integer")))?;
            if index == 0 {
                return Err(at(line_no, "index 0: LIBSVM indices start at 1".into()));
            }
            if index > MAX_FEATURES {
                return Err(at(
                    line_no,
                    format!("index {index} is above the limit of {MAX_FEATURES} features"),
                ));
            }
            if index <= last {
                return Err(at(
                    line_no,
                    format!("index {index} after {last}: indices must be strictly increasing"),
                ));
            }
            last = index;
            let value: f32 =
                value.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                    at(line_no, format!("value `{value}` of index {index} is not a finite number"))
                })?;
            row.push((index - 1, value));
        }
        rows.push(row);
        labels.push(label);
    }
    if rows.is_empty() {
        return Err(DataError::format(path, "no examples"));
    }
    Ok(Sparse { path: path.to_path_buf(), rows, labels })
}

/// Read and parse a LIBSVM file.
pub fn read(path: &Path) -> Result<Sparse, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// The class of each distinct label value, shared by all `sets` (training and validation): the
/// values in ascending order.
pub fn classes(sets: &[&Sparse]) -> Result<Vec<f64>, DataError> {
    let mut values: Vec<f64> = sets.iter().flat_map(|s| s.labels.iter().copied()).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.len() < 2 {
        let path = sets.first().map(|s| s.path.clone()).unwrap_or_default();
        return Err(DataError::format(
            path,
            format!("only one label value ({values:?}): nothing to classify"),
        ));
    }
    if values.len() > MAX_CLASSES {
        let path = sets.first().map(|s| s.path.clone()).unwrap_or_default();
        return Err(DataError::format(
            path,
            format!("{} label values; at most {MAX_CLASSES} classes", values.len()),
        ));
    }
    Ok(values)
}

/// Dense examples of `set` with `features` columns and the class list `classes`, as an
/// [`ImageSet`] of shape `[1, 1, features]` (models flatten it).
pub fn densify(set: &Sparse, features: usize, classes: &[f64]) -> Result<ImageSet, DataError> {
    if features == 0 || features > MAX_FEATURES {
        return Err(DataError::format(
            &set.path,
            format!("{features} features; must be in 1..={MAX_FEATURES}"),
        ));
    }
    if let Some(needed) = Some(set.features()).filter(|&f| f > features) {
        return Err(DataError::format(
            &set.path,
            format!("has feature index {needed}, but the data declares {features} features"),
        ));
    }
    let mut pixels = vec![0f32; set.rows.len() * features];
    for (row, dense) in set.rows.iter().zip(pixels.chunks_mut(features)) {
        for &(i, v) in row {
            dense[i] = v;
        }
    }
    let labels = set
        .labels
        .iter()
        .map(|l| {
            classes.iter().position(|c| c == l).map(|c| c as u8).ok_or_else(|| {
                DataError::format(
                    &set.path,
                    format!("label {l} is not among the classes {classes:?}"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ImageSet { pixels, labels, shape: [1, 1, features], classes: classes.len() })
}

/// Seed of the held-out rows: fixed, so runs with different seeds share a validation set.
const HOLDOUT_SEED: u64 = 0x11B5_F00D;

/// Training and validation sets from LIBSVM files: `train`, and `validation` if given, else a
/// fixed pseudo-random `fraction` of the training rows (at least one row each side). Classes and
/// the feature count (`features`, or the largest index in either file) are shared.
pub fn load(
    train: &Path,
    validation: Option<&Path>,
    fraction: f64,
    features: Option<usize>,
) -> Result<(ImageSet, ImageSet), DataError> {
    let train = read(train)?;
    let (train, validation) = match validation {
        Some(v) => (train, read(v)?),
        None => {
            let n = train.rows.len();
            if n < 2 {
                return Err(DataError::format(
                    &train.path,
                    "one example cannot be split into training and validation",
                ));
            }
            let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
            let shards = crate::split::even_shards(n, 1, HOLDOUT_SEED);
            let order = shards.into_iter().next().unwrap_or_default();
            let pick = |idx: &[usize]| Sparse {
                path: train.path.clone(),
                rows: idx.iter().map(|&i| train.rows[i].clone()).collect(),
                labels: idx.iter().map(|&i| train.labels[i]).collect(),
            };
            let (v, t) = order.split_at(held);
            (pick(t), pick(v))
        }
    };
    let classes = classes(&[&train, &validation])?;
    let features = features.unwrap_or(train.features().max(validation.features()));
    Ok((densify(&train, features, &classes)?, densify(&validation, features, &classes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.svm")
    }

    #[test]
    fn parses_sparse_rows_and_maps_labels() {
        let text = "+1 1:0.5 3:2 # first\n\n-1 2:1\n+1\n";
        let s = parse(text, p()).expect("parse");
        assert_eq!(s.rows.len(), 3);
        assert_eq!(s.features(), 3);
        let c = classes(&[&s]).expect("classes");
        assert_eq!(c, vec![-1.0, 1.0]);
        let d = densify(&s, 4, &c).expect("dense");
        assert_eq!(d.pixels, vec![0.5, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.labels, vec![1, 0, 1]);
        assert_eq!(d.shape, [1, 1, 4]);
        for (text, expected) in [("0 1:1\n1 1:2\n", vec![0u8, 1]), ("1 1:1\n2 1:2\n", vec![0, 1])] {
            let s = parse(text, p()).expect(text);
            let d = densify(&s, 1, &classes(&[&s]).expect("c")).expect("d");
            assert_eq!(d.labels, expected, "{text}");
        }
        let multi = parse("3 1:1\n1 1:1\n7 1:1\n", p()).expect("multi");
        let c = classes(&[&multi]).expect("c");
        assert_eq!(densify(&multi, 1, &c).expect("d").labels, vec![1, 0, 2]);
    }

    #[test]
    fn every_malformed_line_is_an_error_naming_file_and_line() {
        for (text, line, words) in [
            ("1 1:1\nx 1:1\n", 2, "label `x`"),
            ("1 1:1\nnan 1:1\n", 2, "label `nan`"),
            ("1 1-1\n", 1, "`1-1` is not `index:value`"),
            ("1 a:1\n", 1, "index `a`"),
            ("1 -2:1\n", 1, "index `-2`"),
            ("1 0:1\n", 1, "start at 1"),
            ("1 3:1 2:1\n", 1, "strictly increasing"),
            ("1 2:1 2:1\n", 1, "strictly increasing"),
            ("1 1:x\n", 1, "value `x`"),
            ("1 1:inf\n", 1, "value `inf`"),
            ("1 99999999999:1\n", 1, "limit"),
        ] {
            let e = parse(text, p()).expect_err(text).to_string();
            assert!(e.contains("t.svm") && e.contains(&format!("line {line}")), "{text}: {e}");
            assert!(e.contains(words), "{text}: {e}");
        }
        assert!(parse("# nothing\n", p()).is_err_and(|e| e.to_string().contains("no examples")));
        let one = parse("1 1:1\n1 2:1\n", p()).expect("one label");
        assert!(classes(&[&one]).is_err_and(|e| e.to_string().contains("one label")));
        let wide = parse("1 5:1\n2 1:1\n", p()).expect("wide");
        let e = densify(&wide, 3, &[1.0, 2.0]).expect_err("too narrow").to_string();
        assert!(e.contains("index 5") && e.contains("3 features"), "{e}");
        let e = read(Path::new("/nonexistent/a9a")).expect_err("missing").to_string();
        assert!(e.contains("/nonexistent/a9a"), "{e}");
    }

    #[test]
    fn holds_out_a_fraction_or_reads_a_validation_file() {
        let dir = tempfile::tempdir().expect("dir");
        let train = dir.path().join("train.svm");
        let lines: String = (0..10)
            .map(|i| format!("{} {}:1\n", if i % 2 == 0 { -1 } else { 1 }, i % 4 + 1))
            .collect();
        std::fs::write(&train, lines).expect("write");
        let (t, v) = load(&train, None, 0.3, None).expect("load");
        assert_eq!((t.len(), v.len()), (7, 3));
        assert_eq!(t.shape, [1, 1, 4]);
        assert_eq!(load(&train, None, 0.3, None).expect("again"), (t, v));
        let val = dir.path().join("val.svm");
        std::fs::write(&val, "1 6:2\n").expect("write");
        let (t, v) = load(&train, Some(&val), 0.3, None).expect("with file");
        assert_eq!((t.len(), v.len(), t.shape, v.classes), (10, 1, [1, 1, 6], 2));
        let e = load(&train, Some(&val), 0.3, Some(5)).expect_err("too few features").to_string();
        assert!(e.contains("val.svm") && e.contains("index 6"), "{e}");
    }
}
