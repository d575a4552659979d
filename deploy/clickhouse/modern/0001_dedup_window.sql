-- Applied at every start, only on servers that support insert_deduplication_token
-- (22.2+): a window of recent insert tokens per table, so a re-sent INSERT carrying
-- the same token is dropped by the server too. This is a second line of defence;
-- exactly-once rests on the ledger protocol (18.16 has no such thing).
ALTER TABLE tally.clicks_by_second MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.click_records MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.refused_events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.clicks_by_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.clicks_by_hour MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.clicks_by_day MODIFY SETTING non_replicated_deduplication_window = 1000;
