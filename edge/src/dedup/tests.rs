use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

const HORIZON: u64 = 800;
const GENERATION: u64 = HORIZON / GENERATIONS;
/// A share no test fills: nothing is evicted.
const ROOMY: usize = 1 << 12;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// Steps: (key from a small space so repeats happen, time advance).
fn steps() -> impl Strategy<Value = Vec<(u8, u64)>> {
    proptest::collection::vec((0u8..16, 0u64..120), 1..400)
}

/// Keys of a small space whose low words collide often (so their tags and
/// homes do): only the high word tells them apart.
fn colliding(k: u8) -> u128 {
    ((k as u128 >> 2) << 64) | (k & 3) as u128
}

/// The table's structure is sound: every held key is found by a probe from
/// its home before an empty slot, at a ring position in use that holds it,
/// in one set of slots only; loads, counts, the ring and its chunks agree.
fn assert_consistent(d: &Dedup) {
    for (_, t) in &d.tables {
        let index = &t.index;
        let mut sets = vec![&index.current];
        sets.extend(index.growth.as_ref().map(|g| &g.from));
        let mut held = 0;
        for slots in sets {
            let values: Vec<u64> = slots.slots.iter().copied().filter(|&v| v != 0).collect();
            assert_eq!(values.len(), slots.len);
            assert!(slots.len * 4 <= slots.slots.len() * 3, "load {} of {}", slots.len, slots.slots.len());
            held += values.len();
            for v in values {
                let at = Slots::position(v);
                let key = t.ring.key(at);
                assert!((t.ring.tail..t.ring.head).contains(&t.ring.absolute(at)));
                assert_eq!(Slots::tag_of(v), index.mix.tag(&key));
                assert_eq!(index.probe(&key, index.mix.tag(&key), &t.ring).map(|(_, p)| p), Ok(at));
            }
        }
        if let Some(g) = &index.growth {
            let n = g.from.slots.len();
            for walked in 0..=g.walked.min(n - 1) {
                let slot = (g.start + walked) % n;
                assert_eq!(g.from.slots[slot], 0, "slot {slot}, behind the growth's cursor, holds a key the growth will not reach");
            }
            assert_eq!(g.cursor, (g.start + 1 + g.walked) % n);
        }
        assert_eq!(held, index.len());
        assert!(held <= t.share);
        assert!(t.ring.head - t.ring.tail <= t.ring.capacity() as u64);
        let in_use = (t.ring.head - t.ring.tail) as usize;
        assert!(t.ring.allocated <= in_use.div_ceil(t.ring.chunk_keys()) + 1, "{} chunks for {in_use} positions", t.ring.allocated);
        assert_eq!(t.runs.is_empty(), t.ring.is_empty());
        if let Some(first) = t.runs.front() {
            assert!(first.from <= t.ring.tail);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Sight(u8),
    Forget(u8),
    Expire(usize),
}

fn ops() -> impl Strategy<Value = Vec<(Op, u64)>> {
    let op = prop_oneof![8 => (0u8..24).prop_map(Op::Sight), 1 => (0u8..24).prop_map(Op::Forget), 1 => (0usize..8).prop_map(Op::Expire)];
    proptest::collection::vec((op, 0u64..120), 1..500)
}

proptest! {
    /// Against a model that remembers each key's first sighting: inside the
    /// horizon a repeat is always caught; past horizon + one generation it is
    /// always new; in between either answer is allowed.
    #[test]
    fn matches_model(steps in steps()) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, ROOMY));
        let mut first_seen: HashMap<u8, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (key, advance) in steps {
            now += advance;
            let new = d.first_sighting(&t, key as u128, now);
            match first_seen.get(&key) {
                Some(&t) if now - t < HORIZON => prop_assert!(!new, "repeat of {key} after {}ms not caught", now - t),
                Some(&t) if now - t >= HORIZON + GENERATION => prop_assert!(new, "{key} remembered {}ms", now - t),
                None => prop_assert!(new),
                _ => {}
            }
            if new {
                first_seen.insert(key, now);
            }
        }
        assert_consistent(&d);
    }

    /// The same model with forgets and upkeep, over keys whose tags collide:
    /// a forgotten key is new at once, expiry off the request path changes
    /// no answer, and the structure stays sound after every step.
    #[test]
    fn matches_model_with_forget_and_expire(ops in ops()) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, ROOMY));
        let mut first_seen: HashMap<u8, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (op, advance) in ops {
            now += advance;
            match op {
                Op::Sight(key) => {
                    let new = d.first_sighting(&t, colliding(key), now);
                    match first_seen.get(&key) {
                        Some(&t) if now - t < HORIZON => prop_assert!(!new, "repeat of {key} after {}ms not caught", now - t),
                        Some(&t) if now - t >= HORIZON + GENERATION => prop_assert!(new, "{key} remembered {}ms", now - t),
                        None => prop_assert!(new, "{key} never seen, reported duplicate"),
                        _ => {}
                    }
                    if new {
                        first_seen.insert(key, now);
                    }
                }
                Op::Forget(key) => {
                    d.forget(&t, colliding(key));
                    first_seen.remove(&key);
                    prop_assert!(!d.contains(colliding(key)));
                }
                Op::Expire(budget) => {
                    prop_assert!(d.expire(now, budget) <= budget);
                }
            }
            assert_consistent(&d);
        }
    }

    /// Exact under memory pressure: with a share far below the keys in use
    /// (the ring wraps, chunks come and go, keys are evicted), a duplicate
    /// is only ever reported for a key sighted and not forgotten; a table
    /// that evicted nothing early still catches every repeat.
    #[test]
    fn never_a_false_duplicate(ops in ops(), share in 1usize..40) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, share));
        let mut first_seen: HashMap<u8, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (op, advance) in ops {
            now += advance;
            match op {
                Op::Sight(key) => {
                    let new = d.first_sighting(&t, colliding(key), now);
                    match first_seen.get(&key) {
                        Some(&t) if now - t < HORIZON && d.evicted_early() == 0 => prop_assert!(!new, "{key} lost without an eviction"),
                        Some(&t) if now - t >= HORIZON + GENERATION => prop_assert!(new, "{key} remembered {}ms", now - t),
                        None => prop_assert!(new, "{key} never seen, reported duplicate"),
                        _ => {}
                    }
                    if new {
                        first_seen.insert(key, now);
                    }
                }
                Op::Forget(key) => {
                    d.forget(&t, colliding(key));
                    first_seen.remove(&key);
                }
                Op::Expire(budget) => {
                    d.expire(now, budget);
                }
            }
            assert_consistent(&d);
        }
    }

    /// The model again over thousands of keys, so the index grows (and its
    /// keys move between slot sets) while keys are sighted, forgotten and
    /// expired; with a share below them, also while the ring evicts.
    #[test]
    fn grows_like_the_model(
        ops in proptest::collection::vec((0u16..3000, 0u8..20, 0u64..3), 1..4000),
        share in prop_oneof![Just(ROOMY), 500usize..3000],
    ) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, share));
        let mut first_seen: HashMap<u16, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (i, (key, op, advance)) in ops.into_iter().enumerate() {
            now += advance;
            let k = (key as u128 % 7) << 64 | key as u128;
            match op {
                0 => {
                    d.forget(&t, k);
                    first_seen.remove(&key);
                }
                1 => {
                    d.expire(now, 50);
                }
                _ => {
                    let new = d.first_sighting(&t, k, now);
                    match first_seen.get(&key) {
                        Some(&t) if now - t < HORIZON && d.evicted_early() == 0 => prop_assert!(!new, "{key} lost after {}ms", now - t),
                        Some(&t) if now - t >= HORIZON + GENERATION => prop_assert!(new, "{key} remembered {}ms", now - t),
                        None => prop_assert!(new, "{key} never seen, reported duplicate"),
                        _ => {}
                    }
                    if new {
                        first_seen.insert(key, now);
                    }
                }
            }
            if i % 97 == 0 {
                assert_consistent(&d);
            }
        }
        assert_consistent(&d);
    }

    /// Memory stays bounded whatever the traffic, and early evictions are
    /// counted, never silent.
    #[test]
    fn bounded(keys in proptest::collection::vec(any::<u64>(), 1..2000), max in 1usize..100) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, max));
        let mut accepted = 0u64;
        for (i, k) in keys.iter().enumerate() {
            if d.first_sighting(&t, *k as u128, 1_000_000 + i as u64) {
                accepted += 1;
            }
            prop_assert!(d.len() <= max);
            let ring = &d.tables[0].1.ring;
            prop_assert!(ring.head - ring.tail <= (max + ring.chunk_keys()) as u64);
        }
        let expired_or_evicted = accepted - d.len() as u64;
        prop_assert!(d.evicted_early() <= expired_or_evicted);
        assert_consistent(&d);
    }

    /// Tenant-fair: whatever other tenants send (any number of unique ids,
    /// at any pace), a tenant within its share keeps every key for its
    /// horizon, is never evicted early and reports its full horizon.
    #[test]
    fn a_flood_never_evicts_another_tenants_keys(
        ops in proptest::collection::vec((0u8..3, any::<u16>(), 0u64..20), 1..1500),
        share in 1usize..40,
    ) {
        let (a, b, c) = (tenant("a"), tenant("b"), tenant("c"));
        let mut d = Dedup::new(DedupConfig::new(HORIZON, share));
        // Tenant a uses at most `share` distinct keys; b and c anything.
        let mut a_first: HashMap<u128, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (who, k, advance) in ops {
            now += advance;
            match who {
                0 => {
                    let key = (k as usize % share) as u128;
                    let new = d.first_sighting(&a, key, now);
                    match a_first.get(&key) {
                        Some(&t) if now - t < HORIZON => prop_assert!(!new, "a's key {key} forgotten after {}ms", now - t),
                        None => prop_assert!(new),
                        _ => {}
                    }
                    if new {
                        a_first.insert(key, now);
                    }
                }
                1 => { d.first_sighting(&b, (1 << 64) + k as u128, now); }
                _ => { d.first_sighting(&c, (2 << 64) + now as u128, now); }
            }
            let stats: HashMap<TenantId, TenantStats> = d.stats(now).into_iter().map(|s| (s.tenant.clone(), s)).collect();
            if let Some(s) = stats.get(&a) {
                prop_assert_eq!(s.evicted_early, 0);
                prop_assert_eq!(s.horizon_ms, HORIZON.min(now));
            }
            for s in stats.values() {
                prop_assert!(s.entries <= share);
            }
        }
    }

    /// Restoring every key of a table (as a snapshot holds them, with their
    /// first sightings) answers exactly like the table did.
    #[test]
    fn restore_answers_like_the_original(steps in steps()) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, ROOMY));
        let mut sightings = Vec::new();
        let mut now = 1_000_000;
        for (key, advance) in &steps {
            now += advance;
            if d.first_sighting(&t, *key as u128, now) {
                sightings.push((*key as u128, now));
            }
        }
        let mut restored = Dedup::new(DedupConfig::new(HORIZON, ROOMY));
        for (key, at) in &sightings {
            restored.restore(&t, *key, *at, now);
        }
        for key in 0..16u128 {
            let recent = sightings.iter().rev().find(|(k, _)| *k == key).is_some_and(|(_, at)| now - at < HORIZON);
            if recent {
                prop_assert!(!restored.first_sighting(&t, key, now), "key {key} lost by the restore");
            }
        }
    }

    /// Restored in any order (snapshot files overlap the WAL replay), every
    /// key within its horizon is still a duplicate, and none past it.
    #[test]
    fn restore_in_any_order(mut sightings in proptest::collection::vec((any::<u64>(), 0u64..2 * HORIZON), 1..300)) {
        let t = tenant("acme");
        let now = 1_000_000 + 2 * HORIZON;
        let mut d = Dedup::new(DedupConfig::new(HORIZON, ROOMY));
        sightings.sort_by_key(|&(k, _)| k);
        for &(key, back) in &sightings {
            d.restore(&t, key as u128, now - back, now);
        }
        assert_consistent(&d);
        let newest: HashMap<u64, u64> = sightings.iter().fold(HashMap::new(), |mut m, &(k, back)| {
            let e = m.entry(k).or_insert(back);
            *e = (*e).min(back);
            m
        });
        for (key, back) in newest {
            prop_assert_eq!(d.first_sighting(&t, key as u128, now), back >= HORIZON, "key sighted {}ms ago", back);
        }
    }
}

