//! MNIST: the original IDX files (LeCun, Cortes, Burges; CC BY-SA 3.0).
//!
//! Three ways in:
//! * [`bundled`]: the 10k test split compiled into the binary (1.6 MB gzip), split into train and
//!   validation, so a fresh clone trains with no network and no data directory;
//! * [`load_dir`]: the full 60k/10k split from a directory holding the four standard files,
//!   gzip or raw (`train-images-idx3-ubyte[.gz]`, …);
//! * [`download`]: fetch the four files from a public mirror into a directory, verify their
//!   published sha256 (of the decompressed bytes), and write them atomically.

use crate::{DataError, ImageSet, idx};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Mean and standard deviation of MNIST pixels in `[0, 1]`, used to normalise inputs.
pub const NORMALIZATION: (f32, f32) = (0.1307, 0.3081);

/// The four files, with the sha256 of their uncompressed contents.
pub const FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// Public mirrors tried in order by [`download`] (each serves `<name>.gz`).
pub const MIRRORS: [&str; 2] = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

const BUNDLED_IMAGES: &[u8] = include_bytes!("../data/mnist/t10k-images-idx3-ubyte.gz");
const BUNDLED_LABELS: &[u8] = include_bytes!("../data/mnist/t10k-labels-idx1-ubyte.gz");

/// A training and a validation set.
#[derive(Debug, Clone)]
pub struct Split {
    /// Examples the nodes train on.
    pub train: ImageSet,
    /// Examples every node is evaluated on.
    pub validation: ImageSet,
}

/// Build a normalised [`ImageSet`] from IDX image and label bytes (paths name them in errors).
pub fn from_idx(
    images: &[u8],
    image_path: &Path,
    labels: &[u8],
    label_path: &Path,
) -> Result<ImageSet, DataError> {
    let images = idx::parse(images, 3, image_path)?;
    let labels = idx::parse(labels, 1, label_path)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::Inconsistent(format!(
            "{} has {} images but {} has {} labels",
            image_path.display(),
            images.dims[0],
            label_path.display(),
            labels.dims[0]
        )));
    }
    if let Some(pos) = labels.data.iter().position(|&l| l > 9) {
        return Err(DataError::format(
            label_path,
            format!("label {} at index {pos} is not a digit 0–9", labels.data[pos]),
        ));
    }
    let (mean, std) = NORMALIZATION;
    let pixels = images.data.iter().map(|&p| (p as f32 / 255.0 - mean) / std).collect();
    Ok(ImageSet {
        pixels,
        labels: labels.data,
        shape: [1, images.dims[1], images.dims[2]],
        classes: 10,
    })
}

/// The bundled 10k MNIST test split, divided by a fixed seeded permutation into
/// `10_000 − validation` training and `validation` validation images.
pub fn bundled(validation: usize) -> Result<Split, DataError> {
    let (ip, lp) = (Path::new("<bundled t10k images>"), Path::new("<bundled t10k labels>"));
    let images = idx::maybe_gunzip(BUNDLED_IMAGES.to_vec(), ip)?;
    let labels = idx::maybe_gunzip(BUNDLED_LABELS.to_vec(), lp)?;
    let all = from_idx(&images, ip, &labels, lp)?;
    if validation == 0 || validation >= all.len() {
        return Err(DataError::Inconsistent(format!(
            "validation size {validation} must be between 1 and {}",
            all.len() - 1
        )));
    }
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x004D_4E49_5354));
    let (val, train) = order.split_at(validation);
    Ok(Split { train: all.select(train), validation: all.select(val) })
}

/// Find `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::Inconsistent(format!(
        "{} has no {name} or {name}.gz (expected the four MNIST IDX files; use --download to fetch them)",
        dir.display()
    )))
}

