-- 0004 billing: one row per accepted click (as shipped by an edge), the clicks
-- refused for their event time, and the billing statements of final hours.
-- click_records is append-only and committed exactly once per (edge, batch_seq,
-- row_idx) by the same ledger protocol as the landing table; billing counts each
-- (tenant, id_hi, id_lo) once, whichever edges and batches carried it.
CREATE TABLE IF NOT EXISTS tally.click_records
(
    tenant String,
    id_hi UInt64,
    id_lo UInt64,
    ad_id UInt64,
    campaign_id UInt64,
    ts_ms UInt64,
    second DateTime('UTC'),
    cost_micros UInt64,
    verdict UInt8,
    accepted_ms UInt64,
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, second, id_hi, id_lo);
-- Clicks refused for their event time (reason too_late or future): never silently dropped.
CREATE TABLE IF NOT EXISTS tally.refused_events
(
    tenant String,
    id_hi UInt64,
    id_lo UInt64,
    ad_id UInt64,
    ts_ms UInt64,
    reason String,
    at DateTime('UTC'),
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, at);
-- Billing statements: for a final hour, kind 'final' rows hold what was billed
-- when it became final; a click that arrives later adds a kind 'adjustment' row
-- (the delta), never a silent restatement. Deltas are signed.
CREATE TABLE IF NOT EXISTS tally.billing_statements
(
    tenant String,
    hour DateTime('UTC'),
    ad_id UInt64,
    kind String,
    clicks Int64,
    spend_micros Int64,
    recorded_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, ad_id);
-- Hours whose 'final' statements are complete for every tenant.
CREATE TABLE IF NOT EXISTS tally.billing_final_hours
(
    hour DateTime('UTC'),
    finalized_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY hour;
