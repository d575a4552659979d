use proptest::prelude::*;

use super::frame::*;
use super::{Batch, ClickRecord, DimRow, RefusalReason, RefusedRecord, SecondRow, TenantRows, VerdictRow, MODE_SHADOW, VERDICT_COUNTED};

fn click() -> impl Strategy<Value = ClickRecord> {
    (any::<u64>(), any::<u64>(), any::<u64>(), 0..1_000_000_000u64, 0..=crate::money::MAX_COST_MICROS).prop_map(|(id_hi, id_lo, ad_id, ts_ms, cost)| {
        ClickRecord { id_hi, id_lo, ad_id, campaign_id: ad_id / 3, ts_ms, cost_micros: cost, verdict: VERDICT_COUNTED, accepted_ms: ts_ms + 5 }
    })
}

/// A tenant's part, consistent: one row per click (rows and records agree).
fn tenant_rows() -> impl Strategy<Value = TenantRows> {
    ("[a-z][a-z0-9_-]{0,10}", proptest::collection::vec((click(), proptest::option::of(any::<u64>())), 0..8), any::<bool>()).prop_map(
        |(tenant, clicks, refuse)| TenantRows {
            rows: clicks
                .iter()
                .map(|(c, user)| SecondRow {
                    ad_id: c.ad_id,
                    campaign_id: c.campaign_id,
                    second: c.second(),
                    clicks: 1,
                    spend_micros: c.cost_micros,
                    user_hashes: user.iter().copied().collect(),
                })
                .collect(),
            refused: if refuse {
                vec![RefusedRecord { id_hi: 1, id_lo: 2, ad_id: 3, ts_ms: 4, reason: RefusalReason::TooLate, code: 0, at_ms: 5 }]
            } else {
                vec![]
            },
            // Every click tagged with one value of one dimension.
            dims: clicks
                .iter()
                .map(|(c, _)| DimRow {
                    ad_id: c.ad_id,
                    campaign_id: c.campaign_id,
                    second: c.second(),
                    dimension: "country".into(),
                    value: "DE".into(),
                    clicks: 1,
                    spend_micros: c.cost_micros,
                })
                .collect(),
            verdicts: vec![VerdictRow {
                minute: 1,
                active_version: 1,
                candidate_version: 2,
                mode: MODE_SHADOW,
                applied_candidate: false,
                active_code: 0,
                candidate_code: 3,
                clicks: 1,
            }],
            clicks: clicks.into_iter().map(|(c, _)| c).collect(),
            tenant,
        },
    )
}

fn batch() -> impl Strategy<Value = Batch> {
    ("[a-z0-9-]{1,20}", any::<u64>(), any::<u64>(), 0..1_000u64, proptest::collection::vec(tenant_rows(), 0..4)).prop_map(
        |(edge, seq, sealed_at_ms, wal_len, tenants)| Batch {
            edge,
            seq,
            sealed_at_ms,
            low_watermark_ms: sealed_at_ms / 2,
            wal_from: seq,
            wal_to: seq.saturating_add(wal_len),
            tenants,
        },
    )
}

/// Any batch, valid or not, with strings short (inline) and long.
fn any_batch() -> impl Strategy<Value = Batch> {
    let text = || "[a-zé]{0,12}";
    let row = (any::<u64>(), any::<u32>(), any::<u64>(), proptest::collection::vec(any::<u64>(), 0..3))
        .prop_map(|(ad_id, second, clicks, user_hashes)| SecondRow { ad_id, campaign_id: ad_id / 2, second, clicks, spend_micros: clicks, user_hashes });
    let dim = (any::<u64>(), text(), text()).prop_map(|(clicks, dimension, value)| DimRow {
        ad_id: 1,
        campaign_id: 2,
        second: 3,
        dimension,
        value,
        clicks,
        spend_micros: 4,
    });
    let refused = (any::<u64>(), any::<u16>(), 1..=3u8).prop_map(|(ts_ms, code, reason)| RefusedRecord {
        id_hi: ts_ms,
        id_lo: 1,
        ad_id: 2,
        ts_ms,
        reason: [RefusalReason::TooLate, RefusalReason::Future, RefusalReason::Filtered][reason as usize - 1],
        code,
        at_ms: ts_ms / 2,
    });
    let verdict = (any::<u32>(), any::<bool>(), any::<u16>()).prop_map(|(minute, applied_candidate, code)| VerdictRow {
        minute,
        active_version: 1,
        candidate_version: 2,
        mode: MODE_SHADOW,
        applied_candidate,
        active_code: code,
        candidate_code: 0,
        clicks: 1,
    });
    let tenant = (
        text(),
        proptest::collection::vec(row, 0..3),
        proptest::collection::vec(click(), 0..3),
        proptest::collection::vec(refused, 0..3),
        proptest::collection::vec(dim, 0..3),
        proptest::collection::vec(verdict, 0..2),
    )
        .prop_map(|(tenant, rows, clicks, refused, dims, verdicts)| TenantRows { tenant, rows, clicks, refused, dims, verdicts });
    (text(), any::<u64>(), proptest::collection::vec(tenant, 0..3)).prop_map(|(edge, seq, tenants)| Batch {
        edge,
        seq,
        sealed_at_ms: seq / 3,
        low_watermark_ms: seq / 5,
        wal_from: 1,
        wal_to: seq,
        tenants,
    })
}