/// The full MNIST split (60k train, 10k validation = the official test set) from `dir`.
pub fn load_dir(dir: &Path) -> Result<Split, DataError> {
    let read = |name: &str| -> Result<(Vec<u8>, PathBuf), DataError> {
        let path = locate(dir, name)?;
        Ok((idx::read_maybe_gz(&path)?, path))
    };
    let (ti, tip) = read(FILES[0].0)?;
    let (tl, tlp) = read(FILES[1].0)?;
    let (vi, vip) = read(FILES[2].0)?;
    let (vl, vlp) = read(FILES[3].0)?;
    Ok(Split {
        train: from_idx(&ti, &tip, &tl, &tlp)?,
        validation: from_idx(&vi, &vip, &vl, &vlp)?,
    })
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Download the four files into `dir` (skipping those already present and valid), trying each
/// mirror in turn; `fetch(url)` returns the response body. Each file is checked against its
/// published sha256 after decompression, written to a temporary file and renamed into place, so
/// an interrupted download never leaves a half-written file.
pub fn download_with(
    dir: &Path,
    mut fetch: impl FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.into(), source })?;
    for (name, expected) in FILES {
        let target = dir.join(format!("{name}.gz"));
        if let Ok(existing) = idx::read_maybe_gz(&target)
            && sha256_hex(&existing) == expected
        {
            continue;
        }
        let mut failures = Vec::new();
        let mut done = false;
        for mirror in MIRRORS {
            let url = format!("{mirror}{name}.gz");
            let body = match fetch(&url) {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            };
            // a corrupt body from one mirror is that mirror's failure: try the next
            let plain = match idx::maybe_gunzip(body.clone(), Path::new(&url)) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let got = sha256_hex(&plain);
            if got != expected {
                failures.push(
                    DataError::Checksum { file: url, expected: expected.into(), got }.to_string(),
                );
                continue;
            }
            let tmp = dir.join(format!(".{name}.gz.part"));
            std::fs::write(&tmp, &body)
                .and_then(|_| std::fs::rename(&tmp, &target))
                .map_err(|source| DataError::Io { path: target.clone(), source })?;
            done = true;
            break;
        }
        if !done {
            return Err(DataError::Download { file: name.into(), reason: failures.join("; ") });
        }
    }
    Ok(())
}

/// [`download_with`] over HTTPS.
pub fn download(dir: &Path) -> Result<(), DataError> {
    download_with(dir, |url| {
        let mut resp = ureq::get(url).call().map_err(|e| e.to_string())?;
        resp.body_mut().with_config().limit(100 << 20).read_to_vec().map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_split_is_disjoint_and_normalised() {
        let s = bundled(2000).unwrap();
        assert_eq!((s.train.len(), s.validation.len()), (8000, 2000));
        assert_eq!(s.train.shape, [1, 28, 28]);
        let min = s.train.pixels.iter().cloned().fold(f32::MAX, f32::min);
        assert!((min - (-0.1307 / 0.3081)).abs() < 1e-5);
        let mean: f32 = s.train.pixels.iter().sum::<f32>() / s.train.pixels.len() as f32;
        assert!(mean.abs() < 0.1, "normalised mean {mean}");
        // every digit present in both parts
        for d in 0..10u8 {
            assert!(s.validation.labels.contains(&d) && s.train.labels.contains(&d));
        }
        assert!(bundled(0).is_err() && bundled(10_000).is_err());
    }

    #[test]
    fn bundled_files_match_published_checksums() {
        let o = Path::new("b");
        let img = idx::maybe_gunzip(BUNDLED_IMAGES.to_vec(), o).unwrap();
        let lab = idx::maybe_gunzip(BUNDLED_LABELS.to_vec(), o).unwrap();
        assert_eq!(sha256_hex(&img), FILES[2].1);
        assert_eq!(sha256_hex(&lab), FILES[3].1);
    }

    #[test]
    fn load_dir_names_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
        for (name, _) in FILES {
            std::fs::write(dir.path().join(name), [0u8, 0, 8, 1, 0, 0, 0, 5, 1, 2]).unwrap();
        }
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte") && e.contains("dimensions"), "{e}");
    }

    #[test]
    fn download_verifies_checksums_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        // A mirror serving garbage: the error names the checksum problem, nothing is left behind.
        let e = download_with(dir.path(), |_| Ok(b"not mnist".to_vec())).unwrap_err().to_string();
        assert!(e.contains("sha256") && e.contains("train-images"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A corrupt gzip from the first mirror does not stop the second from being tried.
        let mut asked = Vec::new();
        let e = download_with(dir.path(), |url| {
            asked.push(url.to_string());
            if asked.len() == 1 {
                Ok(vec![0x1f, 0x8b, 8, 0, 1, 2, 3])
            } else {
                Err("offline".into())
            }
        })
        .unwrap_err()
        .to_string();
        assert_eq!(asked.len(), MIRRORS.len(), "{asked:?}");
        assert!(e.contains("gzip") && e.contains(MIRRORS[1]) && e.contains("offline"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // An offline machine: both mirrors are named in the error.
        let e = download_with(dir.path(), |_| Err("offline".into())).unwrap_err().to_string();
        assert!(e.contains("storage.googleapis.com") && e.contains("offline"), "{e}");
    }
}
