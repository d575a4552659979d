use tally_model::batch::{ClickRecord, VERDICT_COUNTED};

use super::*;
use crate::ingest::record::WalClick;

fn record(tenant: &str, n: u64) -> WalRecord {
    let click = |i: u64| WalClick {
        record: ClickRecord {
            id_hi: i,
            id_lo: n,
            ad_id: 1,
            campaign_id: 0,
            ts_ms: 1_700_000_000_000,
            cost_micros: i,
            verdict: VERDICT_COUNTED,
            accepted_ms: 0,
        },
        user_hash: Some(i),
    };
    WalRecord { lsn: 0, tenant: tenant.into(), clicks: (0..n).map(click).collect(), refused: vec![], tags: vec![], verdicts: vec![] }
}

fn lsns(records: &[WalRecord]) -> Vec<u64> {
    records.iter().map(|r| r.lsn).collect()
}

#[test]
fn appends_and_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, found, damage) = Wal::open(dir.path(), 0).unwrap();
    assert!(found.is_empty() && damage.is_empty());
    let mut batch = vec![record("a", 2), record("b", 3)];
    wal.append(batch.iter_mut()).unwrap();
    wal.append([record("a", 1)].iter_mut()).unwrap();
    assert_eq!(lsns(&batch), vec![0, 1]);
    drop(wal);
    let (wal, found, damage) = Wal::open(dir.path(), 0).unwrap();
    assert!(damage.is_empty());
    assert_eq!(lsns(&found), vec![0, 1, 2]);
    assert_eq!(found[1], WalRecord { lsn: 1, ..record("b", 3) });
    assert_eq!(wal.next_lsn(), 3);
    // Never hand out an lsn below what was already sealed elsewhere.
    let (wal, _, _) = Wal::open(dir.path(), 10).unwrap();
    assert_eq!(wal.next_lsn(), 10);
}

#[test]
fn torn_tail_is_cut_silently_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::open(dir.path(), 0).unwrap();
    wal.append([record("a", 2), record("a", 2)].iter_mut()).unwrap();
    drop(wal);
    let seg = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    let (mut wal, found, damage) = Wal::open(dir.path(), 0).unwrap();
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(lsns(&found), vec![0]);
    wal.append([record("c", 1)].iter_mut()).unwrap();
    drop(wal);
    let (_, found, damage) = Wal::open(dir.path(), 0).unwrap();
    assert!(damage.is_empty());
    assert_eq!(found.iter().map(|r| (r.lsn, r.tenant.as_str())).collect::<Vec<_>>(), vec![(0, "a"), (1, "c")]);
}

#[test]
fn damage_is_reported_and_the_rest_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::open(dir.path(), 0).unwrap();
    wal.append([record("a", 1), record("a", 1)].iter_mut()).unwrap();
    // Force a second segment.
    wal.current = None;
    wal.append([record("b", 1)].iter_mut()).unwrap();
    drop(wal);
    let mut segs: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    assert_eq!(segs.len(), 2);
    // Flip a byte in the second record of the first segment.
    let mut bytes = fs::read(&segs[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&segs[0], bytes).unwrap();
    let (_, found, damage) = Wal::open(dir.path(), 0).unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(lsns(&found), vec![0, 2]);
}

#[test]
fn release_deletes_only_fully_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::open(dir.path(), 0).unwrap();
    for _ in 0..3 {
        wal.append([record("a", 1), record("a", 1)].iter_mut()).unwrap();
        wal.current = None;
    }
    assert_eq!(wal.segments(), 3);
    wal.release(3).unwrap(); // segment [0,2) is sealed; [2,4) is not fully
    assert_eq!(wal.segments(), 2);
    wal.release(100).unwrap(); // the newest segment always stays
    assert_eq!(wal.segments(), 1);
    drop(wal);
    let (_, found, _) = Wal::open(dir.path(), 0).unwrap();
    assert_eq!(lsns(&found), vec![4, 5]);
}

/// In place after its header, a payload is byte for byte the record's
/// standalone archive, wherever in the buffer it starts.
#[test]
fn payloads_are_standalone_archives() {
    for junk in 0..17 {
        let mut out = vec![0xa5; junk];
        let r = record("a", 3);
        encode_record(&r, &mut out);
        let archive = rkyv::to_bytes::<rancor::Error>(&r).unwrap();
        assert_eq!(&out[junk + HEADER..], &archive[..], "at offset {junk}");
        assert_eq!(out[junk..junk + 4], (archive.len() as u32).to_le_bytes());
        assert_eq!(out[junk + 4..junk + HEADER], xxh3_64(&archive).to_le_bytes());
    }
}
