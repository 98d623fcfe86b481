//! Turning a data set into device batches.

use crate::config::{DataConfig, DatasetKind, PadTo};
use crate::error::Error;
use burn::prelude::*;
use hdo_datasets::{ImageSet, TokenSet, brackets, libsvm, mnist};
use hdo_models::{DataShape, Input, InputShape};

/// A minibatch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Model input.
    pub input: Input,
    /// Class labels `[batch]`.
    pub targets: Tensor<1, Int>,
}

/// Labelled examples of one kind.
#[derive(Debug, Clone)]
pub enum Examples {
    /// Images (MNIST).
    Images(ImageSet),
    /// Token sequences (Brackets).
    Tokens(TokenSet),
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Examples::Images(s) => s.len(),
            Examples::Tokens(s) => s.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hard negatives (token data only), one flag per example.
    pub fn hard(&self) -> Option<&[bool]> {
        match self {
            Examples::Images(_) => None,
            Examples::Tokens(s) => Some(&s.hard),
        }
    }

    /// The examples `indices` as a batch on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Batch {
        match self {
            Examples::Images(s) => image_batch(s, indices, device),
            Examples::Tokens(s) => token_batch(s, indices, device),
        }
    }
}

/// Training and validation examples.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What nodes train on (split into shards).
    pub train: Examples,
    /// What every node is evaluated on.
    pub validation: Examples,
}

impl Dataset {
    /// Load the data set a config names: MNIST bundled, from a directory or downloaded first
    /// (optionally as the binary task 0–4 against 5–9); Brackets generated from its seed or read
    /// from the authors' JSON-lines files; LIBSVM text files.
    pub fn load(config: &DataConfig) -> Result<Dataset, Error> {
        match config.dataset {
            DatasetKind::Mnist => {
                let split = match &config.dir {
                    Some(dir) => {
                        if config.download {
                            mnist::download(dir)?;
                        }
                        mnist::load_dir(dir)?
                    }
                    None => mnist::bundled(config.validation)?,
                };
                let (mut train, mut validation) = (split.train, split.validation);
                if config.binary {
                    for set in [&mut train, &mut validation] {
                        set.labels.iter_mut().for_each(|l| *l = u8::from(*l >= 5));
                        set.classes = 2;
                    }
                }
                Ok(Dataset {
                    train: Examples::Images(train),
                    validation: Examples::Images(validation),
                })
            }
            DatasetKind::Cifar10 => {
                let dir = config.dir.as_deref().ok_or_else(|| Error::Config {
                    key: "data.dir".into(),
                    problem: "CIFAR-10 is not bundled: point data.dir at the binary version's \
                              directory (data_batch_1..5.bin, test_batch.bin)"
                        .into(),
                })?;
                let split = hdo_datasets::cifar10::load_dir(dir, config.normalize)?;
                Ok(Dataset {
                    train: Examples::Images(split.train),
                    validation: Examples::Images(split.validation),
                })
            }
            DatasetKind::Libsvm => {
                let train = config.train_file.as_deref().ok_or_else(|| Error::Config {
                    key: "data.train_file".into(),
                    problem: "data.dataset = \"libsvm\" needs the training file".into(),
                })?;
                let (train, validation) = libsvm::load(
                    train,
                    config.validation_file.as_deref(),
                    config.validation_fraction,
                    config.features,
                )?;
                Ok(Dataset {
                    train: Examples::Images(train),
                    validation: Examples::Images(validation),
                })
            }
            DatasetKind::Brackets => {
                let b = &config.brackets;
                let (mut train, mut validation) = brackets::generate_split(b, b.seed)?;
                if let Some(path) = &config.train_file {
                    train = brackets::read_jsonl(path)?;
                }
                if let Some(path) = &config.validation_file {
                    validation = brackets::read_jsonl(path)?;
                }
                let longest = train
                    .iter()
                    .chain(&validation)
                    .map(|e| e.brackets.len() + 2)
                    .max()
                    .unwrap_or(2);
                let len = config.seq_len.unwrap_or((2 * b.max_len + 2).max(longest));
                let tokens = |examples: &[brackets::Example]| -> Result<Examples, Error> {
                    let mut set = brackets::tokenize(examples, len)?;
                    set.pad_to_batch = config.pad_to == PadTo::Batch;
                    Ok(Examples::Tokens(set))
                };
                Ok(Dataset { train: tokens(&train)?, validation: tokens(&validation)? })
            }
        }
    }

