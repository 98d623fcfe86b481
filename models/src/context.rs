//! What a forward pass needs besides its input (mode, dropout seed) and what it reports back
//! (batch statistics).

use burn::module::ParamId;
use burn::prelude::*;

/// What a forward pass needs besides its input, and what it reports back.
#[derive(Debug, Default)]
pub struct ForwardCtx {
    /// Training mode: normalisation layers use (and report) batch statistics.
    pub train: bool,
    /// Batch statistics of each normalisation layer, keyed by its running statistics' identities,
    /// filled in training mode.
    pub batch_stats: Vec<BatchStats>,
    /// Dropout masks are a pure function of this seed and the layer's call index (training mode
    /// only; no dropout without a seed). Passes that must see the same network — the perturbed
    /// evaluations of one zeroth-order step — share the seed.
    pub dropout_seed: Option<u64>,
    /// Dropout layers called so far in this pass.
    pub dropout_calls: u64,
}

impl ForwardCtx {
    /// A training-mode context (no dropout).
    pub fn train() -> Self {
        ForwardCtx { train: true, ..Default::default() }
    }

    /// A training-mode context whose dropout masks come from `seed`.
    pub fn train_seeded(seed: u64) -> Self {
        ForwardCtx { train: true, dropout_seed: Some(seed), ..Default::default() }
    }

    /// An evaluation-mode context (running statistics, no dropout, nothing reported).
    pub fn eval() -> Self {
        ForwardCtx::default()
    }

    /// The keep-mask (`1/(1−p)` or 0) of the next dropout layer for `shape`, or `None` when no
    /// dropout applies. Bits come from SplitMix64 of `(seed, call, element)`: reproducible on any
    /// device and thread.
    pub fn dropout_mask<const D: usize>(
        &mut self,
        p: f64,
        shape: [usize; D],
        device: &Device,
    ) -> Option<Tensor<D>> {
        let seed = self.dropout_seed.filter(|_| self.train && p > 0.0)?;
        let call = self.dropout_calls;
        self.dropout_calls += 1;
        let n: usize = shape.iter().product();
        let scale = (1.0 / (1.0 - p)) as f32;
        let threshold = (p * (1u64 << 53) as f64) as u64;
        let base = splitmix(seed ^ splitmix(call.wrapping_add(0xD0)));
        let values: Vec<f32> = (0..n as u64)
            .map(|i| if splitmix(base ^ i) >> 11 < threshold { 0.0 } else { scale })
            .collect();
        Some(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

/// SplitMix64: a counter-based hash for seeded masks and points (no global RNG).
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Batch statistics of one normalisation layer in a training-mode pass, keyed by the identity of
/// the running statistics they update.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// The layer's running-mean parameter.
    pub mean_id: ParamId,
    /// The layer's running-variance parameter.
    pub var_id: ParamId,
    /// Batch mean per channel.
    pub mean: Tensor<1>,
    /// Unbiased batch variance per channel.
    pub var: Tensor<1>,
}
