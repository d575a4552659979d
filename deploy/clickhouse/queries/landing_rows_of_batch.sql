SELECT DISTINCT row_idx
FROM tally.clicks_by_second
WHERE edge = ? AND batch_seq = ? AND second >= ? AND second <= ?
ORDER BY row_idx
