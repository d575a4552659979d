-- 0003 commit ledger: one row per state change of an edge batch (edge, seq).
-- state 1 is written before the batch's rows are inserted, state 2 after all of
-- them (landing rows, click records, refused events) are in.
-- ReplacingMergeTree(state) keeps the highest state per (edge, seq) after merges,
-- and readers use max(state) so they never depend on merges having happened.
-- low_watermark_ms of committed batches gives each edge's watermark: an hour is
-- final for billing once every edge's watermark is past its end.
CREATE TABLE IF NOT EXISTS tally.batches
(
    edge String,
    seq UInt64,
    state UInt8 /* 1 = insert started, 2 = committed */,
    rows UInt32,
    click_records UInt32,
    refused UInt32,
    clicks UInt64,
    checksum UInt64,
    min_second DateTime('UTC'),
    max_second DateTime('UTC'),
    low_watermark_ms UInt64,
    recorded_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(state)
ORDER BY (edge, seq);
