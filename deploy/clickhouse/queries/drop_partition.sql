-- Retention: one month of a table ({database} is tally, or tally_shard on a
-- cluster's server; {table} is one of a fixed list; the partition is its
-- `toYYYYMM` value). On a Replicated table the drop reaches every replica.
ALTER TABLE {database}.{table} DROP PARTITION ?