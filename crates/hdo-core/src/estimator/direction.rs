//! Random directions over the trainable parameter vector, applied to copies of a model.
//!
//! A direction is `u_k = s_k · z_k`, where `z_k` is standard Gaussian noise regenerated from the
//! node's [`NoiseStream`] and `s_k` depends on the distribution: 1 for `gaussian`, `1/‖z_k‖` for
//! `sphere` (uniform on the unit sphere). Seeded gradients are always stored as coefficients of
//! `z_k`, so the scale is folded into them.

use crate::noise::NoiseStream;
use crate::params::{self, Layout, upload};
use burn::prelude::*;
use hdo_models::{Model, Stack};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The `direction` key: how random directions are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// `u ~ N(0, I)`; `E[u uᵀ] = I`.
    #[default]
    Gaussian,
    /// `u` uniform on the unit sphere; `E[u uᵀ] = I/d`, so estimates carry a factor `d`
    /// (the HO-SGD / ZO-signSGD convention).
    Sphere,
}

impl Direction {
    /// `s_k` with `u_k = s_k·z_k`.
    pub fn scale(self, noise: NoiseStream, k: u32, layout: &Layout) -> f32 {
        match self {
            Direction::Gaussian => 1.0,
            Direction::Sphere => {
                // one extra generation pass, chunked: no direction-sized buffer
                let mut sq = 0f64;
                let mut buf = vec![0f32; 4096];
                let mut offset = 0u64;
                while offset < layout.dim {
                    let n = ((layout.dim - offset) as usize).min(buf.len());
                    noise.fill_gaussian(k, offset, &mut buf[..n]);
                    sq += buf[..n].iter().map(|&z| z as f64 * z as f64).sum::<f64>();
                    offset += n as u64;
                }
                (1.0 / sq.sqrt()) as f32
            }
        }
    }

    /// The factor `E[u uᵀ]⁻¹` (a multiple of I): 1 or `d`.
    pub fn factor(self, layout: &Layout) -> f32 {
        match self {
            Direction::Gaussian => 1.0,
            Direction::Sphere => layout.dim as f32,
        }
    }
}

/// A copy of `model` moved to `x + scale·z_k`, where `z_k` is direction `direction` of `noise`
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

/// The `K = probes.len()` copies `x + scale·z_k`, one per `(k, scale)` probe, as a [`Stack`]
/// for one batched pass. Each member's values are computed exactly as [`perturbed`] computes
/// them (`x + (scale·z_k)` in f32), so the stacked and one-at-a-time paths see the same
/// parameters. Running statistics stay shared (`[1, numel]`). Memory: `K` perturbed copies, built
/// one tensor at a time; the caller bounds `K`.
pub fn perturbed_stack(
    model: &Model,
    layout: &Layout,
    noise: NoiseStream,
    probes: &[(u32, f32)],
) -> Stack {
    build_stack(model, layout, noise, probes, true)
}

/// The `K` directions `scale·z_k` themselves as a [`Stack`] (zeros for running statistics): the
/// parameter tangents of a stacked forward-mode pass.
pub fn direction_stack(
    model: &Model,
    layout: &Layout,
    noise: NoiseStream,
    probes: &[(u32, f32)],
) -> Stack {
    build_stack(model, layout, noise, probes, false)
}

fn build_stack(
    model: &Model,
    layout: &Layout,
    noise: NoiseStream,
    probes: &[(u32, f32)],
    around_model: bool,
) -> Stack {
    let mut tensors = Vec::with_capacity(layout.tensors.len());
    params::for_each(model, |i, t| {
        let base: Tensor<2> = t.unsqueeze_dim(0);
        let rows = (layout.tensors[i].trainable.is_some() && !probes.is_empty())
            .then(|| direction_rows(layout, noise, probes, i, None, &base.device()));
        tensors.push(match (rows, around_model) {
            (Some(rows), true) => base + rows,
            (Some(rows), false) => rows,
            (None, true) => base,
            (None, false) => base.zeros_like(),
        });
    });
    Stack { tensors, members: probes.len() }
}

/// Tensor `i` of the direction stack of `probes`: the rows `scale·z_k` (`[K, numel]`) when it is
/// trainable (and is tensor `only`, when given), else `[1, numel]` zeros — one entry of
/// [`direction_stack`], made on its own so that a [`LazyStack`](hdo_models::LazyStack) pass holds one at a time.
fn direction_rows(
    layout: &Layout,
    noise: NoiseStream,
    probes: &[(u32, f32)],
    i: usize,
    only: Option<usize>,
    device: &Device,
) -> Tensor<2> {
    let info = &layout.tensors[i];
    let n = info.numel;
    match info.trainable {
        Some(l) if only.is_none_or(|o| o == l) => {
            let mut z = vec![0f32; probes.len() * n];
            z.par_chunks_mut(n).zip(probes).for_each(|(row, &(direction, scale))| {
                noise.fill_gaussian(direction, info.offset, row);
                row.iter_mut().for_each(|v| *v *= scale);
            });
            Tensor::<2>::from_data(TensorData::new(z, [probes.len(), n]), device)
        }
        _ => Tensor::zeros([1, n], device),
    }
}

/// The directions of `probes` as a [`LazyStack`](hdo_models::LazyStack) generator over `layout`'s tensors (see
/// [`direction_rows`]).
pub(super) fn lazy_directions<'a>(
    layout: &'a Layout,
    noise: NoiseStream,
    probes: &'a [(u32, f32)],
    only: Option<usize>,
    device: &'a Device,
) -> impl FnMut(usize) -> Tensor<2> + 'a {
    move |i| direction_rows(layout, noise, probes, i, only, device)
}
