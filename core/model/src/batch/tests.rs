use proptest::prelude::*;

use super::frame::*;
use super::{Batch, SecondRow, TenantRows};

fn row() -> impl Strategy<Value = SecondRow> {
    (any::<u64>(), any::<u64>(), any::<u32>(), 1..1_000u64, any::<u64>(), proptest::collection::btree_set(any::<u64>(), 0..4))
        .prop_map(|(ad_id, campaign_id, second, clicks, spend_micros, users)| SecondRow {
            ad_id,
            campaign_id,
            second,
            clicks: clicks + users.len() as u64,
            spend_micros,
            user_hashes: users.into_iter().collect(),
        })
}

fn batch() -> impl Strategy<Value = Batch> {
    let tenant = ("[a-z][a-z0-9_-]{0,10}", proptest::collection::vec(row(), 0..8))
        .prop_map(|(tenant, rows)| TenantRows { tenant, rows });
    ("[a-z0-9-]{1,20}", any::<u64>(), any::<u64>(), proptest::collection::vec(tenant, 0..4))
        .prop_map(|(edge, seq, sealed_at_ms, tenants)| Batch { edge, seq, sealed_at_ms, tenants })
}

proptest! {
    #[test]
    fn round_trips(b in batch()) {
        prop_assert_eq!(decode(&encode(&b)).unwrap(), b);
    }

    /// Any single flipped bit is caught: by the header checks or the checksum.
    #[test]
    fn detects_any_bit_flip(b in batch(), pos in any::<prop::sample::Index>(), bit in 0..8u8) {
        let mut frame = encode(&b);
        let i = pos.index(frame.len());
        frame[i] ^= 1 << bit;
        prop_assert!(decode(&frame).is_err());
    }

    #[test]
    fn detects_truncation(b in batch(), cut in any::<prop::sample::Index>()) {
        let frame = encode(&b);
        let len = cut.index(frame.len());
        prop_assert!(decode(&frame[..len]).is_err());
    }

    /// Garbage that carries a valid header and checksum is still refused by
    /// bytecheck, never trusted.
    #[test]
    fn rejects_garbage_with_valid_checksum(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&VERSION.to_le_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        // Must not panic; random bytes are almost never a valid archive, and
        // if they are, they passed full validation.
        let _ = decode(&frame);
    }
}

#[test]
fn rejects_semantically_invalid_batches() {
    let bad = Batch {
        edge: "e".into(),
        seq: 1,
        sealed_at_ms: 0,
        tenants: vec![TenantRows {
            tenant: "t".into(),
            rows: vec![SecondRow { ad_id: 1, campaign_id: 0, second: 1, clicks: 0, spend_micros: 0, user_hashes: vec![] }],
        }],
    };
    assert!(matches!(decode(&encode(&bad)), Err(FrameError::Invalid(_))));
    let no_edge = Batch { edge: String::new(), ..bad.clone() };
    assert!(matches!(decode(&encode(&no_edge)), Err(FrameError::Invalid(_))));
}

#[test]
fn totals_and_row_identity() {
    let r = |ad_id, second, clicks| SecondRow { ad_id, campaign_id: 0, second, clicks, spend_micros: 0, user_hashes: vec![] };
    let b = Batch {
        edge: "e".into(),
        seq: 7,
        sealed_at_ms: 0,
        tenants: vec![
            TenantRows { tenant: "a".into(), rows: vec![r(1, 10, 2), r(2, 12, 3)] },
            TenantRows { tenant: "b".into(), rows: vec![r(1, 9, 1)] },
        ],
    };
    assert_eq!(b.totals(), crate::batch::BatchTotals { rows: 3, clicks: 6, min_second: 9, max_second: 12 });
    let ids: Vec<_> = b.indexed_rows().map(|(i, t, r)| (i, t.to_string(), r.ad_id)).collect();
    assert_eq!(ids, vec![(0, "a".into(), 1), (1, "a".into(), 2), (2, "b".into(), 1)]);
}
