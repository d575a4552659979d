SELECT seq, top AS state, top_checksum AS checksum
FROM
(
    SELECT seq, max(state) AS top, argMax(checksum, state) AS top_checksum
    FROM tally.batches
    WHERE edge = ? AND seq >= ? AND seq <= ?
    GROUP BY seq
)
