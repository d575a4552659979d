use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const HORIZON: u64 = 800;

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
        let mut d = Dedup::new(DedupConfig { horizon_ms: HORIZON, max_entries: usize::MAX });
        let mut first_seen: HashMap<u8, u64> = HashMap::new();
        let mut now = 1_000_000;
        for (key, advance) in steps {
            now += advance;
            let new = d.first_sighting(key as u128, now);
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
        let mut d = Dedup::new(DedupConfig { horizon_ms: HORIZON, max_entries: max });
        let mut accepted = 0u64;
        for (i, k) in keys.iter().enumerate() {
            if d.first_sighting(*k as u128, 1_000_000 + i as u64) {
                accepted += 1;
            }
            prop_assert!(d.len() <= max);
        }
        let expired_or_evicted = accepted - d.len() as u64;
        prop_assert!(d.evicted_early() <= expired_or_evicted);
    }
}

#[test]
fn same_request_repeat_is_a_duplicate() {
    let mut d = Dedup::new(DedupConfig { horizon_ms: 3_600_000, max_entries: 10 });
    assert!(d.first_sighting(1, 5));
    assert!(!d.first_sighting(1, 5));
    assert!(d.first_sighting(2, 5));
    assert_eq!(d.len(), 2);
    assert!(d.memory_bytes() > 0);
}

#[test]
fn forgotten_keys_are_new_again_and_expire_on_their_own_clock() {
    let mut d = Dedup::new(DedupConfig { horizon_ms: 800, max_entries: 10 });
    assert!(d.first_sighting(7, 0));
    d.forget(7);
    assert!(d.first_sighting(7, 500));
    // The stale entry of generation 0 expiring must not drop the new one.
    assert!(!d.first_sighting(7, 1_000));
    assert!(!d.first_sighting(7, 1_299));
}
