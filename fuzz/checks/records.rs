// Model records from fuzz input (see `input.rs`); shared by the batch and WAL checks.

use tally_model::batch::{ClickRecord, RefusalReason, RefusedRecord, VerdictRow, MODE_CANARY, MODE_SHADOW};

fn click_record(input: &mut Input) -> ClickRecord {
    ClickRecord {
        id_hi: input.num(),
        id_lo: input.num(),
        ad_id: input.num(),
        campaign_id: input.num(),
        ts_ms: input.num(),
        cost_micros: input.num(),
        verdict: input.byte(),
        accepted_ms: input.num(),
    }
}

fn refused_record(input: &mut Input) -> RefusedRecord {
    let reason = [RefusalReason::TooLate, RefusalReason::Future, RefusalReason::Filtered][input.byte() as usize % 3];
    RefusedRecord { id_hi: input.num(), id_lo: input.num(), ad_id: input.num(), ts_ms: input.num(), reason, code: input.num() as u16, at_ms: input.num() }
}

fn verdict_row(input: &mut Input) -> VerdictRow {
    VerdictRow {
        minute: input.num() as u32,
        active_version: input.num() as u32,
        candidate_version: input.num() as u32,
        mode: [MODE_SHADOW, MODE_CANARY, 0][input.byte() as usize % 3],
        applied_candidate: input.byte() & 1 == 1,
        active_code: input.num() as u16,
        candidate_code: input.num() as u16,
        clicks: input.num(),
    }
}
