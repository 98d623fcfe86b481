//! HDO's data split and per-node sampling.
//!
//! HDO keeps two full copies of the training set: one is divided evenly among the first-order
//! nodes, the other among the zeroth-order nodes, so that a population with no FO (or no ZO) node
//! still optimises the same objective. Each node then draws minibatches from its shard without
//! replacement, reshuffling every epoch.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Divide `0..n_examples` into `parts` shards of sizes differing by at most one, after a seeded
/// shuffle. Every example lands in exactly one shard.
pub fn even_shards(n_examples: usize, parts: usize, seed: u64) -> Vec<Vec<usize>> {
    if parts == 0 {
        return vec![];
    }
    let mut order: Vec<usize> = (0..n_examples).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed)));
    let (base, extra) = (n_examples / parts, n_examples % parts);
    let mut shards = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        shards.push(order[start..start + len].to_vec());
        start += len;
    }
    shards
}

/// HDO's split: `(fo_shards, zo_shards)`, each population's shards covering every example once.
pub fn hdo_split(
    n_examples: usize,
    n_fo: usize,
    n_zo: usize,
    seed: u64,
) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    (even_shards(n_examples, n_fo, seed ^ 0xF0), even_shards(n_examples, n_zo, seed ^ 0x20))
}

/// Draws minibatches from one shard without replacement, reshuffled each epoch. The order is a
/// pure function of `(seed, epoch)`, so a node's data stream is reproducible on its own.
#[derive(Debug, Clone)]
pub struct ShardSampler {
    shard: Vec<usize>,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
    seed: u64,
}

impl ShardSampler {
    /// A sampler over `shard` (example indices), seeded by `seed`.
    pub fn new(shard: Vec<usize>, seed: u64) -> Self {
        let mut s = ShardSampler { order: Vec::new(), shard, cursor: 0, epoch: 0, seed };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.clone_from(&self.shard);
        let key = mix(self.seed ^ mix(self.epoch));
        self.order.shuffle(&mut ChaCha8Rng::seed_from_u64(key));
        self.cursor = 0;
    }

    /// Completed epochs so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Examples in the shard.
    pub fn len(&self) -> usize {
        self.shard.len()
    }

    /// Whether the shard is empty.
    pub fn is_empty(&self) -> bool {
        self.shard.is_empty()
    }

    /// Where the sampler stands: `(epoch, position in that epoch's order)`. With the seed and
    /// shard this is its whole state, so [`ShardSampler::seek`] can restore it.
    pub fn position(&self) -> (u64, usize) {
        (self.epoch, self.cursor)
    }

    /// Move to `position` (as returned by [`ShardSampler::position`]), e.g. from a checkpoint.
    pub fn seek(&mut self, (epoch, cursor): (u64, usize)) -> Result<(), String> {
        if cursor > self.shard.len() {
            return Err(format!(
                "sampler position {cursor} is past the end of a shard of {} examples",
                self.shard.len()
            ));
        }
        self.epoch = epoch;
        self.reshuffle();
        self.cursor = cursor;
        Ok(())
    }

    /// The next `batch` example indices. A batch that crosses an epoch boundary takes the rest of
    /// the current epoch and continues in the next one. An empty shard yields an empty batch.
    pub fn next_batch(&mut self, batch: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(batch);
        if self.shard.is_empty() {
            return out;
        }
        while out.len() < batch {
            if self.cursor == self.order.len() {
                self.epoch += 1;
                self.reshuffle();
            }
            let take = (batch - out.len()).min(self.order.len() - self.cursor);
            out.extend_from_slice(&self.order[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_resumes_from_its_position() {
        let mut a = ShardSampler::new((0..10).collect(), 3);
        for _ in 0..4 {
            a.next_batch(3);
        }
        let mut b = ShardSampler::new((0..10).collect(), 3);
        b.seek(a.position()).unwrap();
        assert_eq!(a.position(), (1, 2));
        for _ in 0..5 {
            assert_eq!(a.next_batch(3), b.next_batch(3));
        }
        assert!(b.seek((0, 11)).is_err());
    }

    #[test]
    fn split_covers_each_sample_once_per_population() {
        for (n, fo, zo) in [(100, 3, 7), (60_000, 24, 256), (10, 1, 0), (5, 0, 5)] {
            let (f, z) = hdo_split(n, fo, zo, 9);
            assert_eq!((f.len(), z.len()), (fo, zo));
            for shards in [f, z] {
                if shards.is_empty() {
                    continue;
                }
                let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
                all.sort_unstable();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
                let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn sampler_draws_without_replacement_per_epoch() {
        let shard: Vec<usize> = (100..137).collect();
        let mut s = ShardSampler::new(shard.clone(), 4);
        // 37 examples in batches of 5: the first 35 draws are distinct members of the shard.
        let mut drawn: Vec<usize> = (0..7).flat_map(|_| s.next_batch(5)).collect();
        let mut uniq = drawn.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), 35);
        // crossing the boundary: 2 left in epoch 0, 3 from epoch 1
        drawn.extend(s.next_batch(5));
        assert_eq!(s.epoch(), 1);
        let mut first_epoch = drawn[..37].to_vec();
        first_epoch.sort_unstable();
        assert_eq!(first_epoch, shard);
        // reproducible
        let mut t = ShardSampler::new(shard, 4);
        assert_eq!(t.next_batch(40)[..37], drawn[..37]);
    }

    #[test]
    fn batch_larger_than_shard_spans_epochs() {
        let mut s = ShardSampler::new(vec![1, 2, 3], 0);
        let b = s.next_batch(7);
        assert_eq!(b.len(), 7);
        assert_eq!(s.epoch(), 2);
        assert!(ShardSampler::new(vec![], 0).next_batch(3).is_empty());
    }
}
