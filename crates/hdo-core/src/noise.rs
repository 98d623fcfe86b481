//! Portable seeded noise: a pure function of `(run seed, node, step, direction, parameter offset)`.
//!
//! Directions are never stored: any node, on any device, regenerates any other node's direction
//! bit-for-bit from its coordinates, which is what perturb-evaluate-update with one buffer, and
//! seed-plus-scalar communication, rely on.
//!
//! Generator: Philox4x32-10 (Salmon et al., SC'11), a counter-based RNG — the counter is
//! `[block_lo, block_hi, step, direction]`, the key is derived from `(seed, node)`, and one call
//! yields 4 × 32 random bits for the 4 parameters of one block (`block = offset / 4`). Normals come
//! from Box–Muller on pairs of words, with `logf`/`sincosf` from the pure-Rust `libm` crate so
//! that the values do not depend on the platform's C library. Uniforms in (0, 1] keep 24 bits, so
//! |z| ≤ 5.77.

/// Coordinates of one node's noise at one step. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseStream {
    key: [u32; 2],
    step: u32,
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// SplitMix64 finaliser, used to derive keys from seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds.
#[inline(always)]
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;

#[inline(always)]
fn box_muller(a: u32, b: u32) -> (f32, f32) {
    let u1 = ((a >> 8) + 1) as f32 * TWO_POW_M24; // (0, 1]
    let u2 = (b >> 8) as f32 * TWO_POW_M24; // [0, 1)
    let r = (-2.0 * libm::logf(u1)).sqrt();
    let (s, c) = libm::sincosf(std::f32::consts::TAU * u2);
    (r * c, r * s)
}

impl NoiseStream {
    /// The stream of node `node` at local step `step` in a run seeded with `seed`.
    pub fn new(seed: u64, node: u64, step: u64) -> Self {
        let k = mix(mix(seed) ^ mix(node.wrapping_add(0xA0DE)));
        NoiseStream { key: [k as u32, (k >> 32) as u32], step: step as u32 }
    }

    #[inline(always)]
    fn block(&self, direction: u32, block: u64) -> [u32; 4] {
        philox4x32_10([block as u32, (block >> 32) as u32, self.step, direction], self.key)
    }

    /// Standard normal values of direction `direction` at parameter offsets
    /// `offset .. offset + out.len()`.
    pub fn fill_gaussian(&self, direction: u32, offset: u64, out: &mut [f32]) {
        let mut pos = 0usize;
        let mut block = offset / 4;
        let mut lane = (offset % 4) as usize;
        while pos < out.len() {
            let w = self.block(direction, block);
            let (z0, z1) = box_muller(w[0], w[1]);
            let (z2, z3) = box_muller(w[2], w[3]);
            let z = [z0, z1, z2, z3];
            let take = (4 - lane).min(out.len() - pos);
            out[pos..pos + take].copy_from_slice(&z[lane..lane + take]);
            pos += take;
            lane = 0;
            block += 1;
        }
    }

    /// `out[i] += scale · z[offset + i]` for direction `direction`, without a temporary buffer.
    pub fn add_gaussian(&self, direction: u32, offset: u64, scale: f32, out: &mut [f32]) {
        let mut buf = [0f32; 256];
        for (c, chunk) in out.chunks_mut(256).enumerate() {
            let n = chunk.len();
            self.fill_gaussian(direction, offset + (c * 256) as u64, &mut buf[..n]);
            for (o, z) in chunk.iter_mut().zip(&buf[..n]) {
                *o += scale * z;
            }
        }
    }

    /// Uniform values in `[lo, hi)` at parameter offsets `offset ..` (used for initialisation).
    pub fn fill_uniform(&self, direction: u32, offset: u64, lo: f32, hi: f32, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let at = offset + i as u64;
            let w = self.block(direction, at / 4)[(at % 4) as usize];
            *o = lo + (hi - lo) * ((w >> 8) as f32 * TWO_POW_M24);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_published_known_answer() {
        // Random123 known-answer test for philox4x32-10 with all-ones inputs.
        let out = philox4x32_10([u32::MAX; 4], [u32::MAX; 2]);
        assert_eq!(out, [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        let out = philox4x32_10([0; 4], [0; 2]);
        assert_eq!(out, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    }

    #[test]
    fn regeneration_is_bit_identical_and_offset_consistent() {
        let s = NoiseStream::new(42, 3, 17);
        let mut a = vec![0f32; 1001];
        let mut b = vec![0f32; 1001];
        s.fill_gaussian(5, 0, &mut a);
        NoiseStream::new(42, 3, 17).fill_gaussian(5, 0, &mut b);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // any sub-range regenerates the same values (unaligned start and end)
        let mut part = vec![0f32; 333];
        s.fill_gaussian(5, 301, &mut part);
        assert_eq!(&a[301..634], &part[..]);
        // add_gaussian agrees with fill_gaussian
        let mut acc = vec![1f32; 1001];
        s.add_gaussian(5, 0, 2.0, &mut acc);
        for (x, z) in acc.iter().zip(&a) {
            assert_eq!(*x, 1.0 + 2.0 * z);
        }
    }

    #[test]
    fn coordinates_give_independent_streams() {
        let draw = |s: NoiseStream, d: u32| {
            let mut v = vec![0f32; 64];
            s.fill_gaussian(d, 0, &mut v);
            v
        };
        let base = draw(NoiseStream::new(1, 0, 0), 0);
        for other in [
            draw(NoiseStream::new(2, 0, 0), 0),
            draw(NoiseStream::new(1, 1, 0), 0),
            draw(NoiseStream::new(1, 0, 1), 0),
            draw(NoiseStream::new(1, 0, 0), 1),
        ] {
            let same = base.iter().zip(&other).filter(|(a, b)| a == b).count();
            assert_eq!(same, 0);
        }
    }

    #[test]
    fn gaussian_moments() {
        let n = 400_000;
        let mut v = vec![0f32; n];
        NoiseStream::new(7, 0, 0).fill_gaussian(0, 0, &mut v);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = v.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n as f64;
        // standard errors: mean 0.0016, var 0.0022, fourth moment 0.015
        assert!(mean.abs() < 0.008, "mean {mean}");
        assert!((var - 1.0).abs() < 0.011, "var {var}");
        assert!((kurt - 3.0).abs() < 0.08, "E z^4 {kurt}");
        let mut u = vec![0f32; n];
        NoiseStream::new(7, 0, 0).fill_uniform(0, 0, -1.0, 1.0, &mut u);
        assert!(u.iter().all(|&x| (-1.0..1.0).contains(&x)));
        let um = u.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!(um.abs() < 0.005);
    }
}
