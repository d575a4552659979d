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
            ..Default::default()
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
    // A seal-state older than the newest batch file (crash between the two
    // writes) cannot rewind past the file.
    drop(s);
    fs::write(dir.path().join("seal-state"), "4 4").unwrap();
    let (s, _) = Outbox::open(dir.path(), "e1", u64::MAX).unwrap();
    assert_eq!(s.next_seq(), 5);
    assert_eq!(s.wal_sealed(), 10);
    // A spool that lost its seal-state is refused, not guessed.
    drop(s);
    fs::remove_file(dir.path().join("seal-state")).unwrap();
    assert!(matches!(Outbox::open(dir.path(), "e1", u64::MAX), Err(SpoolError::StateLost(_))));
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

#[test]
fn opens_only_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    drop(Outbox::open(dir.path(), "e1", 1 << 20).unwrap());
    assert_eq!(fs::read_to_string(dir.path().join("format")).unwrap(), FORMAT.to_string());
    // A spool from before format files existed is taken only while it holds
    // nothing to misread.
    fs::remove_file(dir.path().join("format")).unwrap();
    drop(Outbox::open(dir.path(), "e1", 1 << 20).unwrap());
    assert_eq!(fs::read_to_string(dir.path().join("format")).unwrap(), FORMAT.to_string());
    let (mut s, _) = Outbox::open(dir.path(), "e1", 1 << 20).unwrap();
    s.seal(rows(1), 0).unwrap();
    drop(s);
    fs::remove_file(dir.path().join("format")).unwrap();
    assert!(matches!(Outbox::open(dir.path(), "e1", 1 << 20), Err(SpoolError::Format { .. })));
    fs::write(dir.path().join("format"), FORMAT.to_string()).unwrap();
    // Another layout is refused, not misread.
    fs::write(dir.path().join("format"), "2").unwrap();
    match Outbox::open(dir.path(), "e1", 1 << 20) {
        Err(e @ SpoolError::Format { .. }) => assert!(e.to_string().contains("in format 2"), "{e}"),
        other => panic!("opened a spool in another format: {:?}", other.map(|_| ())),
    }
}

mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Seal(u64),
        /// Acknowledge the n-th pending batch (if any).
        Ack(usize),
        /// Drop the outbox without closing it and open it again.
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..5).prop_map(Op::Seal),
            3 => (0usize..4).prop_map(Op::Ack),
            2 => Just(Op::Crash),
        ]
    }

    proptest! {
        /// Against a model of what was sealed and acknowledged, across any
        /// interleaving of crashes: every pending batch comes back with its
        /// exact bytes, acknowledged ones never come back, no sequence number
        /// is handed out twice, and the sealed WAL position is exact.
        #[test]
        fn survives_any_crash_interleaving(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let (mut outbox, _) = Outbox::open(dir.path(), "e", u64::MAX).unwrap();
            let mut pending: BTreeMap<u64, Bytes> = BTreeMap::new();
            let mut used = std::collections::BTreeSet::new();
            let mut wal_to = 0u64;
            for op in ops {
                match op {
                    Op::Seal(n) => {
                        let mut s = rows(n);
                        s.wal_from = wal_to;
                        s.wal_to = wal_to + n;
                        let sealed = outbox.seal(s, 0).unwrap();
                        prop_assert!(used.insert(sealed.seq), "seq {} reused", sealed.seq);
                        wal_to += n;
                        pending.insert(sealed.seq, sealed.frame);
                    }
                    Op::Ack(i) => {
                        if let Some(&seq) = pending.keys().nth(i) {
                            outbox.acknowledge(seq).unwrap();
                            pending.remove(&seq);
                        }
                    }
                    Op::Crash => {
                        drop(outbox);
                        outbox = Outbox::open(dir.path(), "e", u64::MAX).unwrap().0;
                        let found: BTreeMap<u64, Bytes> = outbox.pending().map(|s| (s.seq, s.frame.clone())).collect();
                        prop_assert_eq!(&found, &pending);
                        prop_assert_eq!(outbox.wal_sealed(), wal_to);
                    }
                }
            }
        }
    }
}
