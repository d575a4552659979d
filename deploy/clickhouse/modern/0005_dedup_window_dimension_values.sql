-- Applied at every start on servers with insert_deduplication_token (22.2+), like
-- 0002: the dimension value rollups (migration 0010) keep a window of recent insert
-- tokens too, so a re-sent click_dimensions INSERT adds nothing to them either.
ALTER TABLE tally.dimension_values_by_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.dimension_values_by_hour MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.dimension_values_by_day MODIFY SETTING non_replicated_deduplication_window = 1000;
