use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

const HORIZON: u64 = 800;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// Steps: (key from a small space so repeats happen, time advance).
fn steps() -> impl Strategy<Value = Vec<(u8, u64)>> {
    proptest::collection::vec((0u8..16, 0u64..120), 1..400)
}

proptest! {
    /// Against a model that remembers each key's first sighting: inside the
    /// horizon a repeat is always caught; past horizon + one generation it is
    /// always new; in between either answer is allowed.
    #[test]
    fn matches_model(steps in steps()) {
        let t = tenant("acme");
        let mut d = Dedup::new(DedupConfig::new(HORIZON, usize::MAX));
        let mut first_seen: HashMap<u8, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (key, advance) in steps {
            now += advance;
            let new = d.first_sighting(&t, key as u128, now);
            match first_seen.get(&key) {
                Some(&t) if now - t < HORIZON => prop_assert!(!new, "repeat of {key} after {}ms not caught", now - t),
                Some(&t) if now - t >= HORIZON + HORIZON / GENERATIONS => prop_assert!(new, "{key} remembered {}ms", now - t),
                None => prop_assert!(new),
                _ => {}
            }
            if new {
                first_seen.insert(key, now);
            }
        }
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
            prop_assert!(d.tables[&t].queue.len() <= 2 * max);
        }
        let expired_or_evicted = accepted - d.len() as u64;
        prop_assert!(d.evicted_early() <= expired_or_evicted);
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
        let mut d = Dedup::new(DedupConfig::new(HORIZON, usize::MAX));
        let mut sightings = Vec::new();
        let mut now = 1_000_000;
        for (key, advance) in &steps {
            now += advance;
            if d.first_sighting(&t, *key as u128, now) {
                sightings.push((*key as u128, now));
            }
        }
        let mut restored = Dedup::new(DedupConfig::new(HORIZON, usize::MAX));
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

#[test]
fn forgotten_keys_are_new_again_and_expire_on_their_own_clock() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(800, 10));
    assert!(d.first_sighting(&t, 7, 0));
    d.forget(&t, 7);
    assert!(d.first_sighting(&t, 7, 500));
    // The stale entry of generation 0 expiring must not drop the new one.
    assert!(!d.first_sighting(&t, 7, 1_000));
    assert!(!d.first_sighting(&t, 7, 1_299));
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
    // Keys of generation 100 were evicted early: only what came after is covered.
    assert!(stats["a"].horizon_ms < HORIZON);
    // Once no eviction happened for a horizon, the full horizon is covered again.
    assert_eq!(d.stats(10_000 + 2 * HORIZON)[0].horizon_ms, HORIZON);
    d.forgot_before(20_000);
    assert!(d.stats(20_100).iter().all(|s| s.horizon_ms == 100));
}

/// What a key costs: measured from the capacities of a filled table.
#[test]
fn memory_per_key() {
    let t = tenant("acme");
    let mut d = Dedup::new(DedupConfig::new(3_600_000, usize::MAX));
    let n = 1 << 20;
    for k in 0..n as u128 {
        d.first_sighting(&t, k, 0);
    }
    let per_key = d.memory_bytes() as f64 / n as f64;
    println!("dedup: {per_key:.1} bytes per key at {n} keys");
    assert!(per_key < 100.0, "{per_key}");
    let distinct: HashSet<u128> = (0..n as u128).collect();
    assert_eq!(d.len(), distinct.len());
}
