//! The rows a batch becomes, one struct per table it lands in, in that
//! table's column order: each field is a column, named as in the table
//! (`super::row_binary` writes them positionally and names the INSERT's
//! columns after the fields). Rows borrow from the archived batch, so
//! building one allocates nothing. Every row carries the batch identity
//! (`edge`, `batch_seq`, `row_idx`) the commit protocol probes for.

use bytes::{BufMut, BytesMut};
use rkyv::rend::u64_le;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use tally_model::batch::RefusalReason;

/// A row of `tally.clicks_by_second`, in column order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LandingRow<'a> {
    pub tenant: &'a str,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub clicks: u64,
    pub spend_micros: u64,
    pub user_hashes: Hashes<'a>,
    pub edge: &'a str,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.click_records`, in column order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClickRow<'a> {
    pub tenant: &'a str,
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub second: u32,
    pub cost_micros: u64,
    pub verdict: u8,
    pub accepted_ms: u64,
    pub edge: &'a str,
    pub batch_seq: u64,
    pub row_idx: u32,
}

impl ClickRow<'_> {
    /// Appends the row in `RowBinary` exactly as `super::row_binary::encode`
    /// writes it (tested), without serde's call per field: click records are
    /// one row per click, most of the bytes a batch becomes. The fixed-width
    /// columns between the two strings go in as one copy.
    pub fn write_to(&self, out: &mut BytesMut) {
        let mut fixed = [0u8; 45];
        fixed[0..8].copy_from_slice(&self.id_hi.to_le_bytes());
        fixed[8..16].copy_from_slice(&self.id_lo.to_le_bytes());
        fixed[16..24].copy_from_slice(&self.ad_id.to_le_bytes());
        fixed[24..28].copy_from_slice(&self.second.to_le_bytes());
        fixed[28..36].copy_from_slice(&self.cost_micros.to_le_bytes());
        fixed[36] = self.verdict;
        fixed[37..45].copy_from_slice(&self.accepted_ms.to_le_bytes());
        super::row_binary::put_str(out, self.tenant);
        out.put_slice(&fixed);
        super::row_binary::put_str(out, self.edge);
        let mut tail = [0u8; 12];
        tail[0..8].copy_from_slice(&self.batch_seq.to_le_bytes());
        tail[8..12].copy_from_slice(&self.row_idx.to_le_bytes());
        out.put_slice(&tail);
    }
}

/// A row of `tally.refused_events`, in column order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RefusedRow<'a> {
    pub tenant: &'a str,
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub ts_ms: u64,
    pub reason: Reason,
    pub at: u32,
    pub edge: &'a str,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.click_dimensions`, in column order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DimensionRow<'a> {
    pub tenant: &'a str,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub dimension: &'a str,
    pub value: &'a str,
    pub clicks: u64,
    pub spend_micros: u64,
    pub edge: &'a str,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.plugin_verdicts`, in column order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PluginVerdictRow<'a> {
    pub tenant: &'a str,
    pub minute: u32,
    pub active_version: u32,
    pub candidate_version: u32,
    pub mode: u8,
    pub applied_candidate: u8,
    pub active_code: u16,
    pub candidate_code: u16,
    pub clicks: u64,
    pub edge: &'a str,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.batches`, the commit ledger, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct LedgerRow {
    pub edge: String,
    pub seq: u64,
    pub state: u8,
    pub rows: u32,
    pub click_records: u32,
    pub refused: u32,
    pub clicks: u64,
    pub checksum: u64,
    pub min_second: u32,
    pub max_second: u32,
    pub low_watermark_ms: u64,
    pub recorded_at: u32,
}

/// `Array(UInt32)` of the archived hashes: their low 32 bits, all the table
/// keeps (`uniq` keeps 32 bits of a hash anyway; migration 0006).
#[derive(Debug, Clone, Copy)]
pub struct Hashes<'a>(pub &'a [u64_le]);

impl Serialize for Hashes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for h in self.0 {
            seq.serialize_element(&(h.to_native() as u32))?;
        }
        seq.end()
    }
}

/// A refusal's `reason` column: `too_late`, `future`, or `filtered:<code>`
/// for a filter's drop, spelled without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Reason {
    pub reason: RefusalReason,
    pub code: u16,
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.reason {
            RefusalReason::Filtered => {
                use std::io::Write;
                let mut text = [0u8; 16];
                let mut at = std::io::Cursor::new(&mut text[..]);
                write!(at, "filtered:{}", self.code).expect("a u16 fits");
                let len = at.position() as usize;
                s.serialize_str(std::str::from_utf8(&text[..len]).expect("ASCII"))
            }
            other => s.serialize_str(other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_click_row_is_written_as_serde_writes_it(
            tenant in "[a-z0-9_-]{0,200}", edge in "[a-z0-9.-]{0,140}",
            ids in any::<[u64; 6]>(), second in any::<u32>(), verdict in any::<u8>(), row_idx in any::<u32>(),
        ) {
            let row = ClickRow {
                tenant: &tenant, id_hi: ids[0], id_lo: ids[1], ad_id: ids[2], second, cost_micros: ids[3], verdict,
                accepted_ms: ids[4], edge: &edge, batch_seq: ids[5], row_idx,
            };
            let (mut fast, mut serde) = (BytesMut::new(), BytesMut::new());
            row.write_to(&mut fast);
            super::super::row_binary::encode(&mut serde, None, &row).unwrap();
            prop_assert_eq!(&fast[..], &serde[..]);
        }
    }
}