#[test]
fn same_request_repeat_is_a_duplicate() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(3_600_000, 10));
    assert!(d.first_sighting(&t, 1, 5));
    assert!(!d.first_sighting(&t, 1, 5));
    assert!(d.first_sighting(&t, 2, 5));
    assert_eq!(d.len(), 2);
    assert!(d.memory_bytes() > 0);
}

/// Keys that differ only in their high word share a tag and a home slot:
/// the full 128 bits tell them apart.
#[test]
fn keys_with_one_low_word_are_distinct() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 100));
    for hi in 0..50u128 {
        assert!(d.first_sighting(&t, hi << 64 | 7, 1_000), "{hi}");
    }
    for hi in 0..50u128 {
        assert!(!d.first_sighting(&t, hi << 64 | 7, 1_000), "{hi}");
    }
    for hi in (0..50u128).step_by(2) {
        d.forget(&t, hi << 64 | 7);
    }
    assert_consistent(&d);
    for hi in 0..50u128 {
        assert_eq!(d.first_sighting(&t, hi << 64 | 7, 1_000), hi % 2 == 0, "{hi}");
    }
}

#[test]
fn forgotten_keys_are_new_again_and_expire_on_their_own_clock() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(800, 10));
    assert!(d.first_sighting(&t, 7, 0));
    d.forget(&t, 7);
    assert!(d.first_sighting(&t, 7, 500));
    // The stale position of the first sighting expiring must not drop the new one.
    assert!(!d.first_sighting(&t, 7, 1_000));
    assert!(!d.first_sighting(&t, 7, 1_299));
}

