//! Mutations of an input: byte-level (bit flips, interesting values, inserted, deleted, repeated
//! and truncated ranges, 32/64-bit length fields in both byte orders), splices with another input
//! of the pool, and dictionary tokens (a target's keywords, keys and boundary numbers).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inputs never grow past this (1 MiB): enough for every structure, small enough to run fast.
pub const MAX_LEN: usize = 1 << 20;

const BYTES: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'0', b'"', b'\n'];
const U32S: [u32; 10] = [0, 1, 2, 9, 255, 256, 65_535, 0x7fff_ffff, 0x8000_0000, u32::MAX];
const U64S: [u64; 6] = [0, 1, 0xffff, 1 << 32, 1 << 62, u64::MAX];

/// Apply one to four mutations to `input` in place.
pub fn mutate(input: &mut Vec<u8>, pool: &[Vec<u8>], dictionary: &[&[u8]], rng: &mut ChaCha8Rng) {
    for _ in 0..rng.random_range(1..=4) {
        mutate_once(input, pool, dictionary, rng);
    }
    input.truncate(MAX_LEN);
}

fn pos(rng: &mut ChaCha8Rng, len: usize) -> usize {
    if len == 0 { 0 } else { rng.random_range(0..len) }
}

fn mutate_once(input: &mut Vec<u8>, pool: &[Vec<u8>], dictionary: &[&[u8]], rng: &mut ChaCha8Rng) {
    let len = input.len();
    match rng.random_range(0..11) {
        0 if len > 0 => {
            let i = pos(rng, len);
            input[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = pos(rng, len);
            input[i] =
                if rng.random_bool(0.5) { BYTES[pos(rng, BYTES.len())] } else { rng.random() };
        }
        2 => {
            let at = pos(rng, len + 1);
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let a = pos(rng, len);
            let b = (a + rng.random_range(1..=64)).min(len);
            input.drain(a..b);
        }
        4 if len > 0 => {
            let a = pos(rng, len);
            let b = (a + rng.random_range(1..=64)).min(len);
            let copy = input[a..b].to_vec();
            for _ in 0..rng.random_range(1..=8) {
                let at = pos(rng, input.len() + 1);
                input.splice(at..at, copy.iter().copied());
            }
        }
        5 if len >= 4 => {
            let i = pos(rng, len - 3);
            let v = if rng.random_bool(0.8) { U32S[pos(rng, U32S.len())] } else { len as u32 };
            let b = if rng.random_bool(0.5) { v.to_be_bytes() } else { v.to_le_bytes() };
            input[i..i + 4].copy_from_slice(&b);
        }
        6 if len >= 8 => {
            let i = pos(rng, len - 7);
            input[i..i + 8].copy_from_slice(&U64S[pos(rng, U64S.len())].to_le_bytes());
        }
        7 if len > 0 => input.truncate(pos(rng, len)),
        8 if !pool.is_empty() => {
            let other = &pool[pos(rng, pool.len())];
            let cut = pos(rng, len + 1);
            let from = pos(rng, other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        9 | 10 if !dictionary.is_empty() => {
            let token = dictionary[pos(rng, dictionary.len())];
            let at = pos(rng, len + 1);
            if rng.random_bool(0.5) || at == len {
                input.splice(at..at, token.iter().copied());
            } else {
                // overwrite the rest of a word (up to a delimiter) with the token
                let end = input[at..]
                    .iter()
                    .position(|c| b" \n=,[]{}\":".contains(c))
                    .map_or(len, |p| at + p);
                input.splice(at..end, token.iter().copied());
            }
        }
        _ => {
            if len > 0 {
                let i = pos(rng, len);
                input[i] = rng.random();
            } else {
                input.push(rng.random());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_are_deterministic_and_change_inputs() {
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut x = b"[fo]\nlr = 0.1\n".to_vec();
            let mut changed = 0;
            for _ in 0..200 {
                let before = x.clone();
                mutate(&mut x, &[b"other".to_vec()], &[b"zo.rv"], &mut rng);
                changed += usize::from(x != before);
                if x.is_empty() {
                    x = b"seed".to_vec();
                }
            }
            (x, changed)
        };
        assert_eq!(run(7), run(7));
        assert!(run(7).1 > 150, "{}", run(7).1);
        assert_ne!(run(7).0, run(8).0);
    }
}
