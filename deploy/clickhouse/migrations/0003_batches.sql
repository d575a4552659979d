-- 0003 commit ledger: one row per state change of an edge batch (edge, seq).
-- state 1 is written before the landing insert, state 2 after it fully succeeded;
-- ReplacingMergeTree(state) keeps the highest state per (edge, seq) after merges,
-- and readers use max(state) so they never depend on merges having happened.
CREATE TABLE IF NOT EXISTS tally.batches
(
    edge String,
    seq UInt64,
    state UInt8 /* 1 = insert started, 2 = committed */,
    rows UInt32,
    clicks UInt64,
    checksum UInt64,
    min_second DateTime('UTC'),
    max_second DateTime('UTC'),
    recorded_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(state)
ORDER BY (edge, seq);
