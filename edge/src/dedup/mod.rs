//! Deduplication of click ids within a horizon, in bounded memory.
//!
//! Sans-IO: the caller passes the clock, so behaviour is a pure function of
//! the sequence of `(key, now)` calls and is tested against a model.
//!
//! # Design
//! Keys are 128-bit hashes of `(tenant, click_id)`. Time is cut into
//! generations of `horizon / GENERATIONS`; each key is filed under the
//! generation of its first sighting, and whole generations expire together,
//! so expiry costs one pass over the keys that expire and nothing per lookup.
//!
//! # Guarantees
//! * A key seen at `t` is reported as a duplicate at any `t' < t + horizon`,
//!   unless memory pressure evicted it early (counted in `evicted_early`).
//! * A key is forgotten by `t + horizon + horizon / GENERATIONS` at the latest.
//! * At most `max_entries` keys are held (plus one generation being filled).
//! * Horizon is measured from the first sighting: re-sends do not extend it.

use std::collections::{HashMap, VecDeque};

/// Number of generations a horizon is cut into: more means tighter expiry,
/// fewer means cheaper bookkeeping.
pub const GENERATIONS: u64 = 8;

#[derive(Debug, Clone, Copy)]
pub struct DedupConfig {
    pub horizon_ms: u64,
    pub max_entries: usize,
}

#[derive(Debug)]
pub struct Dedup {
    generation_ms: u64,
    max_entries: usize,
    /// key -> generation of first sighting
    seen: HashMap<u128, u64>,
    /// generations in ascending order with the keys filed under them
    generations: VecDeque<(u64, Vec<u128>)>,
    evicted_early: u64,
}

/// Bytes one entry costs: map slot (key, generation, control byte, load
/// factor slack) plus its place in a generation list.
const BYTES_PER_ENTRY: usize = (16 + 8 + 1) * 8 / 7 + 16;

impl Dedup {
    pub fn new(config: DedupConfig) -> Dedup {
        Dedup {
            generation_ms: (config.horizon_ms / GENERATIONS).max(1),
            max_entries: config.max_entries.max(1),
            seen: HashMap::new(),
            generations: VecDeque::new(),
            evicted_early: 0,
        }
    }

    /// Records a sighting; true if the key is new (count it), false if it is
    /// a duplicate within the horizon.
    pub fn first_sighting(&mut self, key: u128, now_ms: u64) -> bool {
        let generation = now_ms / self.generation_ms;
        self.expire(generation);
        if self.seen.contains_key(&key) {
            return false;
        }
        if self.seen.len() >= self.max_entries {
            self.evict_oldest();
        }
        self.seen.insert(key, generation);
        match self.generations.back_mut() {
            Some((g, keys)) if *g >= generation => keys.push(key),
            _ => self.generations.push_back((generation, vec![key])),
        }
        true
    }

    fn expire(&mut self, current: u64) {
        while let Some((g, _)) = self.generations.front() {
            if g + GENERATIONS >= current {
                break;
            }
            let (g, keys) = self.generations.pop_front().unwrap();
            self.drop_generation(g, keys);
        }
    }

    /// Removes a generation's keys, skipping any key that was forgotten and
    /// seen again since (it now belongs to a newer generation).
    fn drop_generation(&mut self, generation: u64, keys: Vec<u128>) -> u64 {
        let mut dropped = 0;
        for k in keys {
            if self.seen.get(&k) == Some(&generation) {
                self.seen.remove(&k);
                dropped += 1;
            }
        }
        dropped
    }

    /// Forgets a key recorded by `first_sighting`, for a click whose
    /// acceptance was rolled back (it was never acknowledged).
    pub fn forget(&mut self, key: u128) {
        self.seen.remove(&key);
    }

    /// Whether the key is held (a sighting past its horizon may still be,
    /// until its generation expires).
    pub fn contains(&self, key: u128) -> bool {
        self.seen.contains_key(&key)
    }

    fn evict_oldest(&mut self) {
        if let Some((g, keys)) = self.generations.pop_front() {
            self.evicted_early += self.drop_generation(g, keys);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Estimated heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.seen.capacity() * BYTES_PER_ENTRY
    }

    /// Keys dropped before their horizon because `max_entries` was reached.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests;
