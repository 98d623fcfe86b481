//! What a model is given: a batch of inputs, and the shape of the data it is built for.

use burn::prelude::*;

/// One batch of model inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// Images `[batch, channels, height, width]`.
    Images(Tensor<4>),
    /// Token ids `[batch, length]`.
    Tokens(Tensor<2, Int>),
}

impl Input {
    /// Number of examples in the batch.
    pub fn batch_size(&self) -> usize {
        match self {
            Input::Images(x) => x.dims()[0],
            Input::Tokens(x) => x.dims()[0],
        }
    }
}

/// Shape of the data a model is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataShape {
    /// One example's input.
    pub input: InputShape,
    /// Number of classes.
    pub classes: usize,
}

/// One example's input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// `[channels, height, width]`.
    Image([usize; 3]),
    /// A token sequence of `len` ids below `vocab`.
    Tokens {
        /// Vocabulary size.
        vocab: usize,
        /// Sequence length.
        len: usize,
    },
}

impl DataShape {
    /// Images of `[c, h, w]`.
    pub fn image(image: [usize; 3], classes: usize) -> Self {
        DataShape { input: InputShape::Image(image), classes }
    }

    /// `[c, h, w]` for image data.
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        match self.input {
            InputShape::Image(d) => Some(d),
            InputShape::Tokens { .. } => None,
        }
    }

    /// `(vocab, len)` for token data.
    pub fn tokens(&self) -> Option<(usize, usize)> {
        match self.input {
            InputShape::Tokens { vocab, len } => Some((vocab, len)),
            InputShape::Image(_) => None,
        }
    }
}

/// Flatten images to `[batch, features]` (token ids as numbers, for completeness).
pub(crate) fn flatten(input: &Input) -> Tensor<2> {
    match input {
        Input::Images(x) => x.clone().flatten(1, 3),
        Input::Tokens(t) => t.clone().float(),
    }
}
