-- Retention: one month of a table ({table} is one of a fixed list; the
-- partition is its `toYYYYMM` value).
ALTER TABLE tally.{table} DROP PARTITION ?