    /// The stand-in data of an objective run: one empty example per node (an objective's
    /// forward pass ignores its batch) and one to evaluate on, so that shards, samplers and
    /// evaluation work unchanged.
    pub fn placeholder(nodes: usize) -> Dataset {
        let set = |n: usize| {
            Examples::Images(hdo_datasets::ImageSet {
                pixels: vec![0.0; n],
                labels: vec![0; n],
                shape: [1, 1, 1],
                classes: 1,
            })
        };
        Dataset { train: set(nodes.max(1)), validation: set(1) }
    }

    /// Input shape and classes, for building models.
    pub fn shape(&self) -> DataShape {
        match &self.train {
            Examples::Images(s) => DataShape::image(s.shape, s.classes),
            Examples::Tokens(s) => {
                DataShape { input: InputShape::Tokens { vocab: s.vocab, len: s.len }, classes: 2 }
            }
        }
    }
}

fn image_batch(set: &ImageSet, indices: &[usize], device: &Device) -> Batch {
    let m = set.image_len();
    let mut pixels = Vec::with_capacity(indices.len() * m);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        pixels.extend_from_slice(&set.pixels[i * m..(i + 1) * m]);
        labels.push(set.labels[i] as i64);
    }
    let [c, h, w] = set.shape;
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [indices.len(), c, h, w]), device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device);
    Batch { input: Input::Images(x), targets: y }
}

fn token_batch(set: &TokenSet, indices: &[usize], device: &Device) -> Batch {
    // padded to the set's length, or only to this batch's longest example
    let width = if set.pad_to_batch {
        indices.iter().map(|&i| set.lengths[i]).max().unwrap_or(1).max(1)
    } else {
        set.len
    };
    let mut ids = Vec::with_capacity(indices.len() * width);
    for &i in indices {
        ids.extend(set.tokens[i * set.len..i * set.len + width].iter().map(|&t| t as i64));
    }
    let labels: Vec<i64> = indices.iter().map(|&i| set.labels[i] as i64).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [indices.len(), width]), device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device);
    Batch { input: Input::Tokens(x), targets: y }
}

/// The examples `indices` of an image set as a batch on `device`.
pub fn batch(set: &ImageSet, indices: &[usize], device: &Device) -> Batch {
    image_batch(set, indices, device)
}

/// The validation set cut into evaluation batches, uploaded once.
#[derive(Debug, Clone)]
pub struct ValidationSet {
    /// Evaluation batches.
    pub batches: Vec<Batch>,
    /// Hard-negative flags per batch (token data only).
    pub hard: Option<Vec<Vec<bool>>>,
    /// Examples in total.
    pub len: usize,
}

impl ValidationSet {
    /// Upload the first `limit` (or all) examples of `set` in batches of `batch_size`.
    pub fn new(set: &Examples, limit: Option<usize>, batch_size: usize, device: &Device) -> Self {
        let len = limit.unwrap_or(set.len()).min(set.len());
        let indices: Vec<usize> = (0..len).collect();
        let batches = indices.chunks(batch_size).map(|c| set.batch(c, device)).collect();
        let hard = set.hard().map(|h| {
            indices.chunks(batch_size).map(|c| c.iter().map(|&i| h[i]).collect()).collect()
        });
        ValidationSet { batches, hard, len }
    }
}
