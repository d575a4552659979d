use tally_model::batch::{ClickRecord, SecondRow, TenantRows};

use std::fs::File;

use super::*;

/// A sealing of `clicks` clicks covering WAL records [clicks, clicks + 1).
fn rows(clicks: u64) -> Sealing {
    let record = |i| ClickRecord { id_hi: i, id_lo: 0, ad_id: 1, campaign_id: 0, ts_ms: 100_000 + i, cost_micros: 0, verdict: 0, accepted_ms: 0 };
    Sealing {
        tenants: vec![TenantRows {
            tenant: "t".into(),
            rows: vec![SecondRow { ad_id: 1, campaign_id: 0, second: 100, clicks, spend_micros: 0, user_hashes: vec![] }],
            clicks: (0..clicks).map(record).collect(),
            refused: vec![],
        }],
        wal_from: clicks,
        wal_to: clicks + 1,
        low_watermark_ms: 0,
    }
}

#[test]
fn survives_reopen_with_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, q) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    assert!(q.is_empty());
    let a = s.seal(rows(1), 10).unwrap();
    let b = s.seal(rows(2), 11).unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    s.acknowledge(1).unwrap();
    drop(s);

    let (s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    let pending: Vec<_> = s.pending().cloned().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].seq, &pending[0].frame), (2, &b.frame));
    assert_eq!(s.next_seq(), 3);
    assert_eq!(s.wal_sealed(), 3);
    assert_eq!(s.pending_min_event_ms(), Some(100_000));
}

#[test]
fn never_reuses_a_sequence_number_or_wal_range() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    for i in 1..=3 {
        let sealed = s.seal(rows(i), 0).unwrap();
        s.acknowledge(sealed.seq).unwrap();
    }
    drop(s);
    let (mut s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    assert_eq!(s.pending_len(), 0);
    assert_eq!(s.seal(rows(9), 0).unwrap().seq, 4);
    // Losing seal-state (but not the outbox) still cannot rewind past a file.
    drop(s);
    fs::remove_file(dir.path().join("seal-state")).unwrap();
    let (s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    assert_eq!(s.next_seq(), 5);
    assert_eq!(s.wal_sealed(), 10);
}

#[test]
fn quarantines_damaged_files_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    s.seal(rows(1), 0).unwrap();
    s.seal(rows(2), 0).unwrap();
    s.seal(rows(3), 0).unwrap();
    drop(s);
    let outbox = dir.path().join("outbox");
    // Truncate batch 1, flip a byte of batch 2, leave a stray tmp file.
    let p1 = outbox.join(file_name(1));
    let len = fs::metadata(&p1).unwrap().len();
    File::options().write(true).open(&p1).unwrap().set_len(len / 2).unwrap();
    let p2 = outbox.join(file_name(2));
    let mut bytes = fs::read(&p2).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&p2, bytes).unwrap();
    fs::write(outbox.join("00000000000000000004.batch.tmp"), b"partial").unwrap();

    let (s, q) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(s.pending().map(|b| b.seq).collect::<Vec<_>>(), vec![3]);
    assert_eq!(s.next_seq(), 4);
    assert!(dir.path().join("quarantine").join(file_name(1)).exists());
}

#[test]
fn refuses_another_edges_spool_and_caps_size() {
    let dir = tempfile::tempdir().unwrap();
    drop(Outbox::open(dir.path(), "e1", 1).unwrap());
    assert!(matches!(Outbox::open(dir.path(), "e2", 1), Err(SpoolError::WrongEdge { .. })));
    let (mut s, _) = Outbox::open(dir.path(), "e1", 1).unwrap();
    s.seal(rows(1), 0).unwrap();
    assert!(matches!(s.seal(rows(1), 0), Err((SpoolError::Full { .. }, _))));
    s.acknowledge(1).unwrap();
    assert_eq!(s.bytes(), 0);
    s.seal(rows(1), 0).unwrap();
}
