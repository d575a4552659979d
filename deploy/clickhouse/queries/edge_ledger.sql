SELECT
    edge,
    toUInt64(maxIf(seq, top = 2)) AS last_seq,
    toUInt32(maxIf(recorded, top = 2)) AS last_at,
    toUInt64(maxIf(wm, top = 2)) AS watermark_ms,
    toUInt64(countIf(top = 1)) AS uncommitted
FROM
(
    SELECT edge, seq, max(state) AS top, max(recorded_at) AS recorded, max(low_watermark_ms) AS wm
    FROM tally.batches
    GROUP BY edge, seq
)
GROUP BY edge
ORDER BY edge
