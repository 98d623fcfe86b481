//! Gossip arithmetic: the mean of a group's parameter tensors, as few passes over memory as the
//! device allows.
//!
//! On the CPU the members' tensors are moved in (uniquely owned, so reading their buffers and
//! writing the mean over the first one copies nothing) and averaged in one fused, multi-threaded
//! host pass: each element is read once from every member and written once. Burn's
//! `(a + b) / 2` would make two passes and, on shared buffers, allocate twice. On other devices
//! the same arithmetic runs as Burn operations, which the wgpu backend fuses into one kernel.
//! Both give `((x₁ + x₂) + …)/k` in f32, element by element: the same values.

use burn::prelude::*;
use rayon::prelude::*;

/// Elements a worker averages at a time.
const CHUNK: usize = 1 << 15;

/// Mean of `members` (flat tensors of equal length; at least one), moved in.
pub fn mean(members: Vec<Tensor<1>>, host: bool) -> Tensor<1> {
    if host && members.len() > 1 {
        let device = members[0].device();
        // moved, not cloned: a unique buffer comes out of `into_data` without a copy
        let data: Vec<TensorData> = members.into_iter().map(Tensor::into_data).collect();
        return match host_mean(data) {
            Ok(mean) => Tensor::from_data(mean, &device),
            Err(data) => {
                device_mean(data.into_iter().map(|d| Tensor::from_data(d, &device)).collect())
            }
        };
    }
    device_mean(members)
}

/// `((x₁ + x₂) + …)/k` with Burn operations.
fn device_mean(members: Vec<Tensor<1>>) -> Tensor<1> {
    let k = members.len() as f32;
    let mut it = members.into_iter();
    let Some(first) = it.next() else { panic!("mean of no tensor") };
    let sum = it.fold(first, |acc, t| acc + t);
    if k == 1.0 { sum } else { sum / k }
}

/// The mean written over the first member's host buffer; the data back if it is not f32 of
/// equal lengths.
fn host_mean(mut data: Vec<TensorData>) -> Result<TensorData, Vec<TensorData>> {
    let k = data.len() as f32;
    let lens: Option<Vec<usize>> =
        data.iter().map(|d| d.as_slice::<f32>().ok().map(<[f32]>::len)).collect();
    if !lens.is_some_and(|l| l.iter().all(|&n| n == l[0])) {
        return Err(data);
    }
    let mut first = data.remove(0);
    let rest: Vec<&[f32]> = data.iter().filter_map(|d| d.as_slice::<f32>().ok()).collect();
    let Ok(acc) = first.as_mut_slice::<f32>() else {
        data.insert(0, first);
        return Err(data);
    };
    acc.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        let start = c * CHUNK;
        match rest.as_slice() {
            [b] => {
                let b = &b[start..start + chunk.len()];
                chunk.iter_mut().zip(b).for_each(|(a, b)| *a = (*a + b) / k);
            }
            _ => {
                for (j, a) in chunk.iter_mut().enumerate() {
                    let mut s = *a;
                    for r in &rest {
                        s += r[start + j];
                    }
                    *a = s / k;
                }
            }
        }
    });
    Ok(first)
}
