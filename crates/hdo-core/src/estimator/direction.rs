//! Random directions over the trainable parameter vector, applied to copies of a model.

use crate::noise::NoiseStream;
use crate::params::{self, Layout, upload};
use hdo_models::Model;

/// A copy of `model` moved to `x + scale·u_k`, where `u_k` is direction `direction` of `noise`
/// (standard Gaussian). The original is untouched, so no restore pass is needed and `x` stays
/// bit-exact; the copy's tensors are new while the noise is generated one tensor at a time.
pub fn perturbed(
    model: &Model,
    layout: &Layout,
    noise: NoiseStream,
    direction: u32,
    scale: f32,
) -> Model {
    params::map(model.clone(), |i, t| {
        let info = &layout.tensors[i];
        if info.trainable.is_none() {
            return t;
        }
        let mut z = vec![0f32; info.numel];
        noise.fill_gaussian(direction, info.offset, &mut z);
        z.iter_mut().for_each(|v| *v *= scale);
        let device = t.device();
        t + upload(z, &device)
    })
}
