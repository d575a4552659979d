-- The active partitions of one tally table (retention: `toYYYYMM` months;
-- a partition that is no number reads 0 and is never dropped).
SELECT DISTINCT toUInt32OrZero(partition) AS partition
FROM system.parts
WHERE database = 'tally' AND table = ? AND active
ORDER BY partition
