-- 0008 edge retirements: an operator's decision that an edge is gone for good
-- (`tally edge retire ID`), so it no longer holds billing finality back. Edges
-- themselves need no table: an edge is registered by its first batch in the
-- ledger (tally.batches), which also gives its watermark and last batch.
-- One row per change (retired 1, reinstated 0); the latest changed_ms wins, and
-- readers use argMax(retired, changed_ms) so they never depend on merges.
CREATE TABLE IF NOT EXISTS tally.edge_retirements
(
    edge String,
    retired UInt8 /* 1 = retired, 0 = reinstated */,
    changed_ms UInt64,
    reason String
)
ENGINE = ReplacingMergeTree(changed_ms)
ORDER BY edge;
