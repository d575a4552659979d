-- 0001 landing table: one row per (tenant, ad, campaign, second) per shipped batch,
-- pre-aggregated at the edge. (edge, batch_seq, row_idx) identifies a row so that a
-- re-sent batch can be detected and completed instead of double counted.
-- Every rollup MV (0002) reads directly from this table.
CREATE TABLE IF NOT EXISTS tally.clicks_by_second
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    second DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64,
    user_hashes Array(UInt64),
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, ad_id, second);