/// A forgotten key's position is stale: re-inserted keys and later ones
/// are unaffected when the tail passes it, and it holds no share.
#[test]
fn forget_then_reinsert_around_the_ring() {
    let t = tenant("acme");
    let share = 20;
    let mut d = Dedup::new(DedupConfig::new(HORIZON, share));
    for k in 0..share as u128 {
        assert!(d.first_sighting(&t, k, 1_000));
    }
    d.forget(&t, 3);
    assert_eq!(d.len(), share - 1);
    // Room for one more without an eviction: the forgotten key held none.
    assert!(d.first_sighting(&t, 100, 1_000));
    assert_eq!(d.evicted_early(), 0);
    // Re-sighted, it is new and goes to the head; the tail passing its old
    // position must not drop it.
    assert!(d.first_sighting(&t, 3, 1_000));
    assert_eq!(d.evicted_early(), 1, "the share was full: the oldest (0) made room");
    assert!(d.first_sighting(&t, 0, 1_000), "evicted");
    // Ten more evict 2, 4..=12: the tail passes 3's old position, stale now.
    for k in 200..210 {
        assert!(d.first_sighting(&t, k, 1_000));
    }
    assert_eq!((d.len(), d.evicted_early()), (share, 12));
    assert!(!d.first_sighting(&t, 3, 1_000), "the re-inserted key survives the tail passing its old position");
    assert!(!d.first_sighting(&t, 0, 1_000));
    assert!(d.first_sighting(&t, 4, 1_000));
    assert_consistent(&d);
}

