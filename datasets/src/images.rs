//! An in-memory labelled image set, normalised and ready to batch.

/// Images stored as normalised `f32` in `[n, channels, height, width]` order, with class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `len() * channels * height * width` normalised pixel values.
    pub pixels: Vec<f32>,
    /// One class label per image.
    pub labels: Vec<u8>,
    /// `[channels, height, width]` of one image.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The subset at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let m = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * m);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * m..(i + 1) * m]);
        }
        ImageSet {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            classes: self.classes,
        }
    }
}
