-- Applied at every start on servers with insert_deduplication_token (22.2+), like
-- 0001: the campaign rollups (migration 0007) keep a window of recent insert tokens
-- too, so a re-sent landing INSERT adds nothing to them either.
ALTER TABLE tally.campaigns_by_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.campaigns_by_hour MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.campaigns_by_day MODIFY SETTING non_replicated_deduplication_window = 1000;