/// Stale positions alone can fill the ring (every admission undone): the
/// ring then pops its tail, and a held key dropped that way is counted as
/// evicted early, never lost silently.
#[test]
fn stale_positions_filling_the_ring_evict_honestly() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 20));
    assert!(d.first_sighting(&t, 1, 1_000));
    let capacity = d.table(&t).ring.capacity() as u128;
    for k in 100..100 + capacity {
        assert!(d.first_sighting(&t, k, 1_000));
        d.forget(&t, k);
    }
    assert_eq!(d.evicted_early(), 1);
    assert!(d.stats(1_000)[0].horizon_ms < HORIZON);
    assert!(d.first_sighting(&t, 1, 1_000));
    assert_consistent(&d);
}

/// The ring is a circle: after many laps the newest `share` keys are held,
/// every older one was evicted (and counted) once.
#[test]
fn ring_wraps_around() {
    let t = tenant("acme");
    let share = 20;
    let mut d = Dedup::new(DedupConfig::new(HORIZON, share));
    let capacity = d.table(&t).ring.capacity() as u128;
    let n = 7 * capacity + 5;
    for k in 0..n {
        assert!(d.first_sighting(&t, k, 1_000));
        assert_consistent(&d);
    }
    assert!(d.table(&t).ring.head > 7 * capacity as u64, "the head went round");
    assert_eq!(d.len(), share);
    assert_eq!(d.evicted_early(), (n - share as u128) as u64);
    for k in n - share as u128..n {
        assert!(!d.first_sighting(&t, k, 1_000), "{k}");
    }
    assert!(d.first_sighting(&t, n - share as u128 - 1, 1_000));
}

