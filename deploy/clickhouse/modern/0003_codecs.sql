-- Applied at every start on modern servers (as 0001): per-column codecs, which 18.16
-- lacks (there the server-level zstd of deploy/clickhouse/README.md is all). Columns
-- that climb within a batch (row_idx, acceptance times, seconds, batch numbers) store
-- deltas; the high-entropy rest gets zstd. Metadata only: new parts and merges use them.
ALTER TABLE tally.click_records MODIFY COLUMN row_idx CODEC(Delta, ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN accepted_ms CODEC(Delta, ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN second CODEC(Delta, ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN batch_seq CODEC(Delta, ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN id_hi CODEC(ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN id_lo CODEC(ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN ad_id CODEC(ZSTD(1));
ALTER TABLE tally.click_records MODIFY COLUMN cost_micros CODEC(ZSTD(1));
ALTER TABLE tally.clicks_by_second MODIFY COLUMN user_hashes CODEC(ZSTD(1));
