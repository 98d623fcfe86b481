//! Deterministic parameter initialisation from the run seed (no global RNG).
//!
//! PyTorch's defaults, which the HDO authors' models used: weights and biases of linear and
//! convolution layers ~ U(−1/√fan_in, 1/√fan_in); normalisation scales 1, shifts 0. Values come
//! from the counter-based [`NoiseStream`], so every device and machine builds the same model.

use crate::noise::NoiseStream;
use crate::params::{self, Layout, upload};
use hdo_models::Model;

/// Re-initialise every `weight`/`bias` tensor of `model` from `seed`.
pub fn initialize(model: Model, layout: &Layout, seed: u64) -> Model {
    let noise = NoiseStream::new(seed, u64::MAX, 0);
    let mut fan_in = 1usize;
    params::map(model, |i, t| {
        let info = &layout.tensors[i];
        let name = info.path.rsplit('.').next().unwrap_or("");
        if name == "weight" {
            // Burn stores linear weights [in, out] and conv weights [out, in/groups, kh, kw].
            fan_in = match info.shape.as_slice() {
                [fin, _] => *fin,
                [_, rest @ ..] => rest.iter().product(),
                _ => 1,
            }
            .max(1);
        } else if name != "bias" {
            return t;
        }
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut v = vec![0f32; info.numel];
        noise.fill_uniform(i as u32, 0, -bound, bound, &mut v);
        upload(v, &t.device())
    })
}
