SELECT edge, toUInt64(max(low_watermark_ms)) AS watermark_ms
FROM tally.batches
WHERE state = 2
GROUP BY edge
ORDER BY edge
