//! Turning a data set into device batches.

use crate::config::{DataConfig, DatasetKind};
use crate::error::Error;
use burn::prelude::*;
use hdo_datasets::{ImageSet, mnist};
use hdo_models::{DataShape, Input};

/// A minibatch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Model input.
    pub input: Input,
    /// Class labels `[batch]`.
    pub targets: Tensor<1, Int>,
}

/// Training and validation examples.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What nodes train on (split into shards).
    pub train: ImageSet,
    /// What every node is evaluated on.
    pub validation: ImageSet,
}

impl Dataset {
    /// Load the data set a config names (bundled, from a directory, or downloaded first).
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
                Ok(Dataset { train: split.train, validation: split.validation })
            }
        }
    }

    /// Input shape and classes, for building models.
    pub fn shape(&self) -> DataShape {
        DataShape { image: self.train.shape, classes: self.train.classes }
    }
}

/// The examples `indices` of `set` as a batch on `device`.
pub fn batch(set: &ImageSet, indices: &[usize], device: &Device) -> Batch {
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

/// The validation set cut into evaluation batches, uploaded once.
#[derive(Debug, Clone)]
pub struct ValidationSet {
    /// Evaluation batches.
    pub batches: Vec<Batch>,
    /// Examples in total.
    pub len: usize,
}

impl ValidationSet {
    /// Upload the first `limit` (or all) examples of `set` in batches of `batch_size`.
    pub fn new(set: &ImageSet, limit: Option<usize>, batch_size: usize, device: &Device) -> Self {
        let len = limit.unwrap_or(set.len()).min(set.len());
        let indices: Vec<usize> = (0..len).collect();
        let batches = indices.chunks(batch_size).map(|c| batch(set, c, device)).collect();
        ValidationSet { batches, len }
    }
}