/// Chunks are allocated as the head reaches them and freed as expiry
/// empties them, so the ring's memory follows the keys held (the index
/// keeps the size it grew to).
#[test]
fn chunks_come_and_go() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 1 << 16));
    d.first_sighting(&t, 0, 1_000);
    let chunk_keys = d.table(&t).ring.chunk_keys();
    let one_chunk = d.table(&t).ring.memory_bytes();
    assert_eq!(d.table(&t).ring.allocated, 1);
    for k in 1..=chunk_keys as u128 {
        d.first_sighting(&t, k, 1_000);
    }
    assert_eq!(d.table(&t).ring.allocated, 2);
    assert_eq!(d.table(&t).ring.memory_bytes() - one_chunk, chunk_keys * 16);
    for k in 0..3 * chunk_keys as u128 {
        d.first_sighting(&t, 1 << 40 | k, 1_100);
    }
    assert_eq!(d.table(&t).ring.allocated, 5);
    let later = 1_100 + HORIZON;
    while d.expire(later, 1_000) > 0 {}
    assert_eq!(d.len(), 0);
    assert!(d.table(&t).ring.allocated <= 1, "{} chunks left", d.table(&t).ring.allocated);
    assert!(d.table(&t).ring.memory_bytes() <= one_chunk);
    assert_consistent(&d);
}

/// A full table evicts its oldest keys one per insert, counts them, and
/// reports the horizon it still covers.
#[test]
fn eviction_when_full() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 10));
    for k in 0..10u128 {
        assert!(d.first_sighting(&t, k, 1_000 + k as u64));
    }
    assert_eq!((d.len(), d.evicted_early()), (10, 0));
    assert_eq!(d.stats(1_010)[0].horizon_ms, HORIZON);
    for k in 10..15u128 {
        assert!(d.first_sighting(&t, k, 1_010));
    }
    assert_eq!((d.len(), d.evicted_early()), (10, 5));
    // Keys 0-4 (sighted at 1000-1004, one run) are gone: sightings from 1010 on are covered.
    assert_eq!(d.stats(1_500)[0].horizon_ms, 1_500 - 1_011);
    for k in 5..15u128 {
        assert!(!d.first_sighting(&t, k, 1_010), "{k}");
    }
    assert!(d.first_sighting(&t, 0, 1_010));
    assert_consistent(&d);
}

/// A table that covers far less than a generation reports about what it
/// covers (to within a chunk's worth of keys), not a horizon near 0.
#[test]
fn a_short_table_reports_what_it_covers() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(3_600_000, 1_000));
    for k in 0..5_000u128 {
        assert!(d.first_sighting(&t, k, k as u64));
    }
    // The last 1000 keys were sighted at 4000-4999 ms, one per ms.
    let covered = d.stats(5_000)[0].horizon_ms;
    let run_keys = 1u64 << d.tables[0].1.ring.chunk_shift;
    assert!(covered <= 1_000 && covered + run_keys >= 1_000, "covered {covered} ms, run of {run_keys} keys");
    assert_consistent(&d);
}

/// The index grows in steps while keys keep arriving: every key stays a
/// duplicate through each growth, and the old slots are freed at the end.
#[test]
fn index_grows_incrementally() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 100_000));
    let mut growths = 0;
    for k in 0..60_000u128 {
        assert!(d.first_sighting(&t, k, 1_000));
        if k % 7 == 0 {
            assert!(!d.first_sighting(&t, k / 2, 1_000), "{}", k / 2);
        }
        let index = &d.table(&t).index;
        if let Some(g) = &index.growth {
            growths += (g.from.len + index.current.len == k as usize + 1 && index.current.len <= 1) as usize;
        }
    }
    assert!(growths >= 5, "{growths} growths");
    assert_consistent(&d);
    for k in 0..60_000u128 {
        assert!(!d.first_sighting(&t, k, 1_000), "{k}");
    }
    assert!(d.table(&t).index.growth.is_none(), "lookups move keys on too: the old slots are freed");
}

