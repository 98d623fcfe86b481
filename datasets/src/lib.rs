//! Data sets for hdo.
//!
//! * [`mnist`]: the IDX format with full validation (magic, dimensions, counts, truncation),
//!   gzip or raw files, the MNIST test split bundled in the binary, the full 60k/10k split from a
//!   directory, and an optional checksummed download.
//! * [`brackets`]: the Brackets (Dyck-1) classification task — a seeded generator with uniform
//!   positives and random plus hard negatives, the authors' JSON-lines format, tokenisation;
//! * [`libsvm`]: the LIBSVM / svmlight text format (a9a, w8a, mushrooms, …), sparse rows made
//!   dense, binary and multiclass labels, every bad line an error naming file and line;
//! * [`split`]: HDO's data split (one copy of the training set per population, divided evenly
//!   among its nodes) and the per-node sampler that draws each shard without replacement per epoch.
//!
//! Everything random here is a pure function of an explicit seed.

pub mod brackets;
pub mod cifar10;
pub mod error;
pub mod idx;
pub mod images;
pub mod libsvm;
pub mod mnist;
pub mod split;

pub use brackets::{BracketsConfig, TokenSet};
pub use error::DataError;
pub use images::ImageSet;
pub use split::{ShardSampler, hdo_split};
