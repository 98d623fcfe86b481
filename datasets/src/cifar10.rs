//! CIFAR-10, binary version: `data_batch_1.bin` … `data_batch_5.bin` (training) and
//! `test_batch.bin` (validation), each a sequence of 3,073-byte records — one label byte (0–9),
//! then 3,072 pixel bytes, channel-major 32×32 (red plane, green, blue). Files of any whole
//! number of records are accepted, so subsets work. Pixels are scaled to [0, 1] and normalised
//! per channel once, with CIFAR-10's statistics or ImageNet's (for pretrained weights).

use crate::mnist::Split;
use crate::{DataError, ImageSet};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// The training files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The validation file.
pub const TEST_FILE: &str = "test_batch.bin";

/// Per-channel normalisation `(x/255 − mean)/std`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// CIFAR-10's statistics: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010).
    #[default]
    Cifar,
    /// ImageNet's (what torchvision's pretrained weights expect): mean (0.485, 0.456, 0.406),
    /// std (0.229, 0.224, 0.225).
    Imagenet,
}

impl Normalize {
    /// `(mean, std)` per channel.
    pub fn statistics(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Normalize::Cifar => ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
            Normalize::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }
}

/// Parse one file's records (`path` names it in errors).
pub fn parse(bytes: &[u8], path: &Path, normalize: Normalize) -> Result<ImageSet, DataError> {
    let bad = |problem: String| DataError::Format { path: path.into(), problem };
    if bytes.is_empty() {
        return Err(bad("is empty: a batch file holds at least one record".into()));
    }
    if bytes.len() < RECORD {
        return Err(bad(format!(
            "holds {} bytes, less than one {RECORD}-byte record (1 label + 3,072 pixels)",
            bytes.len()
        )));
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(bad(format!(
            "ends with a partial record: {} of {RECORD} bytes after {} whole records (truncated?)",
            bytes.len() % RECORD,
            bytes.len() / RECORD
        )));
    }
    let (mean, std) = normalize.statistics();
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(bad(format!("record {i}: label {} is not a class 0–9", record[0])));
        }
        labels.push(record[0]);
        for (c, plane) in record[1..].chunks_exact(1024).enumerate() {
            pixels.extend(plane.iter().map(|&p| (p as f32 / 255.0 - mean[c]) / std[c]));
        }
    }
    Ok(ImageSet { pixels, labels, shape: [3, 32, 32], classes: 10 })
}

/// Read `dir`'s five training files and its test file; a missing file is an error naming it.
pub fn load_dir(dir: &Path, normalize: Normalize) -> Result<Split, DataError> {
    let read = |name: &str| -> Result<ImageSet, DataError> {
        let path: PathBuf = dir.join(name);
        if !path.is_file() {
            return Err(DataError::Inconsistent(format!(
                "CIFAR-10: {} is missing (the binary version has {} and {TEST_FILE})",
                path.display(),
                TRAIN_FILES.join(", ")
            )));
        }
        let bytes =
            std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
        parse(&bytes, &path, normalize)
    };
    let mut train = read(TRAIN_FILES[0])?;
    for name in &TRAIN_FILES[1..] {
        let more = read(name)?;
        train.pixels.extend(more.pixels);
        train.labels.extend(more.labels);
    }
    Ok(Split { train, validation: read(TEST_FILE)? })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `n` records with labels `i % 10` and pixel bytes `(i + j) % 256`.
    fn records(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * RECORD);
        for i in 0..n {
            out.push((i % 10) as u8);
            out.extend((0..RECORD - 1).map(|j| ((i + j) % 256) as u8));
        }
        out
    }

    #[test]
    fn records_parse_into_normalised_channel_major_images() {
        let set = parse(&records(3), Path::new("x.bin"), Normalize::Cifar).unwrap();
        assert_eq!((set.len(), set.shape, set.classes), (3, [3, 32, 32], 10));
        assert_eq!(set.labels, vec![0, 1, 2]);
        // image 1, green plane, pixel 5: byte (1 + 1024 + 5) % 256
        let byte = ((1 + 1024 + 5) % 256) as f32;
        let want = (byte / 255.0 - 0.4822) / 0.1994;
        assert!((set.pixels[3072 + 1024 + 5] - want).abs() < 1e-6);
        let imagenet = parse(&records(1), Path::new("x.bin"), Normalize::Imagenet).unwrap();
        assert!((imagenet.pixels[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let mut truncated = records(2);
        truncated.pop();
        let e = parse(&truncated, Path::new("data_batch_1.bin"), Normalize::Cifar).unwrap_err();
        assert!(
            e.to_string().contains("data_batch_1.bin") && e.to_string().contains("3073"),
            "{e}"
        );
        let e = parse(&[], Path::new("empty.bin"), Normalize::Cifar).unwrap_err().to_string();
        assert!(e.contains("empty.bin"), "{e}");
        let mut bad = records(2);
        bad[RECORD] = 10;
        let e = parse(&bad, Path::new("t.bin"), Normalize::Cifar).unwrap_err().to_string();
        assert!(e.contains("t.bin") && e.contains("record 1") && e.contains("label 10"), "{e}");
    }

    #[test]
    fn a_directory_of_subsets_loads_and_a_missing_file_is_named() {
        let dir = std::env::temp_dir().join(format!("hdo-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (k, name) in TRAIN_FILES.iter().enumerate() {
            std::fs::write(dir.join(name), records(k + 1)).unwrap();
        }
        let e = load_dir(&dir, Normalize::Cifar).unwrap_err().to_string();
        assert!(e.contains(TEST_FILE), "{e}");
        std::fs::write(dir.join(TEST_FILE), records(4)).unwrap();
        let split = load_dir(&dir, Normalize::Cifar).unwrap();
        assert_eq!((split.train.len(), split.validation.len()), (15, 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