proptest! {
    #[test]
    fn round_trips(b in batch()) {
        prop_assert_eq!(decode(&encode(&b)).unwrap(), b);
    }

    /// The canonical check in place says what serializing the deserialized
    /// batch and comparing said: for any batch's own encoding, and for that
    /// encoding with a byte changed, whenever bytecheck still accepts it.
    #[test]
    fn canonical_check_is_re_encoding(b in any_batch(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let own = BatchArchive::of(&b);
        prop_assert!(super::canonical::is_own_encoding(own.batch(), &rkyv::to_bytes::<rkyv::rancor::Error>(&b).unwrap()));
        let mut bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&b).unwrap();
        if !bytes.is_empty() {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(archived) = rkyv::access::<super::ArchivedBatch, rkyv::rancor::Error>(&bytes) {
            let again = rkyv::to_bytes::<rkyv::rancor::Error>(&rkyv::deserialize::<Batch, rkyv::rancor::Error>(archived).unwrap()).unwrap();
            prop_assert_eq!(super::canonical::is_own_encoding(archived, &bytes), again.as_slice() == bytes.as_slice());
        }
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

    /// A reader that reserves what the header declares reserves exactly the payload.
    #[test]
    fn declared_len_is_the_payload_length(b in batch()) {
        let frame = encode(&b);
        let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
        prop_assert_eq!(declared_len(&header), Ok(frame.len() - HEADER_LEN));
        let mut bad = header;
        bad[0] ^= 1;
        prop_assert!(matches!(declared_len(&bad), Err(FrameError::Magic(_))));
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

/// Found by `fuzz/`'s batch_frame target: bytes bytecheck does not look at
/// (the unused ones of an inline string) let another archive of the same
/// batch decode, under another checksum.
#[test]
fn accepts_only_the_batch_s_own_encoding() {
    let batch = one_tenant(vec![r(1, 2, 1)], records(1, 2, 1));
    let frame = encode(&batch);
    for at in HEADER_LEN..frame.len() {
        for byte in [0, 0xff, frame[at] ^ 1] {
            let mut payload = frame[HEADER_LEN..].to_vec();
            payload[at - HEADER_LEN] = byte;
            let mut other = frame[..HEADER_LEN].to_vec();
            other[12..20].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
            other.extend_from_slice(&payload);
            if let Ok(decoded) = decode(&other) {
                assert_eq!(encode(&decoded), other, "byte {at} set to {byte:#x}");
            }
        }
    }
}

/// Found by `fuzz/`'s batch_frame target: which dimension a refusal named
/// followed a HashMap's order, so varied by run; and a dimension's spend,
/// which the rollups sum, was not bounded at all.
#[test]
fn dimension_refusals_name_the_first_and_bound_spend() {
    let dim = |dimension: &str, clicks, spend_micros| DimRow {
        ad_id: 1,
        campaign_id: 0,
        second: 1,
        dimension: dimension.into(),
        value: "x".into(),
        clicks,
        spend_micros,
    };
    let mut b = one_tenant(vec![SecondRow { spend_micros: 5, ..r(1, 1, 1) }], records(1, 1, 1));
    b.tenants[0].clicks[0].cost_micros = 5;
    b.tenants[0].dims = ["e", "d", "c", "b", "a"].map(|d| dim(d, 2, 0)).into();
    for _ in 0..8 {
        assert!(matches!(validate(&b), Err(Invalid::DimensionClicks { dimension, .. }) if dimension == "a"));
    }
    b.tenants[0].dims = vec![dim("country", 1, 5)];
    assert_eq!(validate(&b), Ok(()));
    b.tenants[0].dims.push(dim("device", 1, 6));
    assert!(matches!(validate(&b), Err(Invalid::DimensionSpend { dimension, spend: 6, of: 5, .. }) if dimension == "device"));
    b.tenants[0].dims = vec![dim("country", 1, u64::MAX), dim("country", 1, 1)];
    assert!(matches!(validate(&b), Err(Invalid::DimensionOverflow { .. })));
}

fn r(ad_id: u64, second: u32, clicks: u64) -> SecondRow {
    SecondRow { ad_id, campaign_id: 0, second, clicks, spend_micros: 0, user_hashes: vec![] }
}

fn records(ad_id: u64, second: u32, n: u64) -> Vec<ClickRecord> {
    (0..n)
        .map(|i| ClickRecord { id_hi: i, id_lo: ad_id, ad_id, campaign_id: 0, ts_ms: second as u64 * 1000, cost_micros: 0, verdict: 0, accepted_ms: 0 })
        .collect()
}

fn one_tenant(rows: Vec<SecondRow>, clicks: Vec<ClickRecord>) -> Batch {
    Batch {
        edge: "e".into(),
        seq: 1,
        sealed_at_ms: 0,
        low_watermark_ms: 0,
        wal_from: 0,
        wal_to: 1,
        tenants: vec![TenantRows { tenant: "t".into(), rows, clicks, refused: vec![], ..Default::default() }],
    }
}

#[test]
fn rejects_semantically_invalid_batches() {
    let zero = one_tenant(vec![r(1, 1, 0)], vec![]);
    assert!(matches!(decode(&encode(&zero)), Err(FrameError::Invalid(Invalid::EmptyRow { .. }))));
    let no_edge = Batch { edge: String::new(), ..one_tenant(vec![r(1, 1, 1)], records(1, 1, 1)) };
    assert!(matches!(decode(&encode(&no_edge)), Err(FrameError::Invalid(Invalid::EdgeId))));
    // Rows and click records must agree.
    let disagree = one_tenant(vec![r(1, 1, 2)], records(1, 1, 1));
    assert!(matches!(decode(&encode(&disagree)), Err(FrameError::Invalid(Invalid::RowsDisagree { .. }))));
    let reversed = Batch { wal_from: 5, wal_to: 4, ..one_tenant(vec![], vec![]) };
    assert!(matches!(decode(&encode(&reversed)), Err(FrameError::Invalid(Invalid::WalRange))));
    let ok = one_tenant(vec![r(1, 1, 2)], records(1, 1, 2));
    assert_eq!(decode(&encode(&ok)).unwrap(), ok);
    // A dimension cannot count more clicks than the tenant has.
    let dim = |value: &str, clicks| DimRow { ad_id: 1, campaign_id: 0, second: 1, dimension: "country".into(), value: value.into(), clicks, spend_micros: 0 };
    let mut tagged = ok.clone();
    tagged.tenants[0].dims = vec![dim("DE", 1), dim("FR", 1)];
    assert_eq!(decode(&encode(&tagged)).unwrap(), tagged);
    tagged.tenants[0].dims.push(dim("JP", 1));
    assert!(matches!(decode(&encode(&tagged)), Err(FrameError::Invalid(e)) if e.to_string().contains("dimension country counts 3 clicks of 2")));
    // A cost above the per-click maximum, even if rows and records agree.
    let mut dear = ok.clone();
    dear.tenants[0].clicks[0].cost_micros = crate::money::MAX_COST_MICROS + 1;
    dear.tenants[0].rows[0].spend_micros = dear.tenants[0].clicks.iter().map(|c| c.cost_micros).sum();
    assert!(matches!(decode(&encode(&dear)), Err(FrameError::Invalid(e @ Invalid::Cost { .. })) if e.to_string().contains("above the per-click maximum")));
}

#[test]
fn totals_and_row_identity() {
    let mut b = one_tenant(vec![r(1, 10, 2), r(2, 12, 3)], [records(1, 10, 2), records(2, 12, 3)].concat());
    b.tenants.push(TenantRows { tenant: "u".into(), rows: vec![r(1, 9, 1)], clicks: records(1, 9, 1), refused: vec![], ..Default::default() });
    let t = b.totals();
    assert_eq!((t.rows, t.click_records, t.clicks, t.min_second, t.max_second), (3, 6, 6, 9, 12));
    assert_eq!((t.min_decided, t.max_decided), (0, 0), "nothing decided by the edge's clock");
    // Refusals and verdicts are keyed by when the edge decided, not by event time.
    let refused = |ts_ms, at_ms| RefusedRecord { id_hi: 1, id_lo: 2, ad_id: 3, ts_ms, reason: RefusalReason::TooLate, code: 0, at_ms };
    b.tenants[1].refused = vec![refused(5_000, 20_500), refused(13_000, 40_000)];
    let verdict = VerdictRow {
        minute: 60,
        active_version: 1,
        candidate_version: 2,
        mode: MODE_SHADOW,
        applied_candidate: false,
        active_code: 0,
        candidate_code: 0,
        clicks: 1,
    };
    b.tenants[1].verdicts = vec![verdict];
    let t = b.totals();
    assert_eq!((t.min_second, t.max_second, t.min_decided, t.max_decided), (5, 13, 20, 60));
    let archive = BatchArchive::of(&b);
    let ids: Vec<_> = archive.batch().indexed_rows().map(|(i, t, r)| (i, t.to_string(), r.ad_id.to_native())).collect();
    assert_eq!(ids, vec![(0, "t".into(), 1), (1, "t".into(), 2), (2, "u".into(), 1)]);
    assert_eq!(archive.batch().indexed_clicks().map(|(i, _, _)| i).collect::<Vec<_>>(), (0..6).collect::<Vec<_>>());
}