/// Expiry never drops a whole generation in one call: an insert drops at
/// most `EXPIRE_PER_INSERT` expired keys, and expired keys still held are
/// answered as new all the same.
#[test]
fn expiry_is_incremental() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 100_000));
    for k in 0..10_000u128 {
        d.first_sighting(&t, k, 1_000);
    }
    let later = 1_000 + 2 * HORIZON;
    assert!(d.first_sighting(&t, 5, later), "an expired key is new");
    assert!(d.len() >= 10_000 - EXPIRE_PER_INSERT, "held: {}", d.len());
    assert_eq!(d.expire(later, 1_000), 1_000);
    while d.expire(later, 1_000) > 0 {}
    assert_eq!(d.len(), 1, "only the re-sighted key is left");
    assert!(!d.first_sighting(&t, 5, later));
}

/// Restored out of order, a key older than the newest run joins it: it is
/// a duplicate for at least its own horizon, and gone one generation after
/// the run's.
#[test]
fn restore_out_of_order() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(HORIZON, 100));
    let now = 10_000;
    d.restore(&t, 1, now - 50, now);
    d.restore(&t, 2, now - 700, now);
    d.restore(&t, 3, now - 10, now);
    d.restore(&t, 4, now - HORIZON, now);
    assert_eq!(d.len(), 3, "a key past its horizon is not restored");
    for k in 1..=3 {
        assert!(!d.first_sighting(&t, k, now), "{k}");
    }
    assert!(d.first_sighting(&t, 4, now));
    // Key 2 (sighted 700ms ago) lives with its run: up to 10ms + horizon from now.
    assert!(!d.first_sighting(&t, 2, now + HORIZON - 11));
    assert!(d.first_sighting(&t, 2, now + HORIZON - 10 + GENERATION));
    assert_eq!(d.evicted_early(), 0);
}

#[test]
fn per_tenant_shares_and_stats() {
    let (a, b) = (tenant("a"), tenant("b"));
    let mut config = DedupConfig::new(HORIZON, 3);
    config.tenant_max_entries.insert("b".into(), 5);
    let mut d = Dedup::new(config);
    for k in 0..10u128 {
        d.first_sighting(&a, k, 10_000);
        d.first_sighting(&b, 100 + k, 10_000);
    }
    let stats: HashMap<String, TenantStats> = d.stats(10_000).into_iter().map(|s| (s.tenant.to_string(), s)).collect();
    assert_eq!((stats["a"].entries, stats["a"].evicted_early), (3, 7));
    assert_eq!((stats["b"].entries, stats["b"].evicted_early), (5, 5));
    assert_eq!(d.evicted_early(), 12);
    // Keys of 10,000 were evicted early: only what came after is covered.
    assert!(stats["a"].horizon_ms < HORIZON);
    // Once no eviction happened for a horizon, the full horizon is covered again.
    assert_eq!(d.stats(10_000 + 2 * HORIZON)[0].horizon_ms, HORIZON);
    d.forgot_before(20_000);
    assert!(d.stats(20_100).iter().all(|s| s.horizon_ms == 100));
}

/// What a key costs: measured from the capacities of a full table.
#[test]
fn memory_per_key() {
    let t = tenant("acme");
    let n = 1 << 20;
    let mut d = Dedup::new(DedupConfig::new(3_600_000, n));
    for k in 0..n as u128 {
        d.first_sighting(&t, k.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835), 0);
    }
    let per_key = d.memory_bytes() as f64 / n as f64;
    println!("dedup: {per_key:.1} bytes per key at {n} keys");
    assert!(per_key < 28.0, "{per_key}");
    let distinct: HashSet<u128> = (0..n as u128).collect();
    assert_eq!(d.len(), distinct.len());
    assert_eq!(d.evicted_early(), 0);
}

/// Growths past 2 MiB of slots take slots made by a thread of their own
/// (`zeroed`): every key is still found after them.
#[test]
fn keys_survive_growths_into_prepared_slots() {
    let t = tenant("acme");
    let n = 1 << 20;
    let key = |k: u128| k.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let mut d = Dedup::new(DedupConfig::new(3_600_000, n));
    for k in 0..n as u128 {
        assert!(d.first_sighting(&t, key(k), 0));
    }
    for k in 0..n as u128 {
        assert!(!d.first_sighting(&t, key(k), 1), "key {k} was lost in a growth");
    }
}
