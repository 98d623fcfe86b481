//! The IDX file format (LeCun's MNIST container), parsed with every field checked.
//!
//! Layout: two zero bytes, a type byte (`0x08` = unsigned byte), a dimension count, then one
//! big-endian `u32` per dimension, then the data. Gzip-compressed files are recognised by their
//! magic bytes and decompressed first.

use crate::DataError;
use std::io::Read;
use std::path::Path;

/// Largest decompressed size accepted (guards against gzip bombs); MNIST train images are 47 MB.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A parsed IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` values.
    pub data: Vec<u8>,
}

/// Read a file, decompressing it if it is gzip.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    maybe_gunzip(raw, path)
}

/// Decompress `raw` if it starts with the gzip magic; `origin` names it in errors.
pub fn maybe_gunzip(raw: Vec<u8>, origin: &Path) -> Result<Vec<u8>, DataError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::format(origin, format!("corrupt or truncated gzip data: {e}"))
            })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(DataError::format(origin, "decompresses to more than 1 GiB"));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse IDX bytes that must hold `expected_ndim` dimensions of unsigned bytes.
pub fn parse(bytes: &[u8], expected_ndim: usize, origin: &Path) -> Result<IdxArray, DataError> {
    let err = |p: String| DataError::format(origin, p);
    if bytes.len() < 4 {
        return Err(err(format!("truncated: {} bytes, too short for an IDX header", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!("element type 0x{:02x} is not unsigned byte (0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    if ndim != expected_ndim {
        return Err(err(format!("has {ndim} dimensions, expected {expected_ndim}")));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(err(format!(
            "truncated header: {} bytes, expected at least {header}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(err(format!(
            "truncated: dimensions {dims:?} need {expected} data bytes, found {found}"
        )));
    }
    if found > expected {
        return Err(err(format!(
            "{} unexpected trailing bytes after {expected} data bytes (dimensions {dims:?})",
            found - expected
        )));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_a_valid_array() {
        let a = parse(&idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]), 2, Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn reports_each_kind_of_corruption() {
        let p = Path::new("f.idx");
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            (vec![0, 0], 1, "too short"),
            (vec![1, 0, 8, 1, 0, 0, 0, 0], 1, "bad magic"),
            (vec![0, 0, 9, 1, 0, 0, 0, 0], 1, "element type"),
            (idx_bytes(&[1], &[0]), 3, "expected 3"),
            (vec![0, 0, 8, 3, 0, 0], 3, "truncated header"),
            (idx_bytes(&[2, 2], &[1, 2, 3]), 2, "need 4 data bytes, found 3"),
            (idx_bytes(&[1], &[1, 2]), 1, "trailing"),
        ];
        for (bytes, ndim, want) in cases {
            let e = parse(&bytes, ndim, p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("f.idx"), "{e} lacks {want}");
        }
    }

    #[test]
    fn truncated_gzip_is_an_error_not_a_panic() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&idx_bytes(&[1000], &[7; 1000])).unwrap();
        let gz = enc.finish().unwrap();
        let ok = maybe_gunzip(gz.clone(), Path::new("a.gz")).unwrap();
        assert_eq!(parse(&ok, 1, Path::new("a.gz")).unwrap().data.len(), 1000);
        let cut = gz[..gz.len() / 2].to_vec();
        let e = maybe_gunzip(cut, Path::new("a.gz")).unwrap_err().to_string();
        assert!(e.contains("a.gz") && e.contains("gzip"), "{e}");
    }
}
