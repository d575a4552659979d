SELECT seq, max(state) AS state
FROM tally.batches
WHERE edge = ? AND seq >= ? AND seq <= ?
GROUP BY seq
