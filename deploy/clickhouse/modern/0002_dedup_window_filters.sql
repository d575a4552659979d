-- As 0001, for the tables of migration 0005 (tenant filters).
ALTER TABLE tally.click_dimensions MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.dimensions_by_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.dimensions_by_hour MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.dimensions_by_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.refused_by_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.refused_by_hour MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.refused_by_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE tally.plugin_verdicts MODIFY SETTING non_replicated_deduplication_window = 1000;
