use proptest::prelude::*;

use super::*;
use crate::dedup::DedupConfig;

const HOUR: u64 = 3_600_000;
const NOW: u64 = 1_700_000_000_000;

fn chunks() -> impl Strategy<Value = Chunk> {
    let tenant = "[a-z]{1,8}";
    let keys = proptest::collection::vec((any::<u128>(), any::<u64>()), 0..20);
    (0u64..1000, 0u64..1000, proptest::collection::btree_map(tenant, keys, 0..4)).prop_map(|(from, n, tenants)| Chunk { from, to: from + n, tenants })
}

proptest! {
    #[test]
    fn round_trip(chunk in chunks()) {
        prop_assert_eq!(Chunk::decode(&chunk.encode()), Ok(chunk));
    }

    /// A torn file (any prefix) or one with any byte changed is refused,
    /// never misread.
    #[test]
    fn torn_or_damaged_is_refused(chunk in chunks(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = chunk.encode();
        prop_assert!(Chunk::decode(&bytes[..cut.index(bytes.len())]).is_err());
        let mut damaged = bytes.clone();
        damaged[flip.index(bytes.len())] ^= 1 << bit;
        prop_assert!(Chunk::decode(&damaged).is_err());
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn chunk(from: u64, to: u64, keys: &[(&str, u128, u64)]) -> Chunk {
    let mut c = Chunk { from, to, tenants: BTreeMap::new() };
    for &(t, key, at) in keys {
        c.tenants.entry(t.to_string()).or_default().push((key, at));
    }
    c
}

fn dedup() -> Dedup {
    Dedup::new(DedupConfig::new(HOUR, 1000))
}

fn open(dir: &Path, wal_start: u64) -> (Snapshots, Dedup, usize, Vec<Problem>) {
    let mut d = dedup();
    let (s, restored, problems) = Snapshots::open(dir, &mut d, wal_start, NOW).unwrap();
    (s, d, restored, problems)
}

#[test]
fn written_snapshots_restore_the_keys_within_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _, _, problems) = open(dir.path(), 0);
    assert!(problems.is_empty());
    s.write(&chunk(0, 3, &[("acme", 1, NOW - 10), ("globex", 2, NOW - 10), ("acme", 3, NOW - 2 * HOUR)])).unwrap();
    s.write(&chunk(3, 5, &[("acme", 4, NOW - 5)])).unwrap();
    // A write that never finished leaves a temporary file: ignored and removed.
    std::fs::write(dir.path().join("dedup/00000000000000000005.1.0.tmp"), b"half").unwrap();

    let (s, mut d, restored, problems) = open(dir.path(), 5);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((s.covered(), s.files(), restored), (5, 2, 4));
    assert!(!dir.path().join("dedup/00000000000000000005.1.0.tmp").exists());
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert!(!d.first_sighting(&acme, 1, NOW));
    assert!(!d.first_sighting(&globex, 2, NOW));
    assert!(!d.first_sighting(&acme, 4, NOW));
    assert!(d.first_sighting(&acme, 3, NOW), "past its horizon: not restored");
    assert!(d.stats(NOW).iter().all(|t| t.horizon_ms == HOUR));
}

#[test]
fn a_damaged_snapshot_is_quarantined_and_the_rest_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _, _, _) = open(dir.path(), 0);
    s.write(&chunk(0, 2, &[("acme", 1, NOW)])).unwrap();
    s.write(&chunk(2, 4, &[("acme", 2, NOW)])).unwrap();
    s.write(&chunk(4, 6, &[("acme", 3, NOW)])).unwrap();
    let middle = dir.path().join("dedup/00000000000000000002.keys");
    let mut bytes = std::fs::read(&middle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&middle, &bytes).unwrap();

    let (s, mut d, restored, problems) = open(dir.path(), 6);
    assert_eq!((restored, s.files(), s.covered()), (2, 2, 6));
    // The damage itself, then the hole it leaves between the other two.
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].reason.contains("checksum"), "{}", problems[0].reason);
    assert!(problems[0].file.starts_with(dir.path().join("quarantine")));
    assert!(problems[1].reason.contains("2..4"), "{}", problems[1].reason);
    assert!(!middle.exists());
    let acme = tenant("acme");
    assert!(!d.first_sighting(&acme, 1, NOW));
    assert!(!d.first_sighting(&acme, 3, NOW));
    assert!(d.first_sighting(&acme, 2, NOW), "lost with its file");
}

#[test]
fn wal_records_in_no_snapshot_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A spool from before snapshots: its WAL starts at 40, no file covers below.
    let (s, _, _, problems) = open(dir.path(), 40);
    assert_eq!(s.covered(), 0);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].reason.contains("0..40"), "{}", problems[0].reason);
}

#[test]
fn expired_snapshots_are_deleted_but_the_newest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _, _, _) = open(dir.path(), 0);
    s.write(&chunk(0, 1, &[("acme", 1, NOW)])).unwrap();
    s.write(&chunk(1, 2, &[("acme", 2, NOW + 10)])).unwrap();
    s.expire(NOW + HOUR).unwrap();
    assert_eq!(s.files(), 2, "still within the horizon");
    s.expire(NOW + 2 * HOUR).unwrap();
    assert_eq!((s.files(), s.covered()), (1, 2));
    s.expire(NOW + 10 * HOUR).unwrap();
    assert_eq!((s.files(), s.covered()), (1, 2), "the newest records what is covered");
}

#[test]
fn chunks_gather_what_records_decided() {
    use crate::ingest::record::{WalClick, WalRecord};
    use tally_model::batch::{ClickRecord, RefusalReason, RefusedRecord};
    let click = WalClick {
        record: ClickRecord { id_hi: 1, id_lo: 2, ad_id: 1, campaign_id: 0, ts_ms: NOW, cost_micros: 0, verdict: 0, accepted_ms: NOW + 1 },
        user_hash: None,
    };
    let refused = |reason| RefusedRecord { id_hi: 0, id_lo: 9, ad_id: 1, ts_ms: NOW, reason, code: 3, at_ms: NOW + 2 };
    let record = WalRecord {
        lsn: 7,
        tenant: "acme".into(),
        clicks: vec![click],
        refused: vec![refused(RefusalReason::Filtered), refused(RefusalReason::TooLate)],
        tags: Vec::new(),
        verdicts: Vec::new(),
    };
    let mut c = Chunk { from: 7, to: 7, tenants: BTreeMap::new() };
    c.add("acme", &record);
    assert_eq!(c.to, 8);
    // The late click is kept as a refusal (its own key space), not as a sighting of its id.
    let late = crate::ingest::record::time_refusal_key(9);
    assert_eq!(c.tenants["acme"], vec![((1u128 << 64) | 2, NOW + 1), (9, NOW + 2), (late, NOW + 2)]);
}
