//! The hasher of the edge's per-click maps: clicks in flight by key
//! (`ingest::pipeline`), per-second rows (`aggregate`).
//!
//! Their keys are 128-bit click keys (already xxh3 hashes) or a few
//! integers, hashed once per click or more; std's SipHash over them cost
//! more than the map operations themselves. Here each 64-bit word costs one
//! folded multiply (as in foldhash). Seeded at random per process: ad ids
//! and click ids are chosen by clients, and an unseeded function would let
//! them send keys that all fall into the same buckets.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A `BuildHasher` for `HashMap`s whose keys are integers or click keys.
#[derive(Debug, Clone, Copy)]
pub struct MapHash {
    seed: u64,
    multiplier: u64,
}

impl Default for MapHash {
    fn default() -> MapHash {
        static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
        let &(seed, multiplier) = SEEDS.get_or_init(|| (fastrand::u64(..), fastrand::u64(..) | 1));
        MapHash { seed, multiplier }
    }
}

impl BuildHasher for MapHash {
    type Hasher = WordHasher;

    fn build_hasher(&self) -> WordHasher {
        WordHasher { state: self.seed, multiplier: self.multiplier }
    }
}

pub struct WordHasher {
    state: u64,
    multiplier: u64,
}

/// The 128-bit product's halves xor-ed: every input bit reaches the high
/// bits (hashbrown's tags) and the low bits (its bucket index).
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for WordHasher {
    fn write_u64(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, self.multiplier);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        self.write_u64(bytes.len() as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_orders_hash_apart() {
        let h = MapHash::default();
        let one = |f: &dyn Fn(&mut WordHasher)| {
            let mut hasher = h.build_hasher();
            f(&mut hasher);
            hasher.finish()
        };
        assert_eq!(one(&|x| x.write_u64(7)), one(&|x| x.write_u64(7)));
        assert_ne!(one(&|x| x.write_u64(7)), one(&|x| x.write_u64(8)));
        assert_ne!(one(&|x| (x.write_u64(1), x.write_u64(2)).1), one(&|x| (x.write_u64(2), x.write_u64(1)).1));
        assert_ne!(one(&|x| x.write(b"ab")), one(&|x| x.write(b"ab\0")));
        // Keys differing only in their high half land apart.
        assert_ne!(one(&|x| x.write_u128(1 << 64)), one(&|x| x.write_u128(2 << 64)));
    }
}
