-- The active partitions of one table of this server (retention: `toYYYYMM` months;
-- a partition that is no number reads 0 and is never dropped). The database is
-- tally on one server, tally_shard on a cluster's (where the tally tables are
-- Distributed and hold no parts).
SELECT DISTINCT toUInt32OrZero(partition) AS partition
FROM system.parts
WHERE database = ? AND table = ? AND active
ORDER BY partition
