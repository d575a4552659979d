// The batch frame (`tally_model::batch::frame`): `decode` over raw frames,
// over payloads (valid ones with bytes overwritten, or any) behind a correct
// header so mutations get past the checksum, and `validate` over batches
// built from the input. Needs
// `input.rs` and `records.rs` included before it.

use std::collections::HashMap;

use tally_model::batch::frame::{self, FrameError, HEADER_LEN, MAGIC, VERSION};
use tally_model::batch::{Batch, DimRow, SecondRow, TenantRows};
use xxhash_rust::xxh3::xxh3_64;

fn tenant_rows(input: &mut Input) -> TenantRows {
    let tenant = if input.byte() & 1 == 0 { "t".repeat(1 + input.byte() as usize % 3) } else { input.text() };
    let clicks: Vec<_> = (0..input.byte() % 4).map(|_| click_record(input)).collect();
    // Mostly rows that agree with the records, so validation gets past the totals.
    let rows = if input.byte() & 3 != 0 {
        let row = |c: &ClickRecord| SecondRow {
            ad_id: c.ad_id,
            campaign_id: c.campaign_id,
            second: c.second(),
            clicks: 1,
            spend_micros: c.cost_micros,
            user_hashes: vec![],
        };
        clicks.iter().map(row).collect()
    } else {
        let row = |input: &mut Input| SecondRow {
            ad_id: input.num(),
            campaign_id: input.num(),
            second: input.num() as u32,
            clicks: input.num(),
            spend_micros: input.num(),
            user_hashes: (0..input.byte() % 3).map(|_| input.num()).collect(),
        };
        (0..input.byte() % 3).map(|_| row(input)).collect()
    };
    let dim = |input: &mut Input| DimRow {
        ad_id: input.num(),
        campaign_id: input.num(),
        second: input.num() as u32,
        dimension: input.text(),
        value: input.text(),
        clicks: input.num(),
        spend_micros: input.num(),
    };
    TenantRows {
        tenant,
        rows,
        clicks,
        refused: (0..input.byte() % 3).map(|_| refused_record(input)).collect(),
        dims: (0..input.byte() % 3).map(|_| dim(input)).collect(),
        verdicts: (0..input.byte() % 3).map(|_| verdict_row(input)).collect(),
    }
}

fn batch(input: &mut Input) -> Batch {
    Batch {
        edge: input.text(),
        seq: input.num(),
        sealed_at_ms: input.num(),
        low_watermark_ms: input.num(),
        wal_from: input.num(),
        wal_to: input.num(),
        tenants: (0..input.byte() % 3).map(|_| tenant_rows(input)).collect(),
    }
}

/// What the core takes from a valid batch adds up: rows count exactly the
/// click records, with the same spend, and no dimension counts more.
fn assert_adds_up(batch: &Batch) {
    let totals = batch.totals();
    let sum = |n: &mut dyn Iterator<Item = u64>| n.map(u128::from).sum::<u128>();
    assert_eq!(totals.rows as usize, batch.tenants.iter().map(|t| t.rows.len()).sum::<usize>());
    assert_eq!(totals.clicks as u128, sum(&mut batch.tenants.iter().flat_map(|t| &t.rows).map(|r| r.clicks)));
    assert_eq!(totals.clicks, totals.click_records as u64);
    assert!(totals.min_second <= totals.max_second && totals.min_decided <= totals.max_decided);
    for t in &batch.tenants {
        let spend = sum(&mut t.clicks.iter().map(|c| c.cost_micros));
        assert_eq!(sum(&mut t.rows.iter().map(|r| r.spend_micros)), spend);
        let mut dims: HashMap<&str, (u128, u128)> = HashMap::new();
        for d in &t.dims {
            let (clicks, dim_spend) = dims.entry(&d.dimension).or_default();
            *clicks += d.clicks as u128;
            *dim_spend += d.spend_micros as u128;
        }
        for (dimension, (clicks, dim_spend)) in dims {
            assert!(clicks <= t.clicks.len() as u128 && dim_spend <= spend, "dimension {dimension:?} counts {clicks} clicks, {dim_spend} spend");
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&VERSION.to_le_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let mode = input.byte() % 4;
    let frame = match mode {
        0 => input.rest().to_vec(),
        1 => framed(input.rest()),
        // Any batch: what `validate` says is what `decode` of its frame says.
        2 => {
            let batch = batch(&mut input);
            let verdict = frame::validate(&batch);
            match frame::decode(&frame::encode(&batch)) {
                Ok(decoded) => {
                    assert_eq!(verdict, Ok(()));
                    assert_eq!(decoded, batch);
                    assert_adds_up(&batch);
                }
                Err(e) => assert_eq!(Err(e), verdict.map_err(FrameError::Invalid)),
            }
            return;
        }
        // A batch's payload with bytes overwritten, behind a correct header.
        _ => {
            let mut payload = frame::encode(&batch(&mut input)).split_off(HEADER_LEN);
            let at = input.num() as usize % payload.len().max(1);
            let garbage = input.rest();
            let n = garbage.len().min(payload.len() - at);
            payload[at..at + n].copy_from_slice(&garbage[..n]);
            framed(&payload)
        }
    };
    // A frame decodes only if it is exactly the encoding of a valid batch:
    // a re-send of `(edge, seq)` must be byte-identical.
    if let Ok(batch) = frame::decode(&frame) {
        assert_eq!(frame::encode(&batch), frame, "a frame decoded that is not its batch's encoding");
        assert_eq!(frame::checksum(&frame), Some(xxh3_64(&frame[HEADER_LEN..])));
        assert_adds_up(&batch);
    }
}
